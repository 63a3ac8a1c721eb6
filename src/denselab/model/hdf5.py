"""Read a model that any Keras, 2.0 to 3.x, saved as HDF5 (``model.save("model.h5")``).

Keras 3 cannot load most ``.h5`` files people publish (Keras 2.1 to tf.keras 2.x), and its
loader imports TensorFlow. For a dense network everything needed is in the file:

- the ``model_config`` attribute (JSON) lists the layers: Keras 2.1 writes a Sequential as a
  bare list, Keras 2 says ``batch_input_shape`` where Keras 3 says ``batch_shape``, and a
  Keras 2 Sequential often has no InputLayer (its first layer carries the shape, or nothing);
- ``model_weights/<layer>`` holds each layer's arrays, listed by its ``weight_names``
  attribute: ``dense_1/kernel:0`` (Keras 2), ``dense_1/kernel`` (Keras 3), ``dense_1_W``
  (Keras 1).

:func:`read_hdf5_model` rebuilds the same network as a Keras 3 Sequential (an InputLayer, then
Flatten/Reshape, Dense, activation and normalisation layers; Dropout and other training-only
layers are left out), sets its weights from the file and checks that they read back equal.
Each dataset's shape and type is checked before it is read. A refusal says which Keras saved
the file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..backend import keras as _keras
from ..errors import DenselabError
from .files import MAX_WEIGHTS
from .graph import layer_name, saved_chain
from .network import SKIPPED, refusal

MAX_GROUPS = 100_000  # layers in model_weights; more is a damaged or hostile file
_KERAS1_WEIGHTS = {"W": "kernel", "b": "bias"}  # Keras 1 names weights dense_1_W, dense_1_b


def read_hdf5_model(path: Path, config: dict):
    """The Keras 3 model an ``.h5`` file describes, its weights set from the file.

    ``config`` is the file's ``model_config``, already read and checked by
    :func:`denselab.model.check_model_file` (which also read the whole file in a child
    process first, so h5py can read it here safely).
    """
    import h5py

    saver = "an unknown Keras version"
    try:
        with h5py.File(path, "r") as file:
            version = _text(file.attrs.get("keras_version"))
            saver = f"Keras {version}" if version else saver
            return _rebuild(file, config)
    except DenselabError as error:
        raise DenselabError(f"{path} (saved by {saver}): {error}") from None
    except Exception as error:  # h5py, NumPy and Keras each fail their own way on odd files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise DenselabError(f"cannot read model {path} (saved by {saver}): {reason}") from None


def _rebuild(file, config: dict):
    keras = _keras()
    layers = saved_chain(config)
    if not layers:
        raise DenselabError("the model has no layers")
    weights = _Weights(file, {layer_name(layer) for layer in layers})
    shape = _input_shape(layers, weights)
    first = layers[0] if layers[0].get("class_name") == "InputLayer" else None
    stack = [keras.Input(shape=shape, name=layer_name(first) if first else None)]
    assigned = []
    for layer in layers[1:] if first else layers:
        kind, name = str(layer.get("class_name")), layer_name(layer)
        settings = layer.get("config")
        if not isinstance(settings, dict):
            raise DenselabError(f"layer {name!r} has no config")
        built, arrays, shape = _layer(keras, kind, name, settings, shape, weights)
        if built is not None:
            stack.append(built)
            assigned.append((built, arrays))
    body = config.get("config")
    model_name = body.get("name") if isinstance(body, dict) else None
    model = keras.Sequential(stack, name=model_name if isinstance(model_name, str) else None)
    for built, arrays in assigned:
        _set_weights(built, arrays)
    return model


def _layer(keras, kind: str, name: str, config: dict, shape: tuple, weights: _Weights):
    """``(keras_layer or None, {weight name: array}, output shape)`` for one saved layer."""
    layers = keras.layers
    if kind == "Dense":
        units = _count(config.get("units", config.get("output_dim")), name, "units")
        use_bias = config.get("use_bias", config.get("bias", True))  # Keras 1 said "bias"
        if not isinstance(use_bias, bool):
            raise DenselabError(f"layer {name!r} has use_bias {use_bias!r}")
        expected = {"kernel": (shape[-1], units)} | ({"bias": (units,)} if use_bias else {})
        arrays = weights.take(name, expected)
        dense = layers.Dense(
            units, activation=_activation(keras, config, name), use_bias=use_bias, name=name
        )
        return dense, arrays, (*shape[:-1], units)
    if kind == "BatchNormalization":
        axis = _axis(config.get("axis", -1), len(shape), name)
        center, scale = config.get("center", True), config.get("scale", True)
        epsilon = _number(config.get("epsilon", 1e-3), name, "epsilon")
        if not isinstance(center, bool) or not isinstance(scale, bool) or epsilon < 0:
            raise DenselabError(f"layer {name!r} has a damaged BatchNormalization config")
        size = (shape[axis - 1],)
        expected = {"moving_mean": size, "moving_variance": size}
        expected |= ({"gamma": size} if scale else {}) | ({"beta": size} if center else {})
        arrays = weights.take(name, expected)
        norm = layers.BatchNormalization(
            axis=axis, epsilon=epsilon, center=center, scale=scale, name=name
        )
        return norm, arrays, shape
    if kind == "Normalization":
        return _normalization(keras, name, config, shape, weights), {}, shape
    if kind == "Rescaling":
        scale, offset = (
            _numbers(config.get(key, default), name, key)
            for key, default in (("scale", 1.0), ("offset", 0.0))
        )
        rescaling = layers.Rescaling(_plain(scale), _plain(offset), name=name)
        return rescaling, weights.take(name, {}), shape
    if kind in ("Flatten", "Reshape"):
        if kind == "Flatten":
            data_format = config.get("data_format") or "channels_last"
            if data_format not in ("channels_last", "channels_first"):
                raise DenselabError(f"layer {name!r} has a damaged data_format")
            built = layers.Flatten(data_format=data_format, name=name)
        else:
            target = config.get("target_shape")
            if not isinstance(target, list) or not all(_is_int(d) for d in target):
                raise DenselabError(f"layer {name!r} has a damaged target_shape")
            built = layers.Reshape(tuple(target), name=name)
        output = built.compute_output_shape((1, *shape))[1:]
        return built, {}, tuple(int(d) for d in output)
    if kind == "Activation":
        return layers.Activation(_activation(keras, config, name), name=name), {}, shape
    if kind == "ReLU":
        options = {
            key: _number(config.get(key, 0.0), name, key) for key in ("negative_slope", "threshold")
        }
        if config.get("max_value") is not None:
            options["max_value"] = _number(config["max_value"], name, "max_value")
        return layers.ReLU(name=name, **options), {}, shape
    if kind == "Softmax":
        if config.get("axis", -1) not in (-1, len(shape)):
            raise DenselabError(f"layer {name!r} is a Softmax over axis {config.get('axis')}")
        return layers.Softmax(name=name), {}, shape
    if kind == "LeakyReLU":
        slope = _number(config.get("negative_slope", config.get("alpha", 0.3)), name, "alpha")
        if slope != 0:  # slope 0 is a ReLU; any other is not in the C engine yet
            raise refusal(name, kind)
        return layers.LeakyReLU(negative_slope=0.0, name=name), {}, shape
    if kind in SKIPPED:
        return None, {}, shape
    raise refusal(name, kind)


def _normalization(keras, name: str, config: dict, shape: tuple, weights: _Weights):
    """A Keras 3 Normalization with the file's mean and variance (from its config or weights)."""
    axis = config.get("axis", -1)
    if isinstance(axis, list):
        axis = tuple(axis)
    if not (axis is None or _is_int(axis) or all(_is_int(a) for a in axis)):
        raise DenselabError(f"layer {name!r} has axis {axis!r}")
    invert = config.get("invert", False)
    if not isinstance(invert, bool):
        raise DenselabError(f"layer {name!r} has invert {invert!r}")
    if config.get("mean") is not None:
        mean = np.asarray(_numbers(config["mean"], name, "mean"), np.float32)
        variance = np.asarray(_numbers(config.get("variance"), name, "variance"), np.float32)
        weights.take(name, {})
    else:
        arrays = weights.take(name, {"mean": None, "variance": None}, ignored=("count",))
        mean, variance = arrays["mean"], arrays["variance"]
    if mean.size > math.prod(shape) or mean.shape != variance.shape:
        raise DenselabError(f"layer {name!r} has a mean of shape {mean.shape} for inputs {shape}")
    mean, variance = mean.reshape(_squeezed(mean.shape)), variance.reshape(_squeezed(mean.shape))
    return keras.layers.Normalization(
        axis=axis, mean=mean, variance=variance, invert=invert, name=name
    )


