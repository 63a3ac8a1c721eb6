"""One sample for a model: a user's ``.npy`` array or picture of a digit, or a test sample.

Every result has exactly the model's ``input_shape``; a file that cannot become one is a clear
:class:`~denselab.errors.DenselabError`. Pillow is imported only when a picture is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DenselabError
from . import Dataset
from .files import is_real, numpy_error, to_float32

MAX_IMAGE_PIXELS = 4096 * 4096  # a digit picture; larger is a mistake or a decompression bomb


def load_image(path: str | Path, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """A photo or drawing of a digit as the model expects it: grey, light on dark, centred.

    Returns float32 of shape ``shape`` in [0, 1]. Dark-on-light images are inverted; the ink is
    scaled to fit a 20x20 box (MNIST's convention) and centred by its centre of mass.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DenselabError(
                    f"{path} is {image.width}x{image.height} pixels; give a picture of one "
                    "digit, at most 4096x4096"
                )
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except DenselabError:
        raise
    except UnidentifiedImageError:
        raise DenselabError(f"cannot read image {path}: not a PNG or JPEG picture") from None
    except Exception as error:  # Pillow's decoders raise many types for a damaged file
        reason = str(error).strip()[:120] or type(error).__name__
        raise DenselabError(f"cannot read image {path}: {reason} (damaged file?)") from None
    if grey.ndim != 2 or grey.size == 0:
        raise DenselabError(f"{path} has no pixels")
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        grey = 1.0 - grey
    ink = np.argwhere(grey > 0.1)
    if len(ink) == 0:
        raise DenselabError(f"{path} looks blank: no ink found")
    (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
    crop = grey[top:bottom, left:right]
    box = max(1, round(min(shape) * 20 / 28))
    factor = box / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    crop = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS))
    canvas = np.zeros(shape, dtype=np.float32)
    rows, cols = np.indices(crop.shape)
    mass = crop.sum() or 1.0
    centre_r, centre_c = (rows * crop).sum() / mass, (cols * crop).sum() / mass
    top = int(np.clip(round(shape[0] / 2 - centre_r), 0, shape[0] - crop.shape[0]))
    left = int(np.clip(round(shape[1] / 2 - centre_c), 0, shape[1] - crop.shape[1]))
    canvas[top : top + crop.shape[0], left : left + crop.shape[1]] = crop / 255.0
    return canvas


def load_input(path: str | Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """One sample for a model with ``input_shape``: a ``.npy`` array or a picture of a digit."""
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
        array = load_image(path, input_shape)
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
