"""A dense network as plain arrays: the Dense layers of a Keras model, in order.

What the course teaches is ``output = activation(dot(input, kernel) + bias)``, layer after
layer. A Keras model may spell that with more layers, each read here as part of a Dense one:

- ``Activation``, ``ReLU``, ``Softmax`` (and a ``LeakyReLU`` of slope 0) are the activation of
  the Dense layer before them;
- ``BatchNormalization``, ``Normalization`` and ``Rescaling`` compute ``x * scale + offset`` at
  inference, so they are *folded*: into the Dense layer before them when it is still linear
  (``kernel * scale``, ``bias * scale + offset``), otherwise into the next one's inputs
  (``scale[:, None] * kernel``, ``bias + offset @ kernel``); ``DenseLayer.folded`` names them;
- ``Dropout`` and the other training-only layers do nothing at inference and are skipped.

Anything else is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..backend import keras as _keras
from ..errors import DenselabError
from .graph import chain

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")

# Layers that do nothing at inference.
SKIPPED = (
    "InputLayer",
    "Dropout",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)
FOLDED = ("BatchNormalization", "Normalization", "Rescaling")  # affine at inference
# Activations TFLite has int8 kernels for, which the C engine does not match yet.
NOT_YET = ("LeakyReLU", "PReLU", "ELU")


@dataclass
class DenseLayer:
    """One Dense layer's learned state, named as Keras names it.

    kernel : ndarray of shape (n_inputs, n_neurons); row i is input i, column j is neuron j.
    bias : ndarray of shape (n_neurons,); one bias per neuron.
    folded : names of the normalisation layers folded into this kernel and bias.
    """

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: str = "linear"
    folded: list[str] = field(default_factory=list)
    use_bias: bool = True  # False: Keras keeps no bias (get_weights() is [kernel]); zeros here

    @property
    def n_inputs(self) -> int:
        return self.kernel.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.kernel.shape[1]

    @property
    def n_params(self) -> int:
        return self.kernel.size + (self.bias.size if self.use_bias else 0)

    def __repr__(self) -> str:
        folded = f", folded {'+'.join(self.folded)}" if self.folded else ""
        shape = f"{self.n_inputs}->{self.n_neurons}"
        return f"DenseLayer({self.name!r}, {shape}, {self.activation}{folded})"


@dataclass
class DenseNetwork:
    """A model read as plain arrays: the shape of one input sample and its Dense layers in order.

    ``input_shape`` is the model's input without trailing axes of size 1: a model declared
    with ``Input((28, 28, 1))`` takes the same 28x28 image as one with ``Input((28, 28))``.
    """

    input_shape: tuple[int, ...]
    layers: list[DenseLayer] = field(default_factory=list)
    # the Rescaling layer (e.g. 1/255) by which the model scales pixels 0-255 itself, if any:
    # denselab's own images, already 0-1 as the lesson makes them, would be scaled twice
    scales_raw_pixels: str | None = None

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

    def _repr_html_(self) -> str:
        """In a notebook: one row per layer (shapes, the lesson's weight counts), not arrays."""
        from ..notebook import network_html

        return network_html(self)


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


@dataclass
class _Affine:
    """``x * scale + offset``, elementwise over one sample (arrays of the sample's shape)."""

    scale: np.ndarray
    offset: np.ndarray
    names: list[str]

    def then(self, other: _Affine) -> _Affine:
        return _Affine(
            self.scale * other.scale,
            self.offset * other.scale + other.offset,
            [*self.names, *other.names],
        )


def dense_network(model, finite: bool = True) -> DenseNetwork:
    """Read a Keras model as a :class:`DenseNetwork`, or say which layer is not dense.

    The model's graph must be one chain (one input, one output, each layer used once): see
    :func:`denselab.model.graph.chain`. Weights that are NaN or infinite are refused, unless
    ``finite=False`` (``inspect`` shows a diverged model's weights as they are).
    """
    keras = _keras()
    declared = _input_shape(model)
    shape = declared  # the shape of one sample where the chain has got to
    layers: list[DenseLayer] = []
    pending: _Affine | None = None  # a normalisation that waits for the next Dense layer
    raw_pixels = None  # the Rescaling that takes pixels 0-255 to 0-1 or -1..1, if any
    for layer in chain(model):
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = _dense_weights(layer)
            dense = DenseLayer(
                layer.name, kernel, bias, _activation_name(layer.activation, layer.name)
            )
            dense.use_bias = bool(layer.use_bias)
            if pending is not None:
                _fold_into_inputs(dense, pending)
                pending = None
            layers.append(dense)
            shape = (dense.n_neurons,)
        elif kind in FOLDED:
            if shape is None:
                raise DenselabError(
                    f"layer {layer.name!r} ({kind}) comes before any known input shape"
                )
            affine = _affine(layer, kind, shape)
            if not layers and _scales_bytes(kind, affine):
                raw_pixels = layer.name
            if pending is None and layers and layers[-1].activation == "linear":
                _fold_into_outputs(layers[-1], affine)
            else:
                pending = affine if pending is None else pending.then(affine)
        elif kind in ("Activation", "ReLU", "Softmax", "LeakyReLU"):
            activation = _separate_activation(layer, kind)
            if not layers or layers[-1].activation != "linear" or pending is not None:
                raise DenselabError(
                    f"layer {layer.name!r} ({kind}) does not follow a linear Dense layer"
                )
            layers[-1].activation = activation
        elif isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
            if layers:
                raise DenselabError(f"layer {layer.name!r} ({kind}) after a Dense layer")
            if _reorders(layer, shape):
                raise DenselabError(
                    f"layer {layer.name!r} flattens channels first (data_format="
                    f"'channels_first') from shape {shape}: its order of inputs is not the "
                    "array's; denselab reads channels-last models only"
                )
            if shape is not None:
                shape = tuple(int(d) for d in layer.compute_output_shape((1, *shape))[1:])
        elif kind in SKIPPED:
            continue
        else:
            raise refusal(layer.name, kind)
    if not layers:
        raise DenselabError("the model has no Dense layer")
    for dense in layers if finite else []:  # NaN in a kernel, or a variance below 0 folded
        if not (np.all(np.isfinite(dense.kernel)) and np.all(np.isfinite(dense.bias))):
            parts = "+".join([dense.name, *dense.folded])
            raise DenselabError(
                f"layer {parts!r} has weights that are NaN or infinite (a training that "
                "diverged, or a normalisation with a negative variance?)"
            )
    if pending is not None:
        raise DenselabError(
            f"layer {pending.names[-1]!r} comes after the last Dense layer's "
            f"{layers[-1].activation}; it cannot be folded into a Dense layer"
        )
    input_shape = _sample_shape(declared) if declared else (layers[0].n_inputs,)
    if int(np.prod(input_shape)) != layers[0].n_inputs:
        raise DenselabError(f"model input {input_shape} does not feed its first Dense layer")
    return DenseNetwork(input_shape, layers, raw_pixels)


def for_pixels_0_1(network: DenseNetwork) -> DenseNetwork:
    """A network that scales pixels 0-255 itself, as one taking them 0-1 (pixel / 255, as the
    lesson's models do): the first kernel times 255, which is, up to rounding, the Keras Dense
    layer's own kernel (its Rescaling(1/255) was folded into it)."""
    if not network.scales_raw_pixels:
        return network
    first = network.layers[0]
    kernel = (first.kernel.astype(np.float64) * 255.0).astype(np.float32)
    layers = [replace(first, kernel=kernel, folded=list(first.folded)), *network.layers[1:]]
    return DenseNetwork(network.input_shape, layers)


def _scales_bytes(kind: str, affine: _Affine) -> bool:
    """A ``Rescaling(1/255)`` or ``Rescaling(1/127.5, offset=-1)``: pixels 0-255 expected."""
    if kind != "Rescaling":
        return False
    scale, offset = np.unique(affine.scale), np.unique(affine.offset)
    if scale.size != 1 or offset.size != 1:
        return False
    to_01 = np.isclose(scale[0] * 255, 1, rtol=1e-3) and np.isclose(offset[0], 0, atol=1e-6)
    to_pm1 = np.isclose(scale[0] * 127.5, 1, rtol=1e-3) and np.isclose(offset[0], -1, atol=1e-3)
    return bool(to_01 or to_pm1)


def _reorders(layer, shape: tuple[int, ...] | None) -> bool:
    """Whether a channels-first ``Flatten`` puts its inputs in another order than the array's:
    Keras moves the channels (axis 1) last before flattening, so with more than one channel
    and more than one position the first Dense layer's rows are not the array's order."""
    if getattr(layer, "data_format", "channels_last") != "channels_first" or shape is None:
        return False
    return len(shape) >= 2 and shape[0] > 1 and int(np.prod(shape[1:])) > 1


def refusal(name: str, kind: str) -> DenselabError:
    """The one line that refuses a layer denselab cannot read as part of a Dense layer."""
    if kind in NOT_YET:
        return DenselabError(
            f"layer {name!r} is a {kind}: TFLite Micro has an int8 kernel for it, but "
            f"denselab's C engine does not match it bit for bit yet; use {', '.join(ACTIVATIONS)}"
        )
    return DenselabError(
        f"layer {name!r} is a {kind}; denselab handles dense networks only "
        "(Flatten, Dense, Activation, ReLU, Softmax, Dropout)"
    )


def _sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without trailing axes of size 1: (28, 28, 1) -> (28, 28); (1,) stays."""
    while len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


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


def _dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    mode = getattr(layer, "quantization_mode", None)
    if mode:  # Keras's model.quantize(): integer kernels and scales, not float weights
        raise DenselabError(
            f"layer {layer.name!r} was quantized by Keras ({mode}); give the float model: "
            "denselab quantizes it for TFLite Micro itself (denselab deploy)"
        )
    weights = layer.get_weights()
    if not weights:
        raise DenselabError(f"layer {layer.name!r} has no weights: the model was never built")
    kernel = np.asarray(weights[0], dtype=np.float32)
    if kernel.ndim != 2:
        raise DenselabError(f"layer {layer.name!r} has a kernel of shape {kernel.shape}")
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


def _separate_activation(layer, kind: str) -> str:
    """The activation an ``Activation``, ``ReLU``, ``Softmax`` or ``LeakyReLU`` layer applies."""
    if kind == "Softmax":
        return "softmax"
    if kind == "LeakyReLU":
        if layer.negative_slope != 0:  # slope 0 is a plain ReLU; any other is not in C yet
            raise refusal(layer.name, kind)
        return "relu"
    if kind == "ReLU":
        if layer.max_value or layer.negative_slope or layer.threshold:
            raise DenselabError(f"layer {layer.name!r} is a ReLU with options; not supported")
        return "relu"
    return _activation_name(layer.activation, layer.name)


# --- folding: x * scale + offset, moved into a Dense layer's kernel and bias -----------------


def _affine(layer, kind: str, shape: tuple[int, ...]) -> _Affine:
    """The ``scale`` and ``offset`` (each of ``shape``) that ``layer`` applies at inference."""
    with np.errstate(all="ignore"):  # a negative variance: NaN, refused by the caller
        return _affine_of(layer, kind, shape)


def _affine_of(layer, kind: str, shape: tuple[int, ...]) -> _Affine:
    from keras import ops

    def array(value) -> np.ndarray:
        return np.asarray(ops.convert_to_numpy(value), dtype=np.float64)

    full = (1, *shape)
    if kind == "BatchNormalization":
        axis = layer.axis if isinstance(layer.axis, int) else -1
        if axis % len(full) == 0:
            raise DenselabError(f"layer {layer.name!r} normalizes across the batch axis")
        axis %= len(full)
        mean, variance = array(layer.moving_mean), array(layer.moving_variance)
        gamma = array(layer.gamma) if layer.scale else np.ones_like(mean)
        beta = array(layer.beta) if layer.center else np.zeros_like(mean)
        # (x - mean) / sqrt(variance + epsilon) * gamma + beta, as Keras computes it
        scale = gamma / np.sqrt(variance + layer.epsilon)
        offset = beta - mean * scale
        along = [1] * len(full)
        along[axis] = full[axis]
        scale, offset = scale.reshape(along), offset.reshape(along)
    elif kind == "Normalization":
        if layer.mean is None:
            raise DenselabError(f"layer {layer.name!r} (Normalization) was never adapted")
        mean, variance = array(layer.mean), array(layer.variance)
        # (x - mean) / max(sqrt(variance), epsilon), or its inverse, as Keras computes it
        deviation = np.maximum(np.sqrt(variance), _keras().backend.epsilon())
        if layer.invert:
            scale, offset = deviation, mean
        else:
            scale, offset = 1.0 / deviation, -mean / deviation
    else:  # Rescaling: x * scale + offset
        scale, offset = array(layer.scale), array(layer.offset)
    try:
        scale = np.broadcast_to(scale, full)[0]
        offset = np.broadcast_to(offset, full)[0]
    except ValueError:
        raise DenselabError(
            f"layer {layer.name!r} ({kind}) has parameters that do not fit its input {shape}"
        ) from None
    return _Affine(scale, offset, [layer.name])


def _fold_into_outputs(dense: DenseLayer, affine: _Affine) -> None:
    """``(x @ kernel + bias) * scale + offset`` as one Dense layer (before its activation)."""
    scale, offset = affine.scale.reshape(-1), affine.offset.reshape(-1)
    kernel = dense.kernel.astype(np.float64) * scale
    bias = dense.bias.astype(np.float64) * scale + offset
    dense.kernel, dense.bias = kernel.astype(np.float32), bias.astype(np.float32)
    dense.use_bias = dense.use_bias or bool(np.any(dense.bias))  # an offset folded in
    dense.folded.extend(affine.names)


def _fold_into_inputs(dense: DenseLayer, affine: _Affine) -> None:
    """``(x * scale + offset) @ kernel + bias`` as one Dense layer."""
    scale, offset = affine.scale.reshape(-1), affine.offset.reshape(-1)
    if scale.size != dense.n_inputs:
        raise DenselabError(
            f"layer {affine.names[-1]!r} gives {scale.size} values but layer {dense.name!r} "
            f"takes {dense.n_inputs}"
        )
    kernel = dense.kernel.astype(np.float64)
    bias = dense.bias.astype(np.float64) + offset @ kernel
    dense.kernel = (scale[:, None] * kernel).astype(np.float32)
    dense.bias = bias.astype(np.float32)
    dense.use_bias = dense.use_bias or bool(np.any(dense.bias))  # an offset folded in
    dense.folded[:0] = affine.names
