"""The models people actually have: Keras 2 files, folded normalisation, graphs that are not chains.

The corpus is written here. Keras 2 ``.h5`` files are written by hand with h5py, byte for byte
as Keras 2.1 to tf.keras 2.3 laid them out (a list-style Sequential config, no InputLayer,
``batch_input_shape``, ``VarianceScaling`` initializers, ``kernel:0`` weight names); with
``tf_keras`` installed, tf.keras itself saves a few more. Each file goes through the real
command line (``denselab.cli.main``, in-process): ``inspect``, ``explain`` (the hand forward pass
against the rebuilt Keras model, relative difference < 1e-5) and ``deploy`` (0 samples where
the C engine differs from TFLite Micro; the accuracy against labels computed here in NumPy from
the stored arrays). Graphs that are not one chain are refused by name in every command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

# --- Keras 2 files, written as Keras 2 wrote them ---------------------------------------------

VARIANCE_SCALING = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
}


def _dense(name: str, units: int, activation: str, **extra) -> dict:
    """A Dense layer's config as Keras 2.1/2.2 saved it (old initializer spellings)."""
    return {
        "class_name": "Dense",
        "config": {
            "name": name,
            "trainable": True,
            **extra,
            "units": units,
            "activation": activation,
            "use_bias": True,
            "kernel_initializer": VARIANCE_SCALING,
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None,
            "bias_regularizer": None,
            "activity_regularizer": None,
            "kernel_constraint": None,
            "bias_constraint": None,
        },
    }


def _layer(kind: str, name: str, **config) -> dict:
    return {"class_name": kind, "config": {"name": name, "trainable": True, **config}}


def _functional(layers: list[tuple[dict, list[str]]], inputs: list[str], outputs: list[str]):
    """A Keras 2 functional ("Model") config: each layer with the layers it is called on."""
    return {
        "class_name": "Model",
        "config": {
            "name": "model_1",
            "layers": [
                {**layer, "name": layer["config"]["name"], "inbound_nodes": _nodes(sources)}
                for layer, sources in layers
            ],
            "input_layers": [[name, 0, 0] for name in inputs],
            "output_layers": [[name, 0, 0] for name in outputs],
        },
    }


def _nodes(sources: list[str]) -> list:
    return [[[source, 0, 0, {}] for source in sources]] if sources else []


def write_keras2_h5(path: Path, config: dict, weights: dict, keras_version: str) -> Path:
    """An ``.h5`` file laid out as ``model.save`` of Keras 2 wrote it.

    ``weights`` maps a layer name to ``[(weight name, array), ...]``; a name may carry the
    group of a nested model (``dense_3/kernel:0`` inside ``sequential_1``).
    """
    with h5py.File(path, "w") as file:
        file.attrs["keras_version"] = keras_version.encode()
        file.attrs["backend"] = b"tensorflow"
        file.attrs["model_config"] = json.dumps(config).encode()
        group = file.create_group("model_weights")
        group.attrs["layer_names"] = np.array([name.encode() for name in weights])
        for layer, arrays in weights.items():
            layer_group = group.create_group(layer)
            layer_group.attrs["weight_names"] = np.array([n.encode() for n, _ in arrays])
            for weight_name, array in arrays:
                layer_group.create_dataset(weight_name, data=array)
    return path


def _dense_weights(rng, name: str, n_inputs: int, units: int, scale: float = 1.0):
    kernel = rng.normal(0, scale / np.sqrt(n_inputs), (n_inputs, units)).astype(np.float32)
    bias = rng.normal(0, 0.1, units).astype(np.float32)
    return [(f"{name}/kernel:0", kernel), (f"{name}/bias:0", bias)]


def _bn_weights(rng, name: str, size: int):
    return [
        (f"{name}/gamma:0", rng.uniform(0.5, 2.0, size).astype(np.float32)),
        (f"{name}/beta:0", rng.normal(0, 0.5, size).astype(np.float32)),
        (f"{name}/moving_mean:0", rng.normal(0, 1.0, size).astype(np.float32)),
        (f"{name}/moving_variance:0", rng.uniform(0.2, 3.0, size).astype(np.float32)),
    ]


# --- the same networks in NumPy: the labels the deploy accuracies are checked against -------


def _arrays(weights: dict, layer: str) -> dict[str, np.ndarray]:
    return {n.split("/")[-1].split(":")[0]: a.astype(np.float64) for n, a in weights[layer]}


