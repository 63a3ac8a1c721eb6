"""`explain --int8`: TFLite Micro's integer arithmetic in Python, neuron by neuron, and the
bytes it gives held against TFLite Micro itself (the lesson model and 20 random models)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

from random_models import random_dense_model, random_int8_inputs  # noqa: E402

from denselab.int8 import arithmetic  # noqa: E402
from denselab.int8.convert import to_tflite  # noqa: E402
from denselab.int8.tflite import read_int8_tflite  # noqa: E402
from denselab.int8.tflm import tflm_invoke  # noqa: E402
from denselab.model import dense_network  # noqa: E402

ACTIVATIONS = dict(
    hidden=("relu", "linear", "sigmoid", "tanh"), outputs=("softmax", "linear", "sigmoid", "tanh")
)


@pytest.fixture(scope="module")
def random_int8_models() -> list[tuple]:
    models = []
    for seed in range(500, 520):
        model, representative = random_dense_model(seed, **ACTIVATIONS)
        _, int8_tflite = to_tflite(dense_network(model), representative)
        quantized = read_int8_tflite(int8_tflite)
        models.append(
            (seed, int8_tflite, quantized, random_int8_inputs(quantized.n_inputs, seed)[:50])
        )
    return models


def test_the_python_arithmetic_is_bit_exact_with_tflite_micro_on_20_random_models(
    random_int8_models,
):
    kinds = set()
    for seed, int8_tflite, quantized, inputs in random_int8_models:
        expected = tflm_invoke(int8_tflite, inputs)
        actual = np.stack([arithmetic.run(quantized, row)[0] for row in inputs])
        assert np.array_equal(actual, expected), f"seed {seed}: {quantized}"
        kinds |= {layer.kind for layer in quantized.layers}
    assert {"dense", "softmax", "logistic", "tanh"} <= kinds


def test_single_rounding_is_caught_negative_control(random_int8_models, monkeypatch):
    """The comparison can fail: one rounding (float) instead of gemmlowp's two differs."""

    def single_rounding(x, multiplier, shift):
        exact = round(x * multiplier * 2.0 ** (shift - 31))
        return {"shifted": x, "high_mul": exact, "result": exact}

    monkeypatch.setattr(arithmetic, "multiply_by_quantized_multiplier", single_rounding)
    differing = 0
    for _, int8_tflite, quantized, inputs in random_int8_models[:10]:
        expected = tflm_invoke(int8_tflite, inputs)
        actual = np.stack([arithmetic.run(quantized, row)[0] for row in inputs])
        differing += int(np.any(actual != expected, axis=1).sum())
    assert differing > 0


def test_explain_int8_on_the_lesson_model_matches_tflm_byte_for_byte(lesson_run, cli, tmp_path):
    from denselab.data import load_dataset

    deployed = cli(
        "deploy", lesson_run.path, "--out", tmp_path / "fw", "--target", "none", "--json"
    )
    data = load_dataset("mnist-5k")
    # Where quantization hurts: per layer, and the test samples whose class changes in int8.
    summary = deployed["quantization"]
    assert [row["layer"] for row in summary["layers"]] == [1, 2]
    for row in summary["layers"]:  # mostly within a step; the largest where int8 saturates
        assert 0 < row["mean_abs_error"] < min(row["max_abs_error"], 2 * row["output_scale"])
    int8_all = read_int8_tflite((tmp_path / "fw" / "model_int8.tflite").read_bytes())
    tflm_classes = tflm_invoke(
        (tmp_path / "fw" / "model_int8.tflite").read_bytes(), int8_all.quantize_input(data.x_test)
    ).argmax(1)
    keras_classes = lesson_run.model.predict(data.x_test, verbose=0).argmax(1)
    assert summary["int8_float_disagree"] == np.flatnonzero(tflm_classes != keras_classes).tolist()
    int8_tflite = (tmp_path / "fw" / "model_int8.tflite").read_bytes()
    quantized = read_int8_tflite(int8_tflite)
    for index in (0, 1, 7):
        result = cli("explain", tmp_path / "fw", "--int8", "--index", index, "--json")
        q_in = quantized.quantize_input(data.x_test[index : index + 1])
        assert result["input_int8"] == q_in[0].tolist()
        expected = tflm_invoke(int8_tflite, q_in)[0].tolist()
        assert result["output_int8"] == expected and result["bit_exact"] is True
        hidden, output = result["layers"][0], result["layers"][1]
        assert hidden["n_neurons"] == 20 and output["n_neurons"] == 10
        assert result["layers"][2]["kind"] == "softmax"
        weights = quantized.layers[0].weights.astype(np.int64)  # (n_neurons, n_inputs)
        zero_point = quantized.layers[0].input_zero_point
        for j, neuron in enumerate(hidden["neurons"]):  # each step follows from the one before
            m, shift = neuron["output_multiplier"], neuron["output_shift"]
            assert neuron["acc"] == neuron["bias"] + neuron["dot"]
            assert neuron["folded_bias"] == neuron["bias"] - zero_point * weights[j].sum()
            assert neuron["acc"] == neuron["folded_bias"] + int(
                weights[j] @ q_in[0].astype(np.int64)
            )
            assert abs(neuron["real_multiplier"] - m * 2.0 ** (shift - 31)) < 1e-12
            assert neuron["int8"] == min(
                max(neuron["plus_zero_point"], neuron["activation_min"]), neuron["activation_max"]
            )
            assert abs(neuron["error"]) < 3 * hidden["output_scale"]


def test_explain_int8_quantizes_a_run_folder_itself(lesson_run, cli):
    result = cli("explain", lesson_run.path, "--int8", "--index", 2, "--json")
    assert result["bit_exact"] is True
    assert result["int8_class"] == int(np.argmax(result["output_int8"]))
