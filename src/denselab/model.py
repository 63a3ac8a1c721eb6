"""Dense networks: build the lesson's models, load saved ones safely, and read their layers.

A *dense network* here is what the course teaches: an optional Flatten/Reshape, then Dense
layers, each ``output = activation(dot(input, kernel) + bias)``. Separate ``Activation``,
``ReLU`` and ``Softmax`` layers are folded into the Dense before them; ``Dropout`` and
``InputLayer`` do nothing at inference and are skipped. Anything else is refused by name.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._backend import keras as _keras
from ._io import Hdf5Probe, has_hdf5_signature
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
    """Load a ``.keras`` or ``.h5`` model with Keras ``safe_mode=True`` (no code from the file).

    The file is first checked by :func:`check_model_file`, so a Lambda layer's code never runs
    and a damaged HDF5 part cannot hang this process.
    """
    path = check_model_file(path)
    keras = _keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean "unreadable"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise DenselabError(
                f"{path} contains a Lambda layer (arbitrary code); denselab refuses to run it"
            ) from None
        raise DenselabError(f"cannot read model {path}: {message[:200]}") from None


def check_model_file(path: str | Path) -> Path:
    """The model file at ``path`` (a run folder means its ``model.keras``), checked for Keras.

    Before Keras sees the file, its HDF5 part (the ``.h5``, or the weights inside a ``.keras``)
    is read completely in a child process, and its saved architecture is read as plain JSON:
    a layer that carries Python code (``Lambda``, ``TFSMLayer``) or absurd sizes is refused.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "model.keras").exists():
            raise DenselabError(f"{path} is a folder without model.keras; give a run folder")
        path = path / "model.keras"
    if not path.exists():
        raise DenselabError(f"no model at {path}; give a .keras/.h5 file or a run folder")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise DenselabError(f"{path} is not a Keras model; expected a .keras or .h5 file")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise DenselabError(f"{path} is not a valid .keras file (not a zip archive); re-save it")
    probe = _start_probe(path)
    try:
        _keras()  # imported while the probe reads the file
        config = _saved_config(path, probe)
    finally:
        if probe is not None:
            probe.cancel()
    unsafe = _code_layer(config)
    if unsafe is not None:
        raise DenselabError(
            f"{path} contains a {unsafe} layer (arbitrary Python code); denselab refuses to "
            "run it: rebuild the model without it"
        )
    _check_sizes(config, path)
    return path


_CODE_LAYERS = ("Lambda", "TFSMLayer")  # layers whose config holds, or loads, Python code


MAX_CONFIG_BYTES = 64 << 20  # config.json of a model is kilobytes; more is a zip bomb


def _start_probe(path: Path) -> Hdf5Probe | None:
    """Read the model's HDF5 part (the .h5 file, or the weights inside a .keras) in a child."""
    if path.suffix != ".keras":
        if not has_hdf5_signature(path):
            raise DenselabError(f"cannot read model {path}: not an HDF5 model (no signature)")
        return Hdf5Probe(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise DenselabError(f"{path} is not a valid .keras file ({error}); re-save it") from None
    return Hdf5Probe(path, "model.weights.h5") if "model.weights.h5" in names else None


def _saved_config(path: Path, probe: Hdf5Probe | None):
    """The saved architecture as JSON, read without Keras (so nothing in it can run)."""
    try:
        if path.suffix == ".keras":
            if probe is not None:
                probe.result()
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise DenselabError(f"{path} has no config.json; it is not a saved Keras model")
                if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                    raise DenselabError(f"{path} has a config.json of absurd size")
                text = archive.read("config.json")
        else:
            text = probe.result()
            if not text:
                raise DenselabError(
                    f"{path} holds weights only, no model; save the whole model with model.save"
                )
        return json.loads(text)
    except DenselabError:
        raise
    except Exception as error:  # zip and JSON each fail in their own way on a bad file
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        kind = "a .keras zip" if path.suffix == ".keras" else "an HDF5 model"
        raise DenselabError(
            f"cannot read model {path}: not {kind} ({reason or type(error).__name__}); re-save it"
        ) from None


MAX_WEIGHTS = 1 << 26  # per layer (256 MB of float32): far beyond any microcontroller model


def _nodes(config):
    """Every dict in a JSON tree, without recursion (a hostile file may nest deep)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_sizes(config, path: Path) -> None:
    """Refuse absurd layer sizes before Keras allocates (and fills) their weights.

    The bound pairs the widest input anywhere with the widest layer anywhere, so it is
    conservative: a real dense network (784 -> 20 -> 10) is nowhere near it.
    """
    widest_input, widest_layer = 1, 1
    for node in _nodes(config):
        units = node.get("units")
        if isinstance(units, (int, float)) and math.isfinite(units):
            widest_layer = max(widest_layer, abs(int(units)))
        for key in ("batch_shape", "batch_input_shape", "input_shape", "shape"):
            shape = node.get(key)
            if isinstance(shape, list) and all(isinstance(d, int) for d in shape[1:]):
                widest_input = max(widest_input, math.prod(abs(d) for d in shape[1:]))
    if widest_input * widest_layer > MAX_WEIGHTS:
        raise DenselabError(
            f"{path} describes inputs of {widest_input:,} numbers and layers of "
            f"{widest_layer:,} neurons; denselab handles at most {MAX_WEIGHTS:,} weights per layer"
        )


def _code_layer(config) -> str | None:
    """The class name of the first layer in ``config`` that would run Python code, if any."""
    for node in _nodes(config):
        if isinstance(node, dict):
            for key in ("class_name", "registered_name"):
                name = node.get(key)
                if isinstance(name, str) and (name in _CODE_LAYERS or name == "__lambda__"):
                    return "Lambda" if name == "__lambda__" else name
    return None


def dense_network(model) -> DenseNetwork:
    """Read a Keras model as a :class:`DenseNetwork`, or say which layer is not dense."""
    keras = _keras()
    layers: list[DenseLayer] = []
    input_shape = _input_shape(model)
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


def _input_shape(model) -> tuple[int, ...] | None:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # a Sequential saved before it was built
        return None
    if not inputs:
        return None
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise DenselabError(
            f"the model's input shape {shape} has an unknown size; denselab needs a fixed one"
        )
    return tuple(int(d) for d in shape)


def _flat_layers(model):
    keras = _keras()
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # a nested Sequential/functional block
            yield from _flat_layers(layer)
        else:
            yield layer


def _dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    weights = layer.get_weights()
    if not weights:
        raise DenselabError(f"layer {layer.name!r} has no weights: the model was never built")
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
