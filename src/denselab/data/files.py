"""A user's own dataset: an ``.npz`` with four arrays, or a ``.csv`` of numbers.

Both are checked at the edge (numeric, finite, within float32, consistent shapes) so that a bad
file is one clear :class:`~denselab.errors.DenselabError`, never a traceback from deep in NumPy
or Keras. Pickles are never loaded. The task is guessed from the labels unless given.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DenselabError
from . import SPLIT_SEED, Dataset

MAX_CLASSES = 1000  # labels above this are far more likely a regression target than a class


def read_npz(path: Path, task: str | None) -> Dataset:
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
            _check_headers(path, keys)  # sizes, before a byte of the arrays is unpacked
            arrays = {k: npz[k] for k in keys}
    except DenselabError:
        raise
    except Exception as error:  # zipfile, zlib and numpy's format parser: all "not an NPZ"
        raise numpy_error(path, "NPZ", error, "save plain numeric arrays") from None
    for key in keys:
        if not isinstance(arrays[key], np.ndarray):  # a member that is not a .npy at all
            raise DenselabError(f"{path}: {key} is not an array saved by np.save")
    for key in keys:
        if not is_real(arrays[key]):
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
        if task != "regression" and _one_hot(y):  # keras.utils.to_categorical's labels
            arrays[key] = y = np.argmax(y, axis=1)
        several = y.ndim == 2 and y.shape[1] > 1 and task != "classification"
        if y.ndim != 1 and not several:
            raise DenselabError(
                f"{path}: {key} has shape {y.shape}; it needs (n_samples,), or (n_samples, k) "
                "for k numbers to predict"
            )
    if arrays["y_train"].shape[1:] != arrays["y_test"].shape[1:]:
        raise DenselabError(f"{path}: y_train and y_test have different numbers of targets")
    _check_finite(path, *arrays.values())
    x_train = to_float32(arrays["x_train"], path)
    x_test = to_float32(arrays["x_test"], path)
    if len(x_train) != len(arrays["y_train"]) or len(x_test) != len(arrays["y_test"]):
        raise DenselabError(f"{path}: x and y have different numbers of samples")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DenselabError(f"{path}: x_train and x_test have different sample shapes")
    return _labelled(path.stem, x_train, arrays["y_train"], x_test, arrays["y_test"], task, path)


def _one_hot(y: np.ndarray) -> bool:
    """Whether ``y`` (n, k) holds one-hot rows (``to_categorical``): a single 1, the rest 0."""
    if y.ndim != 2 or y.shape[1] < 2 or len(y) == 0 or not is_real(y):
        return False
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


MAX_NPZ_BYTES = 8 << 30  # all four arrays, unpacked: Fashion-MNIST as float32 is 0.2 GB


def _check_headers(path: Path, keys: tuple[str, ...]) -> None:
    """Each array's shape and type from its ``.npy`` header: the four must hold at most
    :data:`MAX_NPZ_BYTES` and agree in samples, checked before any is unpacked (a 1.5 MB
    file of zeros unpacks to 1.6 GB)."""
    from numpy.lib import format as npy

    shapes, total = {}, 0
    with zipfile.ZipFile(path) as archive:
        for key in keys:
            names = archive.namelist()
            with archive.open(f"{key}.npy" if f"{key}.npy" in names else key) as member:
                version = npy.read_magic(member)
                read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
                if version not in read_header:
                    raise DenselabError(f"{path}: {key}.npy has header version {version}")
                shape, _, dtype = read_header[version](member)
            shapes[key] = shape
            total += int(np.prod(shape, dtype=object)) * max(dtype.itemsize, 1)
    if total > MAX_NPZ_BYTES:
        raise DenselabError(
            f"{path} unpacks to {total:,} bytes; denselab reads at most {MAX_NPZ_BYTES:,}"
        )
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if shapes[x] and shapes[y] and shapes[x][0] != shapes[y][0]:  # (a scalar: below)
            counts = [f"{shapes[k][0]:,}" for k in (x, y)]
            raise DenselabError(
                f"{path}: x and y have different numbers of samples ({x}: {counts[0]}, "
                f"{y}: {counts[1]})"
            )


def read_csv(path: Path, target: str | None, task: str | None) -> Dataset:
    if not path.is_file():
        raise DenselabError(f"no such file: {path}")
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise DenselabError(f"cannot read {path}: {error.strerror}") from None
    if b"\0" in blob:
        raise DenselabError(f"{path} is not a text file; give numbers separated by commas")
    text = blob.decode("utf-8-sig", errors="replace")  # -sig: a byte-order mark is not data
    numbered = [
        (number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]
    if not numbered:
        raise DenselabError(f"{path} is empty")
    first = [cell.strip() for cell in _cells(numbered[0], path)]
    header = not all(_is_number(cell) for cell in first)
    names = first if header else [str(i) for i in range(len(first))]
    rows = numbered[1:] if header else numbered
    values = []
    for number, row in rows:
        cells = _cells((number, row), path)
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
    x = to_float32(np.delete(table, column, axis=1), path)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    cut = max(1, int(len(x) * 0.8))
    train, test = order[:cut], order[cut:] if cut < len(x) else order[:1]
    return _labelled(path.stem, x[train], y[train], x[test], y[test], task, path)


def _cells(numbered_line: tuple[int, str], path: Path) -> list[str]:
    """One line's cells, as the csv module reads them: ``"1.5"`` and ``"a,b"`` (quoted, as
    spreadsheets and pandas write them) are one cell each."""
    number, line = numbered_line
    try:
        return next(csv.reader([line]))
    except csv.Error as error:  # a field over the csv module's limit, a stray quote
        raise DenselabError(f"{path} line {number}: {error}") from None


def _labelled(name, x_train, y_train, x_test, y_test, task, path) -> Dataset:
    y_all = np.concatenate([np.ravel(y_train), np.ravel(y_test)]).astype(np.float64)
    integral = bool(np.all(np.equal(np.mod(y_all, 1), 0)))
    if task is None and np.ndim(y_train) == 2:  # several numbers per sample: a regression
        task = "regression"
    if task is None:
        task = "classification" if integral and len(np.unique(y_all)) <= 100 else "regression"
    if task not in ("classification", "regression"):
        raise DenselabError(f"unknown task {task!r}; use classification or regression")
    if task == "classification":
        if not integral or y_all.min() < 0:
            raise DenselabError(f"{path}: classification labels must be whole numbers 0, 1, 2, ...")
        present = np.unique(np.ravel(y_train))
        if len(present) < 2:
            raise DenselabError(
                f"{path}: every training label is {present[0]:.0f}; a classifier needs examples "
                "of at least 2 classes (for numbers to predict, use --task regression)"
            )
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
            file=str(path),
        )
    return Dataset(
        name,
        x_train,
        to_float32(np.asarray(y_train), path),
        x_test,
        to_float32(np.asarray(y_test), path),
        "regression",
        str(path),
        file=str(path),
    )


def _column(names: list[str], target: str | None, path: Path) -> int:
    if target is None:
        return len(names) - 1
    if target in names:
        return names.index(target)
    if target.lstrip("-").isdigit() and -len(names) <= int(target) < len(names):
        return int(target) % len(names)
    raise DenselabError(f"{path} has no column {target!r}; columns: {', '.join(names)}")


# --- checks, shared with samples.load_input -----------------------------------------------


def numpy_error(path: Path, kind: str, error: Exception, hint: str) -> DenselabError:
    """What ``np.load(..., allow_pickle=False)`` failing means, in one line."""
    if isinstance(error, ValueError) and "allow_pickle" in str(error):
        return DenselabError(
            f"cannot read {path} as {kind}: it holds Python objects (pickles), which "
            f"denselab never loads; {hint}"
        )
    return DenselabError(f"cannot read {path} as {kind}: {str(error)[:120]}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_real(array: np.ndarray) -> bool:
    """Whether ``array`` holds real numbers (not text, objects, booleans or complex numbers)."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def _check_finite(path, *arrays) -> None:
    for array in arrays:
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise DenselabError(f"{path} contains NaN or infinity; clean the data first")


def to_float32(array: np.ndarray, path) -> np.ndarray:
    """``array`` as float32, refusing NaN, infinity and numbers too large for float32."""
    _check_finite(path, array)
    with np.errstate(over="ignore"):
        result = np.asarray(array).astype(np.float32)
    if not np.isfinite(result).all():
        raise DenselabError(
            f"{path} has numbers beyond float32's range (about ±3.4e38); scale them first"
        )
    return result