def _squeezed(shape: tuple) -> tuple:
    """A mean saved with the batch axis kept, (1, 8), is the mean of (8,) features."""
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _set_weights(layer, arrays: dict[str, np.ndarray]) -> None:
    """Give each of the layer's variables the file's array, then check it reads back equal."""
    from keras import ops

    names = [variable.name for variable in layer.weights]
    if sorted(names) != sorted(arrays):
        raise DenselabError(
            f"layer {layer.name!r} has weights {sorted(names)} in Keras 3 but "
            f"{sorted(arrays)} in the file"
        )
    for variable in layer.weights:
        variable.assign(arrays[variable.name])
    for variable in layer.weights:
        read_back = ops.convert_to_numpy(variable)
        if not np.array_equal(read_back, arrays[variable.name], equal_nan=True):
            raise DenselabError(f"layer {layer.name!r}: {variable.name} did not read back equal")


# --- the input shape: declared, or told by the first layer with weights ---------------------


def _input_shape(layers: list[dict], weights: _Weights) -> tuple[int, ...]:
    """The declared input shape; else, for a flat input, the size the first weights take."""
    config = layers[0].get("config")
    config = config if isinstance(config, dict) else {}
    declared = None
    for key in ("batch_shape", "batch_input_shape"):
        if isinstance(config.get(key), list):
            dims = config[key][1:]
            if not all(d is None or (_is_int(d) and d > 0) for d in dims) or not dims:
                raise DenselabError(f"the model's {key} is {config[key]!r}")
            declared = tuple(dims)
            break
    if declared is None and _is_int(config.get("input_dim")):  # Keras 1
        declared = (config["input_dim"],)
    if declared is not None and None not in declared:
        return declared
    if declared is not None and len(declared) > 1:
        raise DenselabError(
            f"the model's input shape {declared} has an unknown size; denselab needs a fixed one"
        )
    size = _first_width(layers, weights)
    if size is None:
        raise DenselabError("the file does not say the model's input shape, nor do its weights")
    return (size,)


