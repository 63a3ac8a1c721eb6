"""What the chip computes: one input through the int8 network, neuron by neuron.

``denselab explain DIR --int8`` shows, for every neuron, the integer steps of TFLite Micro's
kernels as the C engine runs them (int8 inputs, the int32 accumulator with the input zero
point folded into the bias, the Q0.31 multiplier and its power of two, the double rounding,
the output zero point, the clamp, the int8 result) and the float value it stands for beside
the float model's value for the same neuron. The final bytes are checked against TFLite
Micro: "bit-exact" is said only when every byte matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import fileio, report
from .errors import DenselabError

_TOP = 5  # input terms shown per neuron


def explain_int8(
    model_or_folder: str | Path,
    data=None,
    index: int | None = None,
    input_path: str | Path | None = None,
) -> dict:
    """The int8 computation for one input (test sample ``index``, or a file), as a result.

    ``model_or_folder`` is a folder ``denselab deploy`` wrote (its ``{name}_int8.tflite``),
    or a model file or run folder, which is then quantized as deploy would quantize it.
    """
    from .explain import choose_input, classes
    from .int8 import arithmetic
    from .int8.tflite import read_int8_tflite
    from .int8.tflm import tflm_invoke
    from .model import dense_network, load_model

    int8_tflite, model_path, data = _int8_model(Path(model_or_folder), data, input_path is None)
    quantized = read_int8_tflite(int8_tflite)
    network = dense_network(load_model(model_path)) if model_path is not None else None
    if network is None:
        raise DenselabError(f"the float model of {model_or_folder} is gone; deploy it again")
    x, label, source = choose_input(model_path, network, data, index, input_path)
    q_in = quantized.quantize_input(x[None])[0]
    tflm_out = tflm_invoke(int8_tflite, q_in[None])[0]
    floats = _float_layers(network, x)
    n_dense = sum(layer.kind == "dense" for layer in quantized.layers)
    if n_dense != len(floats):  # the converter merged layers: no neuron-by-neuron float twin
        floats = [None] * n_dense
    layers, q, dense_index = [], q_in, -1
    for layer in quantized.layers:
        if layer.kind == "dense":
            dense_index += 1
            out, trace = arithmetic.dense(layer, q)
            layers.append(_dense_layer(layer, q, trace, floats[dense_index]))
        else:
            step = arithmetic.softmax if layer.kind == "softmax" else arithmetic.squash
            out, trace = step(layer, q)
            after = floats[dense_index]
            layers.append(
                {"kind": layer.kind, "float": None if after is None else after[1].tolist(), **trace}
            )
        q = out
    q_out = q
    probabilities = quantized.dequantize_output(q_out[None])[0]
    result = {
        "source": source,
        "label": label,
        "input_scale": quantized.input_scale,
        "input_zero_point": quantized.input_zero_point,
        "input_int8": q_in.tolist(),
        "layers": layers,
        "output_int8": q_out.tolist(),
        "output_real": probabilities.tolist(),
        "float_output": floats[-1][1].tolist(),
        "tflm_output_int8": tflm_out.tolist(),
        "bit_exact": bool(np.array_equal(q_out, tflm_out)),
    }
    if len(q_out) > 1 or network.layers[-1].activation == "sigmoid":
        result["int8_class"] = int(classes(probabilities[None])[0])
        result["float_class"] = int(classes(floats[-1][1][None])[0])
    return result


def _int8_model(path: Path, data, needs_data: bool = True):
    """(int8 .tflite bytes, float model path or None, dataset) for a deploy folder or a model;
    a deploy folder's own dataset only when ``needs_data`` (no input file was given)."""
    from .deploy import deployed_dataset
    from .runs import refuse_scaled_twice, resolve

    if path.is_dir() and (path / "report.json").is_file():
        try:
            deployed = fileio.load_json(path / "report.json")
            name, model = deployed["name"], Path(deployed["model"])
            int8_tflite = (path / f"{name}_int8.tflite").read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            raise DenselabError(f"{path} is not a folder written by `denselab deploy`") from None
        wanted = data or (deployed_dataset(deployed) if needs_data else None)
        dataset = resolve(model if model.exists() else path, wanted)
        return int8_tflite, model if model.exists() else None, dataset.dataset
    from .int8.convert import calibration_samples, to_tflite
    from .model import dense_network, load_model

    resolved = resolve(path, data, required=True)
    network = dense_network(load_model(resolved.model_path))
    refuse_scaled_twice(network, resolved.dataset)
    report.say("quantizing to int8 with TFLiteConverter (as deploy does)")
    _, int8_tflite = to_tflite(network, calibration_samples(resolved.dataset.x_train))
    return int8_tflite, path, resolved.dataset


