"""explain: any dense Keras model's prediction, recomputed from get_weights(), equals Keras's."""

import numpy as np
import pytest

from denselab.explain import explain, forward
from denselab.model import dense_network, load_model

ACTIVATIONS = ["relu", "linear", "sigmoid", "tanh", "softmax"]


def _plain_keras_model(seed: int, functional: bool):
    """A model a user made with plain Keras: 1-4 Dense layers of several widths."""
    import keras

    rng = np.random.default_rng(seed)
    n_inputs = int(rng.choice([1, 3, 17, 64, 784]))
    depth = int(rng.integers(1, 5))
    widths = [int(w) for w in rng.integers(1, 40, size=depth)]
    activations = [ACTIVATIONS[(seed + i) % len(ACTIVATIONS)] for i in range(depth)]
    shape = (28, 28) if n_inputs == 784 else (n_inputs,)
    inputs = keras.Input(shape=shape)
    x = keras.layers.Flatten()(inputs) if len(shape) == 2 else inputs
    layers = []
    for index, (width, activation) in enumerate(zip(widths, activations, strict=True)):
        initializer = keras.initializers.RandomNormal(stddev=0.5, seed=seed * 10 + index)
        layers.append(
            keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=initializer,
                bias_initializer=keras.initializers.RandomNormal(
                    stddev=0.3, seed=seed * 10 + index + 5
                ),
            )
        )
    if functional:
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x), shape
    flat = [keras.layers.Flatten()] if len(shape) == 2 else []
    return keras.Sequential([keras.Input(shape=shape), *flat, *layers]), shape


@pytest.mark.parametrize("seed", range(10))
def test_explain_matches_keras_on_models_saved_by_plain_keras(seed, tmp_path, cli):
    model, shape = _plain_keras_model(seed, functional=seed % 2 == 0)
    path = tmp_path / ("model.h5" if seed % 3 == 0 else "model.keras")
    model.save(path)
    x = np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = cli("explain", path, "--input", tmp_path / "x.npy", "--json")
    assert result["max_abs_diff"] < 1e-5
    keras_output = model.predict(x[None], verbose=0)[0]
    np.testing.assert_allclose(result["hand_prediction"], keras_output, atol=1e-5)


def test_separate_activation_layers_are_folded_into_their_dense_layer():
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(5,)),
            keras.layers.Dense(4),
            keras.layers.ReLU(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3),
            keras.layers.Activation("softmax"),
        ]
    )
    network = dense_network(model)
    assert [layer.activation for layer in network.layers] == ["relu", "softmax"]
    x = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32)
    np.testing.assert_allclose(forward(network, x)[-1], model.predict(x, verbose=0), atol=1e-6)


def test_explain_shows_each_neuron_as_weighted_sum_plus_bias(lesson_run):
    from denselab.data import load_dataset

    network = dense_network(lesson_run.model)
    x = load_dataset("mnist-5k").x_test[0]
    result = explain(network, lesson_run.model, x)
    assert result.max_abs_diff < 1e-5
    first = result.layers[0][0]
    assert first.z == pytest.approx(float(first.contributions.sum() + first.bias), abs=1e-4)
    assert "779 more inputs" in first.formula()


def test_inspect_lists_the_lesson_layers(lesson_run, cli):
    result = cli("inspect", lesson_run.path, "--layer", "2", "--neuron", "7", "--json")
    assert [r["kernel_shape"] for r in result["layers"]] == [[784, 20], [20, 10]]
    assert result["params"] == 15680 + 20 + 200 + 10
    kernel, bias = lesson_run.model.layers[-1].get_weights()
    np.testing.assert_allclose(result["neuron"]["weights"], kernel[:, 7])
    assert result["neuron"]["bias"] == pytest.approx(float(bias[7]))


def test_evaluate_and_predict_a_test_digit(lesson_run, cli):
    scores = cli("evaluate", lesson_run.path, "--json")
    assert scores["accuracy"] == pytest.approx(lesson_run.metrics["val_accuracy"], abs=1e-6)
    result = cli("predict", lesson_run.path, "--index", "0", "--json")
    assert result["predicted_class"] == int(np.argmax(result["output"]))


def test_predict_a_photo_of_a_digit_dark_on_light(lesson_run, cli, tmp_path):
    """A digit drawn dark on white, off-centre and larger, is inverted, scaled and centred."""
    from PIL import Image

    from denselab.data import load_dataset

    data = load_dataset("mnist-5k")
    hits = 0
    for index in range(10):
        digit = (255 - data.x_test[index] * 255).astype(np.uint8)
        canvas = np.full((120, 100), 255, np.uint8)
        canvas[10:94, 5:89] = np.asarray(Image.fromarray(digit).resize((84, 84)))
        Image.fromarray(canvas).save(tmp_path / f"digit{index}.png")
        result = cli(
            "predict", lesson_run.path, "--input", tmp_path / f"digit{index}.png", "--json"
        )
        hits += result["predicted_class"] == data.y_test[index]
    assert hits >= 8


def test_load_model_refuses_what_is_not_a_dense_network(tmp_path):
    import keras

    from denselab.errors import DenselabError

    conv = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    conv.save(tmp_path / "conv.keras")
    with pytest.raises(DenselabError, match="'conv2d.*' is a Conv2D"):
        dense_network(load_model(tmp_path / "conv.keras"))
