"""Open up a dense network: its weight layout, and any prediction recomputed neuron by neuron.

The forward pass here uses NumPy and ``get_weights()`` alone, the way the course does it by
hand, and is checked against ``model.predict``::

    z = x @ kernel + bias      # each neuron: w1*x1 + w2*x2 + ... + wn*xn + b
    a = activation(z)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import DenseLayer, DenseNetwork

_TOP = 5  # contributions shown per neuron when a layer is wide


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

    @property
    def contributions(self) -> np.ndarray:
        return self.inputs * self.weights

    def formula(self, input_names: list[str] | None = None) -> str:
        """``w1*x1 + ... + b = z -> relu(z) = a``, with the largest terms for wide layers."""
        names = input_names or [f"x{i}" for i in range(len(self.inputs))]
        terms = self.contributions
        order = np.arange(len(terms))
        if len(terms) > 2 * _TOP:
            order = np.argsort(-np.abs(terms))[:_TOP]
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


@dataclass
class Explanation:
    """A whole prediction by hand, and how far it is from Keras's."""

    input: np.ndarray  # flattened, (n_inputs,)
    layers: list[list[NeuronExplanation]]
    prediction: np.ndarray  # by hand (the last layer's outputs)
    keras_prediction: np.ndarray

    @property
    def max_abs_diff(self) -> float:
        return float(np.max(np.abs(self.prediction - self.keras_prediction)))


def explain(network: DenseNetwork, model, x: np.ndarray) -> Explanation:
    """Recompute ``model.predict(x[None])`` from the weights alone, neuron by neuron."""
    x = np.asarray(x, dtype=np.float32)
    a = x.reshape(-1)
    layers = []
    for layer in network.layers:
        z = a @ layer.kernel + layer.bias
        out = activate(z, layer.activation)
        layers.append([_neuron(layer, j, a, z, out) for j in range(layer.n_neurons)])
        a = out
    batch = x.reshape((1, *network.input_shape))
    keras_prediction = np.asarray(model.predict(batch, verbose=0))[0]
    return Explanation(x.reshape(-1), layers, a, keras_prediction)


def _neuron(layer: DenseLayer, j: int, a: np.ndarray, z: np.ndarray, out) -> NeuronExplanation:
    return NeuronExplanation(
        layer.name,
        j,
        a,
        layer.kernel[:, j],
        float(layer.bias[j]),
        float(z[j]),
        layer.activation,
        float(out[j]),
    )


def layer_table(network: DenseNetwork) -> list[dict]:
    """One row per Dense layer: shapes, parameter count, activation."""
    return [
        {
            "layer": layer.name,
            "kernel_shape": list(layer.kernel.shape),
            "bias_shape": list(layer.bias.shape),
            "params": layer.n_params,
            "activation": layer.activation,
        }
        for layer in network.layers
    ]


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