def _act(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def _reference(steps: list, weights: dict):
    """``x -> output``; steps ``("dense", layer, activation)``, ``("bn", layer)``, ``("relu",)``."""

    def forward(x: np.ndarray) -> np.ndarray:
        a = x.reshape(len(x), -1).astype(np.float64)
        for step in steps:
            if step[0] == "relu":
                a = np.maximum(a, 0)
                continue
            w = _arrays(weights, step[1])
            if step[0] == "dense":
                a = _act(a @ w["kernel"] + w["bias"], step[2])
            else:  # BatchNormalization at inference
                a = (a - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3)
                a = a * w["gamma"] + w["beta"]
        return a

    return forward


class Legacy:
    """One file of the corpus and what it should give."""

    def __init__(self, path, reference, input_shape, task, folded=()):
        self.path, self.reference = path, reference
        self.input_shape, self.task, self.folded = input_shape, task, list(folded)

    def __repr__(self) -> str:
        return self.path.name


def _keras21_list_sequential(folder: Path, rng) -> Legacy:
    """Keras 2.1: the Sequential config is a bare list; the first layer carries the shape."""
    weights = {
        "dense_1": _dense_weights(rng, "dense_1", 8, 30, 2.0),
        "dense_2": _dense_weights(rng, "dense_2", 30, 3, 2.0),
    }
    config = {
        "class_name": "Sequential",
        "config": [
            _dense("dense_1", 30, "relu", batch_input_shape=[None, 8], dtype="float32"),
            _layer("Dropout", "dropout_1", rate=0.2, noise_shape=None, seed=None),
            _dense("dense_2", 3, "softmax"),
        ],
    }
    path = write_keras2_h5(folder / "keras21-list.h5", config, weights, "2.1.6")
    steps = [("dense", "dense_1", "relu"), ("dense", "dense_2", "softmax")]
    return Legacy(path, _reference(steps, weights), (8,), "classification")


def _keras1_output_dim(folder: Path, rng) -> Legacy:
    """Keras 1.2: ``output_dim``, ``input_dim``, ``bias``, and weights named ``dense_1_W``."""
    kernel, bias = (a for _, a in _dense_weights(rng, "dense_1", 3, 2))
    weights = {"dense_1": [("dense_1_W", kernel), ("dense_1_b", bias)]}
    dense = _layer("Dense", "dense_1", output_dim=2, input_dim=3, activation="tanh", bias=True)
    config = {"class_name": "Sequential", "config": [dense]}
    path = write_keras2_h5(folder / "keras1.h5", config, weights, "1.2.2")
    return Legacy(path, lambda x: np.tanh(x @ kernel + bias), (3,), "regression")


def _keras22_shape_from_kernel(folder: Path, rng) -> Legacy:
    """Keras 2.2, no InputLayer and no batch_input_shape: the 8x30 kernel says (8,)."""
    weights = {
        "dense_1": _dense_weights(rng, "dense_1", 8, 30),
        "dense_2": _dense_weights(rng, "dense_2", 30, 1),
    }
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_1",
            "layers": [
                _dense("dense_1", 30, "linear"),
                _layer("Activation", "activation_1", activation="relu"),
                _dense("dense_2", 1, "linear"),
            ],
        },
    }
    path = write_keras2_h5(folder / "keras22-no-shape.h5", config, weights, "2.2.4")
    steps = [("dense", "dense_1", "relu"), ("dense", "dense_2", "linear")]
    return Legacy(path, _reference(steps, weights), (8,), "regression")


def _tf_keras23_functional_batchnorm(folder: Path, rng) -> Legacy:
    """tf.keras 2.3: a functional "Model"; Dense -> BatchNormalization -> ReLU -> softmax."""
    weights = {
        "dense_1": _dense_weights(rng, "dense_1", 6, 16),
        "batch_normalization_1": _bn_weights(rng, "batch_normalization_1", 16),
        "dense_2": _dense_weights(rng, "dense_2", 16, 4, 2.0),
    }
    inputs = _layer("InputLayer", "input_1", batch_input_shape=[None, 6], dtype="float32")
    bn = _layer(
        "BatchNormalization", "batch_normalization_1", axis=[1], momentum=0.99, epsilon=0.001
    )
    bn["config"].update(center=True, scale=True)
    relu = _layer("ReLU", "re_lu_1", max_value=None, negative_slope=0.0, threshold=0.0)
    config = _functional(
        [
            (inputs, []),
            (_dense("dense_1", 16, "linear"), ["input_1"]),
            (bn, ["dense_1"]),
            (relu, ["batch_normalization_1"]),
            (_dense("dense_2", 4, "softmax"), ["re_lu_1"]),
        ],
        ["input_1"],
        ["dense_2"],
    )
    path = write_keras2_h5(folder / "tf-keras23-batchnorm.h5", config, weights, "2.3.0-tf")
    steps = [
        ("dense", "dense_1", "linear"),
        ("bn", "batch_normalization_1"),
        ("relu",),
        ("dense", "dense_2", "softmax"),
    ]
    reference = _reference(steps, weights)
    return Legacy(path, reference, (6,), "classification", ["batch_normalization_1"])


def _keras22_image_28x28x1(folder: Path, rng) -> Legacy:
    """An MNIST model declared on (28, 28, 1) images: Flatten carries the shape."""
    weights = {"dense_1": _dense_weights(rng, "dense_1", 784, 10, 8.0)}
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_1",
            "layers": [
                _layer("Flatten", "flatten_1", batch_input_shape=[None, 28, 28, 1]),
                _dense("dense_1", 10, "softmax"),
            ],
        },
    }
    path = write_keras2_h5(folder / "keras22-image.h5", config, weights, "2.2.4")
    return Legacy(
        path, _reference([("dense", "dense_1", "softmax")], weights), (28, 28), "classification"
    )


def _nested_config(hidden: int, inner: int, activation: str) -> dict:
    """Input(4) -> dense_1 (``hidden``, relu) -> Sequential ``sequential_1`` of dense_2
    (``inner``, ``activation``) and dense_3 (2, linear), as Keras 2.2 saved it."""
    nested = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_1",
            "layers": [
                _dense("dense_2", inner, activation, batch_input_shape=[None, hidden]),
                _dense("dense_3", 2, "linear"),
            ],
        },
    }
    inputs = _layer("InputLayer", "input_1", batch_input_shape=[None, 4], dtype="float32")
    layers = [(inputs, []), (_dense("dense_1", hidden, "relu"), ["input_1"])]
    return _functional([*layers, (nested, ["dense_1"])], ["input_1"], ["sequential_1"])


