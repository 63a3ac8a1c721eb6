"""Open up a dense network: its weight layout, and any prediction recomputed neuron by neuron.

The forward pass here uses NumPy and ``get_weights()`` alone, the way the course does it by
hand, and is checked against ``model.predict``::

    z = x @ kernel + bias      # each neuron: w1*x1 + w2*x2 + ... + wn*xn + b
    a = activation(z)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model import DenseLayer, DenseNetwork

_TOP = 5  # contributions shown per neuron when a layer is wide


def neuron_name(layer_number: int, index: int) -> str:
    """The name a person reads: ``N1_4`` is layer 1's neuron 4, numbered from 1 as the lesson's
    N11 ... N120; ``index`` is the 0-based Python index (the kernel's column)."""
    return f"N{layer_number}_{index + 1}"


def activate(z: np.ndarray, activation: str) -> np.ndarray:
    """The activations the course uses, in NumPy."""
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    if activation == "softmax":
        shifted = np.exp(z - z.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return z


def forward(network: DenseNetwork, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output for a batch ``x`` of shape (n_samples, *input_shape).

    Returns [a_1, ..., a_L], a_l of shape (n_samples, n_neurons of layer l).
    """
    a = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    outputs = []
    for layer in network.layers:
        a = activate(a @ layer.kernel + layer.bias, layer.activation)
        outputs.append(a)
    return outputs


@dataclass
class NeuronExplanation:
    """One neuron's arithmetic: sum of input * weight, plus bias, through the activation."""

    layer: str
    neuron: int
    inputs: np.ndarray  # (n_inputs,)
    weights: np.ndarray  # (n_inputs,), the kernel's column for this neuron
    bias: float
    z: float  # weighted sum + bias
    activation: str
    output: float
    layer_number: int = 0  # 1-based position among the Dense layers (0: not known)
    input_names: list[str] | None = None  # what ``formula`` calls the inputs

    @property
    def name(self) -> str:
        """``N1_4``: layer 1, neuron 4 (the kernel's column 3)."""
        return (
            neuron_name(self.layer_number, self.neuron)
            if self.layer_number
            else f"neuron {self.neuron + 1}"
        )

    @property
    def contributions(self) -> np.ndarray:
        return self.inputs * self.weights

    def __repr__(self) -> str:
        return (
            f"NeuronExplanation({self.name}, {len(self.inputs)} inputs, z={self.z:.6g}, "
            f"{self.activation} -> {self.output:.6g})"
        )

    def _repr_html_(self) -> str:
        from .notebook import neuron_html

        return neuron_html(self)

    def top_terms(self, count: int = _TOP) -> np.ndarray:
        """Indices of the ``count`` inputs whose input * weight is largest in size."""
        return np.argsort(-np.abs(self.contributions), kind="stable")[:count]

    def formula(self, input_names: list[str] | None = None) -> str:
        """``w1*x1 + ... + b = z -> relu(z) = a``, with the largest terms for wide layers."""
        names = input_names or self.input_names or [f"x{i + 1}" for i in range(len(self.inputs))]
        terms = self.contributions
        order = np.arange(len(terms))
        if len(terms) > 2 * _TOP:
            order = self.top_terms()
        parts = [f"{self.weights[i]:+.4f}*{names[i]}({self.inputs[i]:.4f})" for i in order]
        rest = ""
        if len(order) < len(terms):
            others = np.delete(terms, order)
            rest = f" + [{len(others)} more inputs: {others.sum():+.4f}]"
        head = " + ".join(parts) + rest + f" + bias({self.bias:+.4f})"
        tail = f" = {self.z:.6f}"
        if self.activation != "linear":
            tail += f" -> {self.activation} -> {self.output:.6f}"
        return head + tail


# How far the hand computation may be from ``model.predict``, relative to the largest output:
# float32 rounding in another order of sums is ~1e-7 of it (more where large terms cancel),
# a float16 layer's ~1e-3.
AGREEMENT = 1e-3
AGREEMENT_HALF = 2e-2


@dataclass
class Explanation:
    """A whole prediction by hand, and how far it is from Keras's."""

    input: np.ndarray  # flattened, (n_inputs,)
    layers: list[list[NeuronExplanation]]
    prediction: np.ndarray  # by hand (the last layer's outputs)
    keras_prediction: np.ndarray
    tolerance: float = AGREEMENT  # of max_rel_diff: float32's rounding, or float16's

    @property
    def max_abs_diff(self) -> float:
        return float(np.max(np.abs(self.prediction - self.keras_prediction)))

    @property
    def max_rel_diff(self) -> float:
        """The largest difference over the largest ``|output|``: one float32 rounding step is
        about 6e-8 of it, whether the output is 0.5 or 2,824,455.75."""
        scale = float(np.max(np.abs(self.keras_prediction)))
        return self.max_abs_diff / scale if scale > 0 else self.max_abs_diff

    @property
    def agrees(self) -> bool:
        """Whether the hand computation is Keras's up to rounding: :attr:`max_rel_diff` within
        :attr:`tolerance`. A layer read wrongly (inputs in another order, a step left out)
        misses by far more."""
        return bool(self.max_rel_diff <= self.tolerance)

    @property
    def output_neuron(self) -> NeuronExplanation:
        """The last layer's neuron with the largest output (the predicted class's)."""
        last = self.layers[-1]
        return last[int(np.argmax([n.output for n in last]))]

    def __repr__(self) -> str:
        widths = "-".join(str(n) for n in [len(self.input)] + [len(x) for x in self.layers])
        return (
            f"Explanation({widths}, predicted {self.output_neuron.name} = "
            f"{self.output_neuron.output:.6g}, max_abs_diff={self.max_abs_diff:.1e})"
        )

    def _repr_html_(self) -> str:
        from .notebook import explanation_html

        return explanation_html(self)


def explain(network: DenseNetwork, model, x: np.ndarray) -> Explanation:
    """Recompute ``model.predict(x[None])`` from the weights alone, neuron by neuron."""
    x = np.asarray(x, dtype=np.float32)
    a = x.reshape(-1)
    layers = []
    for number, layer in enumerate(network.layers, start=1):
        z = a @ layer.kernel + layer.bias
        out = activate(z, layer.activation)
        names = input_names(network, number)
        layers.append([_neuron(layer, j, a, z, out, number, names) for j in range(layer.n_neurons)])
        a = out
    batch = x.reshape((1, *network.input_shape))
    keras_prediction = np.asarray(model.predict(batch, verbose=0))[0].reshape(-1)
    tolerance = AGREEMENT_HALF if _computes_in_16_bits(model) else AGREEMENT
    return Explanation(x.reshape(-1), layers, a, keras_prediction, tolerance)


def _computes_in_16_bits(model) -> bool:
    """Whether a layer computes in float16 or bfloat16 (a ``mixed_float16`` policy)."""
    return any(
        str(getattr(layer, "compute_dtype", "float32")) in ("float16", "bfloat16")
        for layer in getattr(model, "layers", [])
    )


def _neuron(
    layer: DenseLayer, j: int, a: np.ndarray, z: np.ndarray, out, number: int, names: list[str]
) -> NeuronExplanation:
    return NeuronExplanation(
        layer.name,
        j,
        a,
        layer.kernel[:, j],
        float(layer.bias[j]),
        float(z[j]),
        layer.activation,
        float(out[j]),
        number,
        names,
    )


def layer_table(network: DenseNetwork) -> list[dict]:
    """One row per Dense layer: shapes, the lesson's ``get_weights()[0].size`` and
    ``get_weights()[1].size`` (``kernel_size``, ``bias_size``), parameter count, activation."""
    return [
        {
            "layer": layer.name,
            "kernel_shape": list(layer.kernel.shape),
            "bias_shape": list(layer.bias.shape),
            "kernel_size": int(layer.kernel.size),
            "bias_size": int(layer.bias.size) if layer.use_bias else 0,
            "use_bias": layer.use_bias,
            "params": layer.n_params,
            "activation": layer.activation,
            "folded": list(layer.folded),
        }
        for layer in network.layers
    ]


def indexing_words(network: DenseNetwork) -> str:
    """What ``get_weights()[0][i][j]`` indexes, with the first layer's own example."""
    first = network.layers[0]
    example = (
        f"get_weights()[0][0][1] is input x1's weight in neuron {neuron_name(1, 1)}"
        if first.n_neurons > 1
        else f"get_weights()[0][0][0] is input x1's weight in neuron {neuron_name(1, 0)}"
    )
    weights, bias = (
        ("[kernel, bias]", " bias[j] is neuron j's bias.")
        if first.use_bias
        else ("[kernel] (use_bias=False: every bias is 0)", "")
    )
    return (
        f"get_weights() is {weights}. kernel[i][j] is the weight from input i to neuron j "
        f"(shape (n_inputs, n_neurons), here {tuple(first.kernel.shape)}): row i is one input, "
        f"column j one neuron; {example}.{bias} Python counts from 0, "
        "the names from 1: column j is neuron N<layer>_<j+1>."
    )


def neuron_weights(network: DenseNetwork, layer: int | str, neuron: int) -> dict:
    """One neuron's weights (the kernel's column ``neuron``) and bias."""
    chosen = find_layer(network, layer)
    if not 0 <= neuron < chosen.n_neurons:
        from .errors import DenselabError

        raise DenselabError(
            f"layer {chosen.name!r} has neurons 0..{chosen.n_neurons - 1}; no neuron {neuron}"
        )
    weights = chosen.kernel[:, neuron]
    return {
        "layer": chosen.name,
        "name": neuron_name(network.layers.index(chosen) + 1, neuron),
        "neuron": neuron,
        "weights": weights.tolist(),
        "bias": float(chosen.bias[neuron]),
        "n_weights": int(weights.size),
    }


def find_layer(network: DenseNetwork, layer: int | str) -> DenseLayer:
    """A Dense layer by name or by 1-based position (layer 1 is the first Dense)."""
    from .errors import DenselabError

    names = [x.name for x in network.layers]
    if isinstance(layer, str) and layer in names:
        return network.layers[names.index(layer)]
    try:
        index = int(layer)
    except (TypeError, ValueError):
        index = 0
    if 1 <= index <= len(network.layers):
        return network.layers[index - 1]
    raise DenselabError(
        f"no layer {layer!r}; use 1..{len(network.layers)} or a name: {', '.join(names)}"
    )


# --- what `denselab inspect`, `explain` and `predict` compute, as plain results -------------


def inspect_model(
    model_or_run: str | Path, layer: int | str | None = None, neuron: int | None = None
) -> dict:
    """The layer table of a model file or run folder, and optionally one neuron's weights."""
    from .model import dense_network, load_model

    network = dense_network(load_model(model_or_run), finite=False)  # shown as they are
    result = {
        "model": str(model_or_run),
        "summary": repr(network),
        "input_shape": list(network.input_shape),
        "layers": layer_table(network),
        "params": network.n_params,
        "indexing": indexing_words(network),
    }
    if layer is not None or neuron is not None:
        result["neuron"] = neuron_weights(network, layer or 1, neuron or 0)
    return result


def explain_sample(
    model_or_run: str | Path,
    data=None,
    index: int | None = None,
    input_path: str | Path | None = None,
) -> dict:
    """:func:`explain` for one test sample (``index``) or a file (``input_path``), as a result
    with every neuron's formula, ready for JSON."""
    from .model import dense_network, load_model

    model = load_model(model_or_run)
    network = dense_network(model)
    x, label, source = choose_input(model_or_run, network, data, index, input_path)
    why = explain(network, model, x)
    result = {
        "source": source,
        "label": label,
        "prediction": why.keras_prediction.tolist(),
        "hand_prediction": why.prediction.tolist(),
        "max_abs_diff": why.max_abs_diff,
        "max_rel_diff": why.max_rel_diff,
        "agrees": why.agrees,
        "tolerance": why.tolerance,
        "layers": [
            [
                {
                    "neuron": n.neuron,
                    "name": n.name,
                    "z": n.z,
                    "output": n.output,
                    "bias": n.bias,
                    "formula": n.formula(input_names(network, number)),
                }
                for n in neurons
            ]
            for number, neurons in enumerate(why.layers, start=1)
        ],
        "network": [
            {
                "name": x.name,
                "n_inputs": x.n_inputs,
                "n_neurons": x.n_neurons,
                "activation": x.activation,
                "folded": list(x.folded),
            }
            for x in network.layers
        ],
    }
    predicted = None if isinstance(label, list) else predicted_class(network, why.prediction)
    if predicted is not None:
        result["predicted_class"] = predicted
    return result


def predict_sample(
    model_or_run: str | Path,
    data=None,
    index: int | None = None,
    input_path: str | Path | None = None,
) -> dict:
    """``model.predict`` on one test sample or file: the outputs, and the class if several."""
    from .model import dense_network, load_model

    model = load_model(model_or_run)
    network = dense_network(model)
    steps: list[str] = []
    x, label, source = choose_input(model_or_run, network, data, index, input_path, steps)
    output = np.asarray(model.predict(x[None], verbose=0))[0].reshape(-1)
    result = {"source": source, "label": label, "output": output.tolist()}
    if len(output) > 1 and gives_logits(network):  # trained from_logits: not probabilities
        result["logits"] = True
    predicted = None if isinstance(label, list) else predicted_class(network, output)
    if predicted is not None:  # (a list of labels: several regression targets, no class)
        result["predicted_class"] = predicted
    if input_path is None:
        result["dataset"] = source.split(" test sample ")[0]
        if steps:  # pixels given back their 0-255 scale
            result["preprocessing"] = steps
    elif len(network.input_shape) == 2:  # a picture: what the model saw, and how it got there
        result["preprocessing"] = steps
        result["model_input"] = np.round(x, 3).tolist()
    return result


def predicted_class(network: DenseNetwork, output: np.ndarray) -> int | None:
    """The class an output means: the argmax of several outputs; for one sigmoid unit, which
    is p(class 1), 1 when it is at least 0.5; None for a regression output."""
    if len(output) > 1:
        return int(np.argmax(output))
    if network.layers[-1].activation == "sigmoid":
        return int(output[0] >= 0.5)
    return None


def classes(outputs: np.ndarray, logits: bool = False) -> np.ndarray:
    """The class each row of ``outputs`` (n_samples, n_outputs) means: the argmax of several
    outputs; one output is p(class 1) (a sigmoid unit), so class 1 where it is >= 0.5, or,
    for a linear unit (a logit, trained ``from_logits=True``), where it is >= 0."""
    outputs = np.asarray(outputs)
    outputs = outputs.reshape(len(outputs), -1)  # a model declared on (1, 784): (n, 1, 10)
    if outputs.shape[1] == 1:
        return (outputs[:, 0] >= (0.0 if logits else 0.5)).astype(np.int64)
    return outputs.argmax(axis=-1)


def probabilities(outputs: np.ndarray, logits: bool) -> np.ndarray:
    """A classifier's outputs as probabilities, (n_samples, n_outputs): as they are, or, for
    a linear last layer (logits), through the sigmoid (one output) or the softmax."""
    outputs = np.asarray(outputs)
    outputs = outputs.reshape(len(outputs), -1)
    if not logits:
        return outputs
    outputs = outputs.astype(np.float64)
    if outputs.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-outputs))
    exp = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def gives_logits(network: DenseNetwork | None) -> bool:
    """Whether a classifier's last layer is linear: its outputs are logits, not probabilities."""
    return network is not None and network.layers[-1].activation == "linear"


def choose_input(model_or_run, network: DenseNetwork, data, index, input_path, steps=None):
    """``(x, label, source)``: a file (``.npy`` or a picture) or test sample ``index`` (0).

    ``steps``, a list, receives the preprocessing a picture went through, in words.
    """
    from .data import load_input, test_sample
    from .errors import DenselabError
    from .runs import resolve, scaled_twice

    if input_path is not None:
        if index is not None:
            raise DenselabError("give --index or --input, not both")
        x = load_input(input_path, network.input_shape, steps)
        if network.scales_raw_pixels and Path(input_path).suffix.lower() != ".npy":
            x = _as_raw_pixels(network, x, steps)  # a picture, read as 0-1 like the lesson's
        return x, None, str(input_path)
    dataset = resolve(model_or_run, data, required=True).dataset
    index = 0 if index is None else index
    x, label = test_sample(dataset, index, network.input_shape)
    label = np.asarray(label).tolist()  # a class, a target, or several targets
    if scaled_twice(network, dataset):
        x = _as_raw_pixels(network, x, steps)
    return x, label, f"{dataset.name} test sample {index}"


def _as_raw_pixels(network: DenseNetwork, x: np.ndarray, steps: list[str] | None) -> np.ndarray:
    """Pixels 0-1 (pixel / 255) back to 0-255, for a model whose first layer divides by 255."""
    if steps is not None:
        steps.append(
            f"times 255: the model's layer {network.scales_raw_pixels!r} scales pixels 0-255 itself"
        )
    return (np.asarray(x, np.float32) * np.float32(255)).astype(np.float32)


def input_names(network: DenseNetwork, number: int) -> list[str]:
    """The inputs of Dense layer ``number`` (1-based) as a person reads them: the previous
    layer's neurons ``N1_1 ...`` (numbered from 1, as the lesson), inputs ``x1 ...``, or an
    image's pixels ``px[row,col]`` (coordinates from 0, as NumPy indexes the image)."""
    if number > 1:
        return [neuron_name(number - 1, i) for i in range(network.layers[number - 2].n_neurons)]
    if len(network.input_shape) == 2:
        width = network.input_shape[1]
        return [f"px[{i // width},{i % width}]" for i in range(network.n_inputs)]
    return [f"x{i + 1}" for i in range(network.n_inputs)]
