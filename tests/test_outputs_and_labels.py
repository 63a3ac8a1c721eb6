"""Classifiers as people train them: logits out of a linear last layer (``from_logits=True``),
outputs shaped (n, 1, k) by an input declared (1, 784), labels one-hot from
``to_categorical``. Every number is checked against NumPy on the model's own outputs."""

from __future__ import annotations

import numpy as np
import pytest

from denselab.backend import keras as _keras


def _binary_logit(tmp_path):
    keras = _keras()
    x = np.linspace(-1, 1, 400, dtype=np.float32)[:, None]
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "logit.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.set_weights([np.array([[4.0]], np.float32), np.array([0.0], np.float32)])
    model.save(tmp_path / "logit.keras")
    return x, y


def test_a_binary_logit_is_class_1_from_0_and_its_loss_goes_through_the_sigmoid(tmp_path, cli):
    x, y = _binary_logit(tmp_path)
    scores = cli("evaluate", tmp_path / "logit.keras", "--data", tmp_path / "logit.npz", "--json")
    p1 = np.clip(1 / (1 + np.exp(-4.0 * x[:, 0].astype(np.float64))), 1e-7, 1 - 1e-7)
    loss = -np.mean(np.where(y == 1, np.log(p1), np.log(1 - p1)))
    assert scores["accuracy"] == 1.0  # cut at 0.5 as if a probability, it was 0.9375
    assert scores["loss"] == pytest.approx(loss, rel=1e-5)


def test_a_deployed_binary_logit_scores_its_classes_from_0(tmp_path, cli):
    pytest.importorskip("tflite_micro")
    _binary_logit(tmp_path)
    report = cli(
        "deploy", tmp_path / "logit.keras", "--data", tmp_path / "logit.npz",
        "--out", tmp_path / "fw", "--target", "none", "--json",
    )  # fmt: skip
    assert report["keras_accuracy"] == 1.0
    assert report["c_int8_accuracy"] == report["tflm_int8_accuracy"] >= 0.99


@pytest.fixture(scope="module")
def logits_model(tmp_path_factory):
    from denselab.data import load_dataset

    keras = _keras()
    keras.utils.set_random_seed(1)
    data = load_dataset("mnist-5k")
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("logits") / "logits.keras"
    model.save(path)
    return path, model, data


def test_logits_of_ten_classes_are_scored_through_the_softmax(logits_model, cli):
    path, model, data = logits_model
    z = model.predict(data.x_test, verbose=0).astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.log(np.clip(p[np.arange(len(p)), data.y_test], 1e-7, 1)))
    scores = cli("evaluate", path, "--data", "mnist-5k", "--json")
    assert scores["loss"] == pytest.approx(loss, rel=1e-5)  # on the raw logits it was 0.19
    assert scores["accuracy"] == pytest.approx(np.mean(z.argmax(1) == data.y_test))
    shown = cli("predict", path, "--data", "mnist-5k", "--index", "3")
    assert "logits" in shown and "probability" not in shown
    assert cli("predict", path, "--data", "mnist-5k", "--index", "3", "--json")["logits"]


def test_a_model_declared_on_1_by_784_gives_10_outputs_per_sample(tmp_path, cli):
    from denselab.data import load_dataset

    keras = _keras()
    data = load_dataset("mnist-5k")
    model = keras.Sequential([keras.Input((1, 784)), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "row.keras")
    expected = model.predict(data.x_test.reshape(-1, 1, 784), verbose=0)[:, 0]
    scores = cli("evaluate", tmp_path / "row.keras", "--data", "mnist-5k", "--json")
    assert scores["accuracy"] == pytest.approx(np.mean(expected.argmax(1) == data.y_test))
    predicted = cli("predict", tmp_path / "row.keras", "--data", "mnist-5k", "--json")
    assert predicted["output"] == pytest.approx(expected[0].tolist(), abs=1e-6)
    assert "predicted class" in cli("predict", tmp_path / "row.keras", "--data", "mnist-5k")
    cli("plot", tmp_path / "row.keras", "--data", "mnist-5k", "--out", tmp_path / "pictures")


def test_one_hot_labels_are_classes(logits_model, tmp_path, cli):
    path, _, data = logits_model
    eye = np.eye(10, dtype=np.float32)
    np.savez(
        tmp_path / "onehot.npz",
        x_train=data.x_train, y_train=eye[data.y_train],
        x_test=data.x_test, y_test=eye[data.y_test],
    )  # fmt: skip
    as_classes = cli("evaluate", path, "--data", "mnist-5k", "--json")
    one_hot = cli("evaluate", path, "--data", tmp_path / "onehot.npz", "--json")
    assert one_hot["accuracy"] == as_classes["accuracy"]
    assert one_hot["loss"] == pytest.approx(as_classes["loss"], rel=1e-6)


def test_rows_that_are_not_one_hot_stay_numbers_to_predict(tmp_path):
    """Control: two targets that happen to be 0 or 1 but not one per row are a regression."""
    from denselab.data import load_dataset

    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = np.array([[1, 1], [0, 0]] * 20, np.float32)
    np.savez(tmp_path / "two.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    data = load_dataset(str(tmp_path / "two.npz"))
    assert data.task == "regression" and data.y_train.shape == (40, 2)