def _keras22_nested_sequential(folder: Path, rng) -> Legacy:
    """A Sequential inside a functional model: its weights sit in the nested model's group."""
    inner = _dense_weights(rng, "dense_2", 12, 5)
    weights = {
        "dense_1": _dense_weights(rng, "dense_1", 4, 12),
        "sequential_1": inner + _dense_weights(rng, "dense_3", 5, 2),
    }
    config = _nested_config(12, 5, "tanh")
    path = write_keras2_h5(folder / "keras22-nested.h5", config, weights, "2.2.4")
    w1, w2, w3 = (
        _arrays(weights, "dense_1"),
        {n.split("/")[1].split(":")[0]: a for n, a in inner},
        {n.split("/")[1].split(":")[0]: a for n, a in weights["sequential_1"][2:]},
    )

    def reference(x):
        a = np.maximum(x.reshape(len(x), -1) @ w1["kernel"] + w1["bias"], 0)
        return np.tanh(a @ w2["kernel"] + w2["bias"]) @ w3["kernel"] + w3["bias"]

    return Legacy(path, reference, (4,), "regression")


def _tf_keras_saved(folder: Path, rng) -> list[Legacy]:
    """Files tf.keras itself saves (when tf_keras is installed): normalisation layers."""
    try:
        import tf_keras
    except ImportError:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is a legacy format"
        return _tf_keras_models(tf_keras, folder, rng)


