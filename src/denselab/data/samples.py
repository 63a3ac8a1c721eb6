"""One sample for a model: a user's ``.npy`` array or picture of a digit, or a test sample.

Every result has exactly the model's ``input_shape``; a file that cannot become one is a clear
:class:`~denselab.errors.DenselabError`. Pillow is imported only when a picture is read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DenselabError
from . import Dataset
from .files import is_real, numpy_error, to_float32

MAX_IMAGE_PIXELS = 4096 * 4096  # a digit picture; larger is a mistake or a decompression bomb
# The formats denselab documents. Pillow knows many more, some through other programs (an EPS
# file named .png would be handed to Ghostscript): those are never opened.
IMAGE_FORMATS = ("PNG", "JPEG")


def load_image(
    path: str | Path, shape: tuple[int, int] = (28, 28), steps: list[str] | None = None
) -> np.ndarray:
    """A photo or drawing of a digit as the model expects it: grey, light on dark, centred.

    Returns float32 of shape ``shape`` in [0, 1]. Dark-on-light images are inverted; the ink is
    scaled to fit a 20x20 box (MNIST's convention) and centred by its centre of mass. The
    explorer page does the same to a drawing (``templates/explorer/preprocess.js``). ``steps``,
    a list, receives what was done, in words.
    """
    steps = [] if steps is None else steps
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns of a huge picture; the line below says it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path, formats=IMAGE_FORMATS)
        with opened as image:
            if image.format not in IMAGE_FORMATS:
                raise UnidentifiedImageError(image.format)
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DenselabError(
                    f"{path} is {image.width}x{image.height} pixels; give a picture of one "
                    "digit, at most 4096x4096"
                )
            grey = _grey_levels(image)
    except DenselabError:
        raise
    except Image.DecompressionBombError as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels[1]):,} pixels" if pixels else "too many pixels"
        raise DenselabError(
            f"{path} has {size}; give a picture of one digit, at most 4096x4096"
        ) from None
    except UnidentifiedImageError:
        raise DenselabError(f"cannot read image {path}: not a PNG or JPEG picture") from None
    except Exception as error:  # Pillow's decoders raise many types for a damaged file
        reason = str(error).strip()[:120] or type(error).__name__
        raise DenselabError(f"cannot read image {path}: {reason} (damaged file?)") from None
    if grey.ndim != 2 or grey.size == 0:
        raise DenselabError(f"{path} has no pixels")
    steps.append(f"read {image.width}x{image.height} pixels as grey levels 0..1")
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        grey = 1.0 - grey
        steps.append("inverted: dark ink on a light background became light on dark, as MNIST")
    ink = np.argwhere(grey > 0.1)
    if len(ink) == 0:
        raise DenselabError(f"{path} looks blank: no ink found")
    (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
    crop = grey[top:bottom, left:right]
    box = max(1, round(min(shape) * 20 / 28))
    factor = box / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    steps.append(
        f"cropped to the ink's bounding box ({crop.shape[1]}x{crop.shape[0]}) and scaled to "
        f"{size[0]}x{size[1]} to fit a {box}x{box} box, keeping its aspect ratio (MNIST's 20x20)"
    )
    crop = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS))
    canvas = np.zeros(shape, dtype=np.float32)
    rows, cols = np.indices(crop.shape)
    mass = crop.sum() or 1.0
    centre_r, centre_c = (rows * crop).sum() / mass, (cols * crop).sum() / mass
    top = int(np.clip(round(shape[0] / 2 - centre_r), 0, shape[0] - crop.shape[0]))
    left = int(np.clip(round(shape[1] / 2 - centre_c), 0, shape[1] - crop.shape[1]))
    canvas[top : top + crop.shape[0], left : left + crop.shape[1]] = crop / 255.0
    steps.append(
        f"placed in {shape[1]}x{shape[0]} with its centre of mass at the middle (MNIST's centring)"
    )
    return canvas


def _grey_levels(image) -> np.ndarray:
    """The picture as grey levels in [0, 1], shape (height, width).

    A 16-bit picture is scaled by its full range (not clipped at 255); a picture with
    transparency is laid on a background that contrasts with its opaque pixels, so a digit
    drawn on a transparent background is not read as blank.
    """
    if image.mode.startswith("I") or image.mode == "F":  # 16- or 32-bit grey
        values = np.asarray(image, dtype=np.float64)
        brightest = float(values.max(initial=0.0))
        if image.mode == "F":
            top = 1.0
        elif image.mode.startswith("I;16") or 255 < brightest <= 65535:
            top = 65535.0
        else:  # 8-bit values, or 32-bit ones: scaled by what is there
            top = 255.0 if brightest <= 255 else brightest
        return np.clip(values / top, 0.0, 1.0).astype(np.float32)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)  # as convert("L")
        alpha = rgba[..., 3]
        if alpha.min() < 1.0:
            opaque = alpha > 0.5
            dark_ink = not opaque.any() or grey[opaque].mean() < 0.5
            return grey * alpha + (1.0 if dark_ink else 0.0) * (1.0 - alpha)
        return grey
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def load_input(
    path: str | Path, input_shape: tuple[int, ...], steps: list[str] | None = None
) -> np.ndarray:
    """One sample for a model with ``input_shape``: a ``.npy`` array or a picture of a digit.

    ``steps``, a list, receives a picture's preprocessing in words (see :func:`load_image`).
    """
    path = Path(path)
    if not path.is_file():
        raise DenselabError(f"no such file: {path}")
    if path.suffix.lower() == ".npy":
        with open(path, "rb") as stream:
            if stream.read(6) != b"\x93NUMPY":  # else numpy would try it as a pickle
                raise DenselabError(f"cannot read {path} as .npy: not written by np.save")
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as error:  # numpy's format parser on a damaged file
            raise numpy_error(path, ".npy", error, "save a numeric array with np.save") from None
        if not isinstance(array, np.ndarray) or not is_real(array):
            kind = array.dtype if isinstance(array, np.ndarray) else "an .npz archive"
            raise DenselabError(f"{path} does not hold real numbers ({kind}); save floats")
        array = to_float32(array, path)
    elif len(input_shape) == 2:
        array = load_image(path, input_shape, steps)
    else:
        raise DenselabError(f"{path}: give a .npy array of shape {input_shape} for this model")
    if array.size != int(np.prod(input_shape)):
        raise DenselabError(
            f"{path} has shape {array.shape} but the model takes {input_shape} "
            f"({int(np.prod(input_shape))} numbers)"
        )
    return array.reshape(input_shape)


def test_sample(
    data: Dataset, index: int, input_shape: tuple[int, ...]
) -> tuple[np.ndarray, object]:
    """Test sample ``index`` of ``data`` and its label, checked against the model's input."""
    if not -len(data.x_test) <= index < len(data.x_test):
        raise DenselabError(f"{data.name} has test samples 0..{len(data.x_test) - 1}; no {index}")
    x = data.x_test[index]
    if x.size != int(np.prod(input_shape)):
        raise DenselabError(
            f"{data.name} samples have shape {x.shape} but the model takes {input_shape}"
        )
    return x.reshape(input_shape), data.y_test[index]