def _first_width(layers: list[dict], weights: _Weights) -> int | None:
    """How many numbers the first layer with weights takes (a kernel's rows, a mean's size)."""
    passing = ("InputLayer", "Activation", "ReLU", "Softmax", "LeakyReLU", "Rescaling", *SKIPPED)
    for layer in layers:
        kind, name = layer.get("class_name"), layer_name(layer)
        found = weights.shapes(name)
        if kind == "Dense" and len(found.get("kernel", ())) == 2:
            return _count(found["kernel"][0], name, "kernel rows")
        if kind in ("BatchNormalization", "Normalization"):
            config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
            if isinstance(config.get("mean"), list):
                return _count(len(config["mean"]), name, "mean size")
            for key in ("moving_mean", "mean"):
                if key in found:
                    return _count(math.prod(found[key]), name, f"{key} size")
            return None
        if kind not in passing:
            return None
    return None


# --- the weights of the file -----------------------------------------------------------------


class _Weights:
    """Every weight dataset of the file, by layer name and short name (kernel, gamma, ...).

    ``model_weights/<group>`` lists its datasets in ``weight_names``; a group is a layer, or a
    model nested in the model, whose layers' names appear in the weight names
    (``sequential_1`` holding ``dense_1/kernel:0``).
    """

    def __init__(self, file, names: set[str]):
        import h5py

        root = file.get("model_weights", file)
        if not isinstance(root, h5py.Group) or len(root) > MAX_GROUPS:
            raise DenselabError("its model_weights are damaged")
        self.datasets: dict[str, dict] = {}
        renamed: dict[str, dict] = {}  # weights under a name TF1 made unique: dense_1_1/...
        for group_name in root:
            group = root[group_name]
            if not isinstance(group, h5py.Group):
                continue
            for weight_name in map(_text, np.ravel(group.attrs.get("weight_names", []))):
                dataset = group.get(weight_name)
                if not isinstance(dataset, h5py.Dataset):
                    raise DenselabError(f"model_weights/{group_name} lacks {weight_name!r}")
                parts = weight_name.split("/")
                owner = group_name if group_name in names else None
                owner = owner or next((p for p in reversed(parts[:-1]) if p in names), None)
                if owner is None:  # a layer the model does not use, or one renamed
                    if len(parts) > 1 and _unsuffixed(parts[-2]) in names:
                        key = parts[-1].split(":")[0]
                        found = renamed.setdefault(_unsuffixed(parts[-2]), {})
                        found[key] = None if key in found else dataset  # two: ambiguous
                    continue
                key = parts[-1].split(":")[0]
                if len(parts) == 1 and key.startswith(f"{owner}_"):
                    key = _KERAS1_WEIGHTS.get(key[len(owner) + 1 :], key[len(owner) + 1 :])
                if key in self.datasets.setdefault(owner, {}):
                    raise DenselabError(f"layer {owner!r} has two weights named {key!r}")
                self.datasets[owner][key] = dataset
        for owner, arrays in renamed.items():  # only for a layer whose weights are nowhere else
            if owner not in self.datasets and None not in arrays.values():
                self.datasets[owner] = arrays

    def shapes(self, name: str) -> dict[str, tuple]:
        return {key: tuple(d.shape) for key, d in self.datasets.get(name, {}).items()}

    def take(self, name: str, expected: dict, ignored: tuple = ()) -> dict[str, np.ndarray]:
        """The arrays ``expected`` names, each checked for shape and type before it is read.

        ``expected`` maps a weight's short name to its shape (None: any size up to the bound).
        """
        found = self.datasets.get(name, {})
        unknown = sorted(set(found) - set(expected) - set(ignored))
        if unknown:
            raise DenselabError(f"layer {name!r} has weights denselab does not know: {unknown}")
        arrays = {}
        for key, shape in expected.items():
            dataset = found.get(key)
            if dataset is None:
                raise DenselabError(f"layer {name!r} has no {key!r} weights in model_weights")
            if shape is not None and tuple(dataset.shape) != tuple(shape):
                raise DenselabError(
                    f"layer {name!r}: {key} has shape {tuple(dataset.shape)} in the file, "
                    f"the layer needs {tuple(shape)}"
                )
            if dataset.dtype.kind != "f" or dataset.size > MAX_WEIGHTS:
                raise DenselabError(
                    f"layer {name!r}: {key} holds {dataset.size:,} {dataset.dtype} values, "
                    f"not at most {MAX_WEIGHTS:,} floating-point numbers"
                )
            arrays[key] = np.asarray(dataset[()], dtype=np.float32)  # NaN: see dense_network
        return arrays