def _tf_keras_models(tf_keras, folder: Path, rng) -> list[Legacy]:
    tf_keras.utils.set_random_seed(0)
    x = rng.normal(3.0, 2.0, (200, 5)).astype(np.float32)
    normalization = tf_keras.layers.Normalization(axis=-1)
    normalization.adapt(x)
    regressor = tf_keras.Sequential(
        [
            tf_keras.Input((5,)),
            normalization,
            tf_keras.layers.Dense(16, activation="relu"),
            tf_keras.layers.BatchNormalization(),
            tf_keras.layers.Dense(1),
        ]
    )
    bn = regressor.layers[2]
    bn.set_weights([w + rng.uniform(0.1, 0.5, w.shape) for w in bn.get_weights()])
    regressor.save(folder / "tf-keras-normalization.h5")
    classifier = tf_keras.Sequential(
        [
            tf_keras.Input((28, 28, 1)),
            tf_keras.layers.Rescaling(1 / 255.0),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    classifier.save(folder / "tf-keras-rescaling.h5")

    def saved(model):
        return lambda data: model.predict(
            data.reshape(len(data), *model.input_shape[1:]), verbose=0
        )

    return [
        Legacy(
            folder / "tf-keras-normalization.h5",
            saved(regressor),
            (5,),
            "regression",
            [regressor.layers[0].name, bn.name],
        ),
        Legacy(
            folder / "tf-keras-rescaling.h5",
            saved(classifier),
            (28, 28),
            "classification",
            [classifier.layers[0].name],
        ),
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Legacy]:
    folder = tmp_path_factory.mktemp("wild")
    rng = np.random.default_rng(12)
    files = [
        _keras21_list_sequential(folder, rng),
        _keras22_shape_from_kernel(folder, rng),
        _tf_keras23_functional_batchnorm(folder, rng),
        _keras22_image_28x28x1(folder, rng),
        _keras22_nested_sequential(folder, rng),
        _keras1_output_dim(folder, rng),
        *_tf_keras_saved(folder, rng),
    ]
    return {legacy.path.name: legacy for legacy in files}


HANDWRITTEN = [
    "keras21-list.h5",
    "keras22-no-shape.h5",
    "tf-keras23-batchnorm.h5",
    "keras22-image.h5",
    "keras22-nested.h5",
    "keras1.h5",
]
TF_KERAS = ["tf-keras-normalization.h5", "tf-keras-rescaling.h5"]


def _legacy(corpus, name: str) -> Legacy:
    if name not in corpus:
        pytest.skip("tf_keras is not installed")
    return corpus[name]


def _inputs(legacy: Legacy, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if legacy.input_shape == (28, 28):
        scale = 255.0 if "rescaling" in legacy.path.name else 1.0
        return (rng.integers(0, 256, (count, 28, 28)) / 255.0 * scale).astype(np.float32)
    return rng.normal(
        2.0 if "normalization" in legacy.path.name else 0.0, 1.5, (count, *legacy.input_shape)
    ).astype(np.float32)


def _dataset(legacy: Legacy, folder: Path) -> Path:
    """An .npz whose labels are what the stored arrays compute (NumPy, or tf.keras itself)."""
    x_train, x_test = _inputs(legacy, 200, seed=1), _inputs(legacy, 100, seed=2)
    y_test = np.asarray(legacy.reference(x_test))
    y_train = np.asarray(legacy.reference(x_train))
    if legacy.task == "classification":
        y_train, y_test = y_train.argmax(1), y_test.argmax(1)
    else:
        y_train, y_test = y_train[:, 0], y_test[:, 0]
    path = folder / f"{legacy.path.stem}.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


# --- every file loads, as the network it stores --------------------------------------------


@pytest.mark.parametrize("name", HANDWRITTEN + TF_KERAS)
def test_a_legacy_file_loads_as_the_network_it_stores(corpus, name):
    from denselab.explain import forward
    from denselab.model import dense_network, load_model

    legacy = _legacy(corpus, name)
    model = load_model(legacy.path)
    network = dense_network(model)
    assert network.input_shape == legacy.input_shape
    assert [f for layer in network.layers for f in layer.folded] == legacy.folded
    x = _inputs(legacy, 16)
    expected = np.asarray(legacy.reference(x))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5 * scale)
    np.testing.assert_allclose(forward(network, x)[-1], expected, atol=1e-5 * scale)


def test_a_sequential_without_input_shape_takes_it_from_its_first_kernel(corpus):
    from denselab.model import dense_network, load_model

    model = load_model(corpus["keras22-no-shape.h5"].path)
    assert tuple(model.inputs[0].shape) == (None, 8)
    assert repr(dense_network(model)) == "DenseNetwork(8-30-1)"


@pytest.mark.parametrize("name", HANDWRITTEN + TF_KERAS)
def test_inspect_explain_and_explore_a_legacy_file(corpus, cli, tmp_path, name):
    legacy = _legacy(corpus, name)
    shown = cli("inspect", legacy.path, "--json")
    assert [f for row in shown["layers"] for f in row["folded"]] == legacy.folded
    x = _inputs(legacy, 1, seed=3)[0]
    np.save(tmp_path / "x.npy", x)
    result = cli("explain", legacy.path, "--input", tmp_path / "x.npy", "--json")
    assert result["max_rel_diff"] < 1e-5
    expected = np.asarray(legacy.reference(x[None]))[0]
    np.testing.assert_allclose(
        result["hand_prediction"], expected, atol=1e-5 * np.abs(expected).max()
    )
    words = cli("explain", legacy.path, "--input", tmp_path / "x.npy")
    assert "relative to the largest output" in words
    for folded in legacy.folded:
        assert folded in words
    cli("explore", legacy.path, "--out", tmp_path / "page.html")
    assert (tmp_path / "page.html").stat().st_size > 0


# --- deploy: bit-exact with TFLite Micro, and the right accuracy ------------------------------

DEPLOYED = [
    "keras21-list.h5",
    "keras22-no-shape.h5",
    "tf-keras23-batchnorm.h5",
    "keras22-image.h5",
    "tf-keras-normalization.h5",
]


@pytest.mark.parametrize("name", DEPLOYED)
def test_deploy_a_legacy_file_bit_exact(corpus, cli, tmp_path, name):
    pytest.importorskip("tflite_micro")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the generated C")
    legacy = _legacy(corpus, name)
    data = _dataset(legacy, tmp_path)
    out = tmp_path / "fw"
    report = cli("deploy", legacy.path, "--data", data, "--out", out, "--target", "none", "--json")
    assert report["c_vs_tflm_differing_samples"] == 0
    assert report["test_samples"] == 100
    if legacy.task == "classification":
        assert report["keras_accuracy"] == 1.0  # the rebuilt model computes the stored network
        assert report["c_int8_accuracy"] == report["tflm_int8_accuracy"] >= 0.85
    else:
        assert report["keras_mae"] < 1e-4 * (1 + np.abs(np.load(data)["y_test"]).max())
    assert (out / "report.json").exists()
    verified = cli("verify", out, "--json")  # finds the same .npz through report.json
    assert verified["c_vs_tflm_differing_samples"] == 0 and verified["test_samples"] == 100


# --- folding normalisation: Keras 3 models too -----------------------------------------------


def _keras3_normalized(keras, rng):
    """The TF regression tutorial's shape: Normalization, Dense, BatchNormalization, Dense."""
    x = rng.normal(5.0, 3.0, (300, 6)).astype(np.float32)
    normalization = keras.layers.Normalization(name="normalization")
    normalization.adapt(x)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            normalization,
            keras.layers.Dense(12, name="dense"),
            keras.layers.BatchNormalization(name="bn_after_dense"),
            keras.layers.ReLU(),
            keras.layers.BatchNormalization(name="bn_after_relu"),
            keras.layers.Dense(1, name="out"),
            keras.layers.Rescaling(1000.0, offset=2_824_455.0, name="to_dollars"),
        ]
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w + rng.uniform(0.2, 1.0, w.shape) for w in layer.get_weights()])
    return model, x


def test_normalisation_layers_fold_into_plain_dense_layers(tmp_path):
    from denselab.backend import keras as _keras
    from denselab.explain import explain, forward
    from denselab.model import dense_network

    keras = _keras()
    model, x = _keras3_normalized(keras, np.random.default_rng(0))
    network = dense_network(model)
    assert [layer.folded for layer in network.layers] == [
        ["normalization", "bn_after_dense"],
        ["bn_after_relu", "to_dollars"],
    ]
    assert [layer.activation for layer in network.layers] == ["relu", "linear"]
    expected = model.predict(x, verbose=0)
    assert np.abs(expected).min() > 1e6  # outputs around 2,824,455: a relative check matters
    hand = forward(network, x)[-1]
    assert np.max(np.abs(hand - expected) / np.abs(expected).max()) < 1e-5
    assert explain(network, model, x[0]).max_rel_diff < 1e-5