def _float_layers(network, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per Dense layer of the float model: (z, activation(z)) for the input ``x``."""
    from .explain import activate

    a = np.asarray(x, np.float32).reshape(-1)
    values = []
    for layer in network.layers:
        z = a @ layer.kernel + layer.bias
        a = activate(z, layer.activation)
        values.append((z, a))
    return values


def _dense_layer(layer, q_in: np.ndarray, trace: list[dict], floats) -> dict:
    """One FULLY_CONNECTED layer's trace, each neuron beside the float model's value.

    A fused ReLU is inside the int8 layer; softmax, sigmoid and tanh follow as operators of
    their own, so there the int8 layer's output stands for the float pre-activation z.
    """
    centred = q_in.astype(np.int64) - layer.input_zero_point
    neurons = []
    for neuron in trace:
        j = neuron["neuron"] - 1
        terms = top_terms(layer.weights[j], centred)
        float_value = None
        if floats is not None:
            z, activated = floats
            float_value = float(activated[j] if layer.activation != "none" else z[j])
        error = None if float_value is None else neuron["real"] - float_value
        neurons.append({**neuron, "top_terms": terms, "float": float_value, "error": error})
    errors = [abs(n["error"]) for n in neurons if n["error"] is not None]
    return {
        "kind": "dense",
        "name": layer.name,
        "n_inputs": layer.n_inputs,
        "n_neurons": layer.n_outputs,
        "fused_activation": layer.activation,
        "input_scale": layer.input_scale,
        "input_zero_point": layer.input_zero_point,
        "output_scale": layer.output_scale,
        "output_zero_point": layer.output_zero_point,
        "input_int8": q_in.tolist(),
        "max_abs_error": float(max(errors)) if errors else None,
        "mean_abs_error": float(np.mean(errors)) if errors else None,
        "neurons": neurons,
    }


def top_terms(weights_row: np.ndarray, centred: np.ndarray, count: int = _TOP) -> list[dict]:
    """The ``count`` largest ``w * (q - zero_point)`` terms of one neuron, by magnitude."""
    terms = weights_row.astype(np.int64) * centred.astype(np.int64)
    order = np.argsort(-np.abs(terms))[:count]
    return [
        {
            "input": int(i) + 1,
            "weight": int(weights_row[i]),
            "centred": int(centred[i]),
            "term": int(terms[i]),
        }
        for i in order
    ]


def quantization_summary(quantized, network, x: np.ndarray, int8_outputs: np.ndarray) -> dict:
    """Where quantization hurts, over samples ``x`` (the test split): per Dense layer, the
    largest and mean |dequantized int8 - float| activation, and the samples whose int8 class
    differs from the float class (``int8_outputs``: the engine's outputs for ``x``)."""
    from .explain import activate
    from .int8 import arithmetic

    flat = np.asarray(x, np.float32).reshape(len(x), -1)
    floats, a = [], flat
    for layer in network.layers:
        z = a @ layer.kernel + layer.bias
        a = activate(z, layer.activation)
        floats.append((z, a))
    layers = []
    if sum(layer.kind == "dense" for layer in quantized.layers) == len(floats):
        q = quantized.quantize_input(flat)
        for layer in quantized.layers:
            if layer.kind != "dense":
                step = arithmetic.softmax if layer.kind == "softmax" else arithmetic.squash
                q = np.stack([step(layer, row)[0] for row in q])
                continue
            q = arithmetic.dense_batch(layer, q)
            z, activated = floats[len(layers)]
            reference = activated if layer.activation != "none" else z
            real = (q.astype(np.float32) - layer.output_zero_point) * layer.output_scale
            error = np.abs(real - reference)
            layers.append(
                {
                    "layer": len(layers) + 1,
                    "name": layer.name,
                    "max_abs_error": float(error.max()),
                    "mean_abs_error": float(error.mean()),
                    "output_scale": layer.output_scale,
                }
            )
    result = {"layers": layers}
    if int8_outputs.shape[1] > 1 or network.layers[-1].activation == "sigmoid":
        from .explain import classes

        int8_classes = classes(quantized.dequantize_output(int8_outputs))
        disagree = np.flatnonzero(int8_classes != classes(floats[-1][1]))
        result["int8_float_disagree"] = disagree.tolist()
    return result