def _unsuffixed(name: str) -> str:
    """``dense_1_1`` -> ``dense_1``: TF1 graphs made a variable scope unique with ``_1``."""
    return re.sub(r"_\d+$", "", name)


# --- config values, checked -------------------------------------------------------------------


def _activation(keras, config: dict, name: str) -> str:
    """The activation's name; Keras 3 may write ``{"class_name": "function", "config": "relu"}``."""
    value = config.get("activation", "linear")
    if isinstance(value, dict):
        value = (
            value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
        )
    if not isinstance(value, str):
        raise DenselabError(f"layer {name!r} has activation {value!r}")
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise DenselabError(f"layer {name!r} uses activation {value!r}, unknown to Keras") from None
    return value


def _axis(value, rank: int, name: str) -> int:
    """A single axis of a (batch, *shape) tensor of ``rank + 1`` axes, counted from 0."""
    if isinstance(value, list) and len(value) == 1:  # tf.keras writes [1]
        value = value[0]
    if not _is_int(value) or not -(rank + 1) <= value <= rank or value % (rank + 1) == 0:
        raise DenselabError(f"layer {name!r} has axis {value!r} for inputs of {rank} axes")
    return value % (rank + 1)


def _count(value, name: str, what: str) -> int:
    if not _is_int(value) or not 0 < value <= MAX_WEIGHTS:
        raise DenselabError(f"layer {name!r} has {what} {value!r}, not a positive whole number")
    return value


def _number(value, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DenselabError(f"layer {name!r} has {what} {value!r}, not a number")
    return float(value)


def _numbers(value, name: str, what: str):
    """A number, or a list of numbers (as a float64 array)."""
    if not isinstance(value, list):
        return _number(value, name, what)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise DenselabError(f"layer {name!r} has a damaged {what}") from None
    if not np.all(np.isfinite(array)):
        raise DenselabError(f"layer {name!r} has a {what} that is not finite")
    return array


def _plain(value):
    """A float, or an array as nested lists (as Keras configs hold them)."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value) -> str:
    """An HDF5 attribute as text (h5py gives bytes, numpy bytes or str)."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)