def test_relative_difference_judges_a_large_output_by_its_size():
    from denselab.explain import Explanation

    one_rounding_step = Explanation(
        np.zeros(1), [], np.array([2_824_455.75], np.float32), np.array([2_824_456.0])
    )
    assert one_rounding_step.max_abs_diff == 0.25
    assert one_rounding_step.max_rel_diff < 1e-7


def test_a_keras3_normalized_model_deploys_bit_exact(cli, tmp_path):
    pytest.importorskip("tflite_micro")
    from denselab.backend import keras as _keras

    keras = _keras()
    rng = np.random.default_rng(1)
    model, x = _keras3_normalized(keras, rng)
    model.save(tmp_path / "normalized.keras")
    y = model.predict(x, verbose=0)[:, 0]
    np.savez(
        tmp_path / "data.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:]
    )
    report = cli(
        "deploy",
        tmp_path / "normalized.keras",
        "--data",
        tmp_path / "data.npz",
        "--out",
        tmp_path / "fw",
        "--target",
        "none",
        "--json",
    )
    assert report["c_vs_tflm_differing_samples"] == 0
    assert report["keras_mae"] < 1.0
    assert any("folded" in layer for layer in report["layers"])


def test_one_sigmoid_unit_predicts_class_1_from_probability_one_half(cli, tmp_path):
    """A binary classifier's one sigmoid output is p(class 1), not one column to argmax."""
    from denselab.backend import keras as _keras

    keras = _keras()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.layers[0].set_weights(
        [np.array([[4.0], [4.0]], np.float32), np.array([-6.0], np.float32)]
    )
    model.save(tmp_path / "xor-ish.keras")
    for x, expected in (([1.0, 1.0], 1), ([0.0, 1.0], 0)):
        np.save(tmp_path / "x.npy", np.array(x, np.float32))
        for command in ("predict", "explain"):
            result = cli(
                command, tmp_path / "xor-ish.keras", "--input", tmp_path / "x.npy", "--json"
            )
            assert result["predicted_class"] == expected


# --- activations the C engine does not match yet: refused by name ----------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda k: k.layers.LeakyReLU(negative_slope=0.2, name="leaky"), "'leaky' is a LeakyReLU"),
        (lambda k: k.layers.PReLU(name="prelu"), "'prelu' is a PReLU"),
        (lambda k: k.layers.ELU(name="elu"), "'elu' is a ELU"),
        (lambda k: k.layers.Activation("elu", name="act"), "uses activation 'elu'"),
    ],
    ids=["LeakyReLU", "PReLU", "ELU", "Activation(elu)"],
)
def test_activations_tflm_has_but_the_engine_lacks_are_refused_by_name(make, message):
    from denselab.backend import keras as _keras
    from denselab.errors import DenselabError
    from denselab.model import dense_network

    keras = _keras()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), make(keras)])
    with pytest.raises(DenselabError, match=message) as refused:
        dense_network(model)
    assert "\n" not in str(refused.value)


def test_a_leaky_relu_of_slope_zero_is_a_relu():
    from denselab.backend import keras as _keras
    from denselab.model import dense_network

    keras = _keras()
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.LeakyReLU(negative_slope=0.0)]
    )
    assert dense_network(model).layers[0].activation == "relu"


# --- graphs that are not one chain: refused by name, in every command ------------------------


def _not_chains(folder: Path) -> dict[str, tuple[Path, str]]:
    """Keras 3 models (and one Keras 2 file) that are not one chain, and the reason to give."""
    from denselab.backend import keras as _keras

    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((4,), name="pixels")
    trunk = layers.Dense(8, activation="relu", name="trunk")(inputs)
    heads = [layers.Dense(3, activation="softmax", name=f"head_{i}")(trunk) for i in range(3)]
    keras.Model(inputs, heads).save(folder / "three-heads.keras")

    left, right = keras.Input((4,), name="left"), keras.Input((4,), name="right")
    joined = layers.Concatenate(name="joined")([left, right])
    keras.Model([left, right], layers.Dense(2, name="out")(joined)).save(
        folder / "two-inputs.keras"
    )

    shared = layers.Dense(4, activation="relu", name="shared")
    keras.Model(inputs, shared(shared(inputs))).save(folder / "shared.keras")

    branch_a = layers.Dense(4, name="branch_a")(inputs)
    branch_b = layers.Dense(4, name="branch_b")(inputs)
    added = layers.Add(name="add")([branch_a, branch_b])
    keras.Model(inputs, layers.Dense(2, name="out")(added)).save(folder / "branches.keras")

    rng = np.random.default_rng(0)
    inputs2 = _layer("InputLayer", "input_1", batch_input_shape=[None, 4], dtype="float32")
    config = _functional(
        [(inputs2, []), (_dense("trunk", 8, "relu"), ["input_1"])]
        + [(_dense(f"head_{i}", 3, "softmax"), ["trunk"]) for i in range(3)],
        ["input_1"],
        [f"head_{i}" for i in range(3)],
    )
    weights = {"trunk": _dense_weights(rng, "trunk", 4, 8)}
    weights |= {f"head_{i}": _dense_weights(rng, f"head_{i}", 8, 3) for i in range(3)}
    write_keras2_h5(folder / "three-heads.h5", config, weights, "2.2.4")
    return {
        "three heads": (folder / "three-heads.keras", "has 3 outputs (head_0, head_1, head_2)"),
        "two inputs": (folder / "two-inputs.keras", "has 2 inputs (left, right)"),
        "shared layer": (folder / "shared.keras", "layer 'shared' is applied 2 times"),
        "branches": (folder / "branches.keras", "layer 'add' (Add) joins 2 branches"),
        "keras 2 heads": (folder / "three-heads.h5", "(saved by Keras 2.2.4): the model has 3"),
    }


