"""Dense networks: build the lesson's models, load saved ones safely, and read their layers.

A *dense network* here is what the course teaches: an optional Flatten/Reshape, then Dense
layers, each ``output = activation(dot(input, kernel) + bias)``. Separate ``Activation``,
``ReLU`` and ``Softmax`` layers are folded into the Dense before them; ``Dropout`` and
``InputLayer`` do nothing at inference and are skipped. Anything else is refused by name.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._backend import keras as _keras
from .errors import DenselabError

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


@dataclass
class DenseLayer:
    """One Dense layer's learned state, named as Keras names it.

    kernel : ndarray of shape (n_inputs, n_neurons); row i is input i, column j is neuron j.
    bias : ndarray of shape (n_neurons,); one bias per neuron.
    """

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: str = "linear"

    @property
    def n_inputs(self) -> int:
        return self.kernel.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.kernel.shape[1]

    @property
    def n_params(self) -> int:
        return self.kernel.size + self.bias.size

    def __repr__(self) -> str:
        return f"DenseLayer({self.name!r}, {self.n_inputs}->{self.n_neurons}, {self.activation})"


@dataclass
class DenseNetwork:
    """A model read as plain arrays: the input shape and its Dense layers in order."""

    input_shape: tuple[int, ...]
    layers: list[DenseLayer] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_neurons

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one sample: one per kernel weight."""
        return sum(layer.kernel.size for layer in self.layers)

    def __repr__(self) -> str:
        widths = "-".join(str(n) for n in [self.n_inputs] + [x.n_neurons for x in self.layers])
        return f"DenseNetwork({widths})"


def build_model(
    input_shape: tuple[int, ...],
    units: list[int],
    activations: list[str],
    seed: int | None = None,
):
    """The course's model: ``Flatten(input_shape)`` (when 2-D) then one ``Dense`` per entry.

    ``units=[20, 10]``, ``activations=["relu", "softmax"]`` is the lesson's MNIST classifier.
    """
    keras = _keras()
    if len(units) != len(activations):
        raise DenselabError(f"{len(units)} layers but {len(activations)} activations given")
    for name in activations:
        if name not in ACTIVATIONS:
            raise DenselabError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
    stack = [keras.Input(shape=tuple(input_shape))]
    if len(input_shape) > 1:
        stack.append(keras.layers.Flatten())
    for index, (width, activation) in enumerate(zip(units, activations, strict=True)):
        initializer = keras.initializers.GlorotUniform(seed=None if seed is None else seed + index)
        stack.append(
            keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=initializer,
                name=f"dense_{index + 1}",
            )
        )
    return keras.Sequential(stack)


def load_model(path: str | Path):
    """Load a ``.keras`` or ``.h5`` model with Keras ``safe_mode=True`` (no code from the file)."""
    keras = _keras()
    path = Path(path)
    if path.is_dir() and (path / "model.keras").exists():
        path = path / "model.keras"
    if not path.exists():
        raise DenselabError(f"no model at {path}; give a .keras/.h5 file or a run folder")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise DenselabError(f"{path} is not a Keras model; expected a .keras or .h5 file")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise DenselabError(f"{path} is not a valid .keras file (not a zip archive); re-save it")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean "unreadable"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise DenselabError(
                f"{path} contains a Lambda layer (arbitrary code); denselab refuses to run it"
            ) from None
        raise DenselabError(f"cannot read model {path}: {message[:200]}") from None


def dense_network(model) -> DenseNetwork:
    """Read a Keras model as a :class:`DenseNetwork`, or say which layer is not dense."""
    keras = _keras()
    layers: list[DenseLayer] = []
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:]) if model.inputs else None
    for layer in _flat_layers(model):
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = _dense_weights(layer)
            activation = _activation_name(layer.activation, layer.name)
            layers.append(DenseLayer(layer.name, kernel, bias, activation))
        elif isinstance(layer, (keras.layers.Activation, keras.layers.ReLU, keras.layers.Softmax)):
            activation = "relu" if kind == "ReLU" else "softmax" if kind == "Softmax" else None
            if kind == "ReLU" and (layer.max_value or layer.negative_slope or layer.threshold):
                raise DenselabError(f"layer {layer.name!r} is a ReLU with options; not supported")
            activation = activation or _activation_name(layer.activation, layer.name)
            if not layers or layers[-1].activation != "linear":
                raise DenselabError(
                    f"layer {layer.name!r} ({kind}) does not follow a linear Dense layer"
                )
            layers[-1].activation = activation
        elif isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
            if layers:
                raise DenselabError(f"layer {layer.name!r} ({kind}) after a Dense layer")
        elif isinstance(layer, (keras.layers.Dropout, keras.layers.InputLayer)):
            continue
        else:
            raise DenselabError(
                f"layer {layer.name!r} is a {kind}; denselab handles dense networks only "
                "(Flatten, Dense, Activation, ReLU, Softmax, Dropout)"
            )
    if not layers:
        raise DenselabError("the model has no Dense layer")
    if input_shape is None:
        input_shape = (layers[0].n_inputs,)
    if int(np.prod(input_shape)) != layers[0].n_inputs:
        raise DenselabError(f"model input {input_shape} does not feed its first Dense layer")
    return DenseNetwork(input_shape, layers)


def _flat_layers(model):
    keras = _keras()
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # a nested Sequential/functional block
            yield from _flat_layers(layer)
        else:
            yield layer


def _dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float32)
    if layer.use_bias:
        bias = np.asarray(weights[1], dtype=np.float32)
    else:
        bias = np.zeros(kernel.shape[1], dtype=np.float32)
    return kernel, bias


def _activation_name(function, layer_name: str) -> str:
    name = getattr(function, "__name__", str(function))
    if name not in ACTIVATIONS:
        raise DenselabError(
            f"layer {layer_name!r} uses activation {name!r}; supported: {', '.join(ACTIVATIONS)}"
        )
    return name