@pytest.fixture(scope="module")
def not_chains(tmp_path_factory):
    folder = tmp_path_factory.mktemp("not-chains")
    np.save(folder / "x.npy", np.zeros(4, np.float32))
    np.savez(
        folder / "data.npz",
        x_train=np.zeros((6, 4), np.float32),
        y_train=np.array([0, 1, 2] * 2),
        x_test=np.zeros((3, 4), np.float32),
        y_test=np.array([0, 1, 2]),
    )
    return folder, _not_chains(folder)


COMMANDS = {
    "inspect": [],
    "explain": ["--input", "{f}/x.npy"],
    "deploy": ["--data", "{f}/data.npz", "--out", "{f}/fw"],
    "explore": ["--out", "{f}/page.html"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "graph", ["three heads", "two inputs", "shared layer", "branches", "keras 2 heads"]
)
def test_a_graph_that_is_not_one_chain_is_refused_by_name(not_chains, capsys, graph, command):
    from denselab.cli import main

    folder, models = not_chains
    path, reason = models[graph]
    before = sorted(p.name for p in folder.iterdir())
    capsys.readouterr()
    args = [a.format(f=folder) for a in COMMANDS[command]]
    status = main([command, str(path), *args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"denselab {command}: ")
    assert reason in lines[0]
    assert "one chain of layers" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


# --- (28, 28, 1) inputs are the 28x28 image ------------------------------------------------


def test_an_image_model_declared_28x28x1_takes_a_picture_and_gets_a_page(corpus, cli, tmp_path):
    from PIL import Image

    legacy = corpus["keras22-image.h5"]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "digit.png")
    result = cli("predict", legacy.path, "--input", tmp_path / "digit.png", "--json")
    assert result["predicted_class"] == int(np.argmax(result["output"]))
    data = _dataset(legacy, tmp_path)
    cli("explore", legacy.path, "--data", data, "--out", tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert '"image":{"height":28,"width":28}' in page


# --- what cannot be read: one line, which Keras saved it, and why ----------------------------


def _conv_file(path: Path) -> Path:
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_1",
            "layers": [
                _layer("Conv2D", "conv2d_1", filters=2, kernel_size=[3, 3]),
                _dense("dense_1", 2, "softmax"),
            ],
        },
    }
    config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, 8, 8, 1]
    return write_keras2_h5(path, config, {"conv2d_1": [], "dense_1": []}, "2.2.4")


def test_an_h5_that_cannot_be_read_says_which_keras_saved_it_and_why(tmp_path):
    from denselab.errors import DenselabError
    from denselab.model import load_model

    with pytest.raises(DenselabError) as refused:
        load_model(_conv_file(tmp_path / "conv.h5"))
    message = str(refused.value)
    assert "(saved by Keras 2.2.4): layer 'conv2d_1' is a Conv2D" in message
    rng = np.random.default_rng(0)
    config = {"class_name": "Sequential", "config": [_dense("dense_1", 3, "relu")]}
    missing = write_keras2_h5(
        tmp_path / "missing.h5",
        config,
        {"dense_1": _dense_weights(rng, "dense_1", 4, 3)[:1]},
        "2.1.6",
    )
    with pytest.raises(
        DenselabError, match=r"\(saved by Keras 2\.1\.6\): layer 'dense_1' has no 'bias'"
    ):
        load_model(missing)
    wrong = write_keras2_h5(
        tmp_path / "wrong.h5",
        {
            "class_name": "Sequential",
            "config": [_dense("dense_1", 5, "relu", batch_input_shape=[None, 4])],
        },
        {"dense_1": _dense_weights(rng, "dense_1", 4, 3)},
        "2.1.6",
    )
    with pytest.raises(
        DenselabError, match=r"kernel has shape \(4, 3\) in the file, the layer needs \(4, 5\)"
    ):
        load_model(wrong)


def test_an_h5_refusal_is_one_line_and_loading_an_h5_never_imports_tensorflow(corpus, tmp_path):
    """The real command: no absl, TensorFlow or Keras warnings around the one line."""
    bad = _conv_file(tmp_path / "bad.h5")
    denselab = Path(sys.executable).parent / "denselab"
    command = [str(denselab)] if denselab.exists() else [sys.executable, "-m", "denselab.cli"]
    refusal = subprocess.Popen(
        [*command, "inspect", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    loads = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from denselab.model import dense_network, load_model; "
            f"dense_network(load_model({str(corpus['keras21-list.h5'].path)!r})); "
            "print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out, err = refusal.communicate(timeout=120)
    assert refusal.returncode == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"denselab inspect: {bad} (saved by Keras 2.2.4): layer 'conv2d_1'")
    assert out == ""
    assert loads.returncode == 0, loads.stderr
    assert loads.stdout.strip() == "False"


# --- what a layer does to the order or scale of inputs must not be lost ---------------------


def _channels_first_h5(folder: Path, channels: int) -> Path:
    """A Keras 2 file of a Theano-era model: ``Flatten(data_format="channels_first")`` on
    (channels, 3, 3) images, then Dense(4)."""
    rng = np.random.default_rng(channels)
    weights = {"dense_1": _dense_weights(rng, "dense_1", channels * 9, 4)}
    flatten = _layer(
        "Flatten",
        "flatten_1",
        batch_input_shape=[None, channels, 3, 3],
        data_format="channels_first",
    )
    config = {
        "class_name": "Sequential",
        "config": {"name": "sequential_1", "layers": [flatten, _dense("dense_1", 4, "linear")]},
    }
    return write_keras2_h5(folder / f"cf{channels}.h5", config, weights, "2.2.4")


def test_a_channels_first_flatten_that_reorders_the_inputs_is_refused(tmp_path, capsys):
    """Keras moves the channels last before flattening; read as the array's order, the first
    kernel's rows would meet the wrong inputs and every answer would be wrong, unnoticed."""
    from denselab.backend import keras as _keras
    from denselab.cli import main

    keras = _keras()
    model = keras.Sequential(
        [
            keras.Input((2, 3, 3)),
            keras.layers.Flatten(data_format="channels_first"),
            keras.layers.Dense(4),
        ]
    )
    model.save(tmp_path / "cf.keras")
    for path in (tmp_path / "cf.keras", _channels_first_h5(tmp_path, 2)):
        capsys.readouterr()
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert "flattens channels first" in err and len(err.strip().splitlines()) == 1


def test_a_channels_first_flatten_of_one_channel_keeps_the_order(tmp_path, cli):
    """Control: with one channel, moving it last changes nothing, and the file is read."""
    path = _channels_first_h5(tmp_path, 1)
    x = np.random.default_rng(5).uniform(size=(1, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    why = cli("explain", path, "--input", tmp_path / "x.npy", "--json")
    with h5py.File(path) as file:
        kernel = np.asarray(file["model_weights/dense_1/dense_1/kernel:0"])
        bias = np.asarray(file["model_weights/dense_1/dense_1/bias:0"])
    assert why["agrees"]
    assert np.allclose(why["hand_prediction"], x.reshape(-1) @ kernel + bias, atol=1e-5)


def test_explain_fails_when_its_hand_computation_is_not_the_models(tmp_path, cli, monkeypatch):
    """The check can fail: a network read with its inputs in another order (as a lost
    channels-first Flatten would read it) exits 1 and says so; the true one exits 0."""
    import denselab.model as model_room
    from denselab.backend import keras as _keras

    keras = _keras()
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", np.linspace(0, 1, 6, dtype=np.float32))
    args = ("explain", tmp_path / "m.keras", "--input", tmp_path / "x.npy")
    assert cli(*args, "--json")["agrees"]
    read = model_room.dense_network

    def misread(model):
        network = read(model)
        network.layers[0].kernel = network.layers[0].kernel[::-1].copy()
        return network

    monkeypatch.setattr(model_room, "dense_network", misread)
    result = cli(*args, "--json", status=1)
    assert not result["agrees"] and result["max_rel_diff"] > result["tolerance"]
    assert "check failed" in cli(*args, status=1)


def test_a_layer_without_bias_counts_and_says_so(tmp_path, cli):
    from denselab.backend import keras as _keras

    keras = _keras()
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, use_bias=False, activation="relu"),
            keras.layers.Dense(3, use_bias=False, activation="softmax"),
        ]
    )
    model.save(tmp_path / "nb.keras")
    result = cli("inspect", tmp_path / "nb.keras", "--json")
    assert result["params"] == model.count_params() == 64
    assert [r["bias_size"] for r in result["layers"]] == [0, 0]
    shown = cli("inspect", tmp_path / "nb.keras")
    assert "use_bias=False" in shown and "one bias per neuron" not in shown


@pytest.fixture(scope="module")
def rescaling_model(tmp_path_factory):
    """Keras's tutorial pattern: ``Rescaling(1/255)`` first, trained on pixels 0-255."""
    from denselab.backend import keras as _keras
    from denselab.data import load_dataset

    keras = _keras()
    keras.utils.set_random_seed(0)
    data = load_dataset("mnist-5k")
    raw_train = np.round(data.x_train * 255).astype(np.float32)
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(raw_train, data.y_train, epochs=3, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("rescaling") / "tutorial.keras"
    model.save(path)
    return path, model, np.round(data.x_test * 255).astype(np.float32), data.y_test


def test_a_model_that_divides_by_255_itself_gets_pixels_0_to_255(rescaling_model, cli):
    """denselab's images are 0-1; given to this model as they are, it would divide them by 255
    again and guess (about 10% right). It gets them back at its own scale instead."""
    path, model, raw_test, y_test = rescaling_model
    expected = model.predict(raw_test, verbose=0)
    accuracy = float(np.mean(expected.argmax(1) == y_test))
    assert accuracy > 0.8
    scores = cli("evaluate", path, "--data", "mnist-5k", "--json")
    assert scores["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    predicted = cli("predict", path, "--data", "mnist-5k", "--index", "7", "--json")
    assert predicted["output"] == pytest.approx(expected[7].tolist(), abs=1e-6)
    assert "times 255" in predicted["preprocessing"][0]
    why = cli("explain", path, "--data", "mnist-5k", "--index", "7", "--json")
    assert why["agrees"] and why["hand_prediction"] == pytest.approx(expected[7], abs=1e-5)


def test_a_model_that_divides_by_255_itself_is_refused_where_it_would_be_quantized(
    rescaling_model, tmp_path, capsys
):
    from denselab.cli import main

    path = rescaling_model[0]
    capsys.readouterr()
    assert main(["deploy", str(path), "--data", "mnist-5k", "--out", str(tmp_path / "fw")]) == 2
    err = capsys.readouterr().err
    assert "scales pixels 0-255 itself" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fw").exists()


def test_the_page_shows_a_model_that_divides_by_255_on_pixels_0_to_1(
    rescaling_model, tmp_path, cli
):
    """The page's pixels (its drawing pad's too) are 0-1: it shows the Dense layer's own
    kernel, the one that meets the Rescaling layer's output."""
    from denselab.data import load_dataset
    from denselab.explore import explorer_data
    from denselab.model import dense_network, for_pixels_0_1

    path, model, raw_test, _ = rescaling_model
    network = dense_network(model)
    assert network.scales_raw_pixels == "rescaling"
    page = for_pixels_0_1(network)
    np.testing.assert_allclose(page.layers[0].kernel, model.layers[2].get_weights()[0], rtol=1e-6)
    x01 = load_dataset("mnist-5k").x_test[:5].reshape(5, -1)
    hand = x01 @ page.layers[0].kernel + page.layers[0].bias
    dense = keras_dense_input(model, raw_test[:5])
    np.testing.assert_allclose(hand, dense, rtol=1e-4, atol=1e-4)
    payload = explorer_data(page, load_dataset("mnist-5k"), 3)
    assert payload["test"]["encoding"] == "uint8"  # pixels k/255, as the lesson's
    cli("explore", path, "--data", "mnist-5k", "--out", tmp_path / "page.html")
    assert (tmp_path / "page.html").stat().st_size > 0


def keras_dense_input(model, raw):
    """The first Dense layer's pre-activation in Keras, from pixels 0-255."""
    rescaled = model.layers[0](raw)
    flat = model.layers[1](rescaled)
    kernel, bias = model.layers[2].get_weights()
    return np.asarray(flat) @ kernel + bias


def test_a_lesson_model_is_given_pixels_0_to_1_as_trained(lesson_run, cli):
    """Control: without a Rescaling layer nothing is scaled back."""
    from denselab.data import load_dataset
    from denselab.model import load_model

    model = load_model(lesson_run.path)
    data = load_dataset("mnist-5k")
    expected = model.predict(data.x_test[:8], verbose=0)
    predicted = cli("predict", lesson_run.path, "--index", "3", "--json")
    assert predicted["output"] == pytest.approx(expected[3].tolist(), abs=1e-6)
    assert "preprocessing" not in predicted


def _renamed_nested(folder: Path, inner_names: tuple[str, str]) -> tuple[Path, dict]:
    """A Keras 2.2 model with a nested Sequential whose weights TF1 stored under the names
    ``inner_names`` (``dense_2_1``: the scope made unique when the model was built twice)."""
    rng = np.random.default_rng(11)
    weights = {
        "dense_1": _dense_weights(rng, "dense_1", 4, 6),
        "sequential_1": _dense_weights(rng, inner_names[0], 6, 3)
        + _dense_weights(rng, inner_names[1], 3, 2),
    }
    config = _nested_config(6, 3, "relu")
    return write_keras2_h5(folder / f"{inner_names[0]}.h5", config, weights, "2.2.4"), weights


def test_weights_under_a_name_tf1_made_unique_are_found(tmp_path, cli):
    path, weights = _renamed_nested(tmp_path, ("dense_2_1", "dense_3_1"))
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    why = cli("explain", path, "--input", tmp_path / "x.npy", "--json")
    w1 = _arrays(weights, "dense_1")
    inner = {n: a.astype(np.float64) for n, a in weights["sequential_1"]}
    hidden = np.maximum(x @ w1["kernel"] + w1["bias"], 0)
    hidden = np.maximum(hidden @ inner["dense_2_1/kernel:0"] + inner["dense_2_1/bias:0"], 0)
    expected = hidden @ inner["dense_3_1/kernel:0"] + inner["dense_3_1/bias:0"]
    assert why["agrees"]
    np.testing.assert_allclose(why["hand_prediction"], expected, rtol=1e-5, atol=1e-6)


def test_two_renamed_copies_of_one_layers_weights_are_not_guessed_between(tmp_path, capsys):
    """Control: dense_2_1 and dense_2_2 could both be dense_2's; neither is taken."""
    from denselab.cli import main

    path, _ = _renamed_nested(tmp_path, ("dense_2_1", "dense_2_2"))
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 2
    assert "layer 'dense_2' has no 'kernel' weights" in capsys.readouterr().err


def test_a_model_keras_quantized_itself_is_refused_by_what_it_is(tmp_path, capsys):
    from denselab.backend import keras as _keras
    from denselab.cli import main

    keras = _keras()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="dense_q")])
    with warnings.catch_warnings():  # "InputLayer does not have a quantize method"
        warnings.simplefilter("ignore", UserWarning)
        model.quantize("int8")
    model.save(tmp_path / "q.keras")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "q.keras")]) == 2
    err = capsys.readouterr().err
    assert "'dense_q' was quantized by Keras (int8)" in err and len(err.splitlines()) == 1
