"""The int8 model as arrays: an int8 ``.tflite`` read, with TFLM's requantization constants.

Every constant is derived here exactly as TensorFlow Lite Micro derives it at ``Prepare``:

* FULLY_CONNECTED, per channel (the converter's default for Dense)::

      M_j = double(input_scale) * double(filter_scale[j]) / double(output_scale)

  in double; the per-tensor path multiplies ``input_scale * filter_scale`` in *float*
  first (``GetQuantizedConvolutionMultipler``), which is reproduced too. ``M_j`` becomes
  ``output_multiplier[j] * 2^output_shift[j]`` through ``QuantizeMultiplier``.
* SOFTMAX: ``PreprocessSoftmaxScaling(beta, input_scale, 5)`` and
  ``diff_min = -CalculateInputRadius(5, input_left_shift)``.
* LOGISTIC / TANH: ``frexp(input_scale * 2^27)`` and ``CalculateInputRadius(4, shift)``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import DenselabError
from .tflm_math import (
    calculate_input_radius,
    quantize_activation,
    quantize_multiplier,
    round_half_away,
)

_MAX_TENSOR_SIZE = 1 << 24  # far beyond any microcontroller; stops a hostile shape early
_FUSED_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}


@dataclass
class QuantizedDense:
    """One int8 FULLY_CONNECTED: ``q_out = clamp(z_out + M_j * (bias_j + W_j . (q_in - z_in)))``.

    weights : ndarray of shape (n_neurons, n_inputs), int8, as stored in the .tflite.
    bias : ndarray of shape (n_neurons,), int32 with scale ``input_scale * filter_scales``,
        or None when the converter left none (all zero, or folded into the next layer).
    filter_scales, output_multiplier, output_shift : ndarrays of shape (n_neurons,).
    """

    name: str
    weights: np.ndarray
    bias: np.ndarray | None
    input_scale: float
    input_zero_point: int
    filter_scales: np.ndarray
    output_scale: float
    output_zero_point: int
    output_multiplier: np.ndarray
    output_shift: np.ndarray
    activation: str
    activation_min: int
    activation_max: int
    per_channel: bool

    kind = "dense"

    @property
    def n_inputs(self) -> int:
        return self.weights.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights.shape[0]

    def __repr__(self) -> str:
        return (
            f"QuantizedDense({self.name!r}, {self.n_inputs}->{self.n_outputs}, {self.activation})"
        )


@dataclass
class QuantizedSoftmax:
    """int8 SOFTMAX with TFLM's fixed-point parameters (output_scale 1/256, zero point -128)."""

    name: str
    size: int
    beta: float
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    input_multiplier: int
    input_left_shift: int
    diff_min: int

    kind = "softmax"

    @property
    def n_outputs(self) -> int:
        return self.size


@dataclass
class QuantizedSquash:
    """int8 LOGISTIC or TANH (``kind``): input rescaled to Q4.27, saturating beyond a radius."""

    name: str
    kind: str
    size: int
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    input_multiplier: int
    input_left_shift: int
    input_range_radius: int

    @property
    def n_outputs(self) -> int:
        return self.size


@dataclass
class QuantizedNetwork:
    """The int8 model as the C engine runs it: layers in order, and the I/O quantization."""

    layers: list
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_inputs

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_outputs

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float samples ``(n_samples, ...)`` -> int8 ``(n_samples, n_inputs)``:
        ``q = clamp(round(x / input_scale) + input_zero_point, -128, 127)``."""
        flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        scaled = (flat / np.float32(self.input_scale)).astype(np.float64)  # float's quotient
        whole = np.trunc(scaled)  # then std::round's halves away from zero, as TFLite's
        with np.errstate(invalid="ignore"):  # inf - inf: an infinite input is clipped below
            q = whole + np.where(np.abs(scaled - whole) >= 0.5, np.sign(scaled), 0.0)
        return np.clip(np.nan_to_num(q + self.input_zero_point, nan=-128), -128, 127).astype(
            np.int8
        )

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """int8 outputs -> the real values they stand for: ``scale * (q - zero_point)``."""
        return (np.asarray(q).astype(np.float32) - self.output_zero_point) * self.output_scale

    def __repr__(self) -> str:
        return f"QuantizedNetwork({', '.join(repr(layer) for layer in self.layers)})"


def read_int8_tflite(int8_tflite: bytes) -> QuantizedNetwork:
    """Read a full-integer ``.tflite`` (FULLY_CONNECTED, SOFTMAX, LOGISTIC, TANH) into arrays.

    Every index, shape and scale in the flatbuffer is checked before use: a damaged or hostile
    file raises :class:`DenselabError`, never another exception.
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    blob = bytes(int8_tflite)
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        raise DenselabError(
            "not a .tflite flatbuffer (no TFL3 identifier); give deploy's int8 model"
        )
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(blob, 0))
        return _read_network(schema, model)
    except DenselabError:
        raise
    except _MALFORMED as error:  # the flatbuffer's offsets point outside it, or types mismatch
        reason = str(error).strip().splitlines()[0][:80] if str(error).strip() else "bad offset"
        raise DenselabError(
            f"damaged .tflite (unreadable flatbuffer: {reason}); write it again with "
            "denselab deploy"
        ) from None


# What the flatbuffers reader and NumPy raise on a damaged buffer.
_MALFORMED = (
    AttributeError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
    ZeroDivisionError,
    RecursionError,
    UnicodeDecodeError,
    struct.error,
)


def _read_network(schema, model) -> QuantizedNetwork:
    if not model.subgraphs or not model.operatorCodes:
        raise DenselabError("the .tflite has no graph; give deploy's int8 model")
    graph = model.subgraphs[0]
    tensors = graph.tensors or []
    operators = graph.operators or []

    def tensor(index: int, what: str):
        if not 0 <= index < len(tensors):
            raise DenselabError(f"the .tflite refers to {what} tensor {index}, which is absent")
        return tensors[index]

    operator_names = {value: name for name, value in vars(schema.BuiltinOperator).items()}
    if graph.inputs is None or len(graph.inputs) != 1:
        raise DenselabError("the .tflite must have exactly one input tensor")
    layers = []
    previous_output = int(graph.inputs[0])
    first_input = tensor(previous_output, "the input")
    for index, operator in enumerate(operators):
        if not 0 <= operator.opcodeIndex < len(model.operatorCodes):
            raise DenselabError(f"operator {index} has no operator code")
        code = model.operatorCodes[operator.opcodeIndex]
        kind = operator_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if operator.inputs is None or operator.outputs is None or not len(operator.outputs):
            raise DenselabError(f"operator {index} ({kind}) has no inputs or outputs")
        inputs = [None if i < 0 else tensor(int(i), "an operator's") for i in operator.inputs]
        output = tensor(int(operator.outputs[0]), "an operator's")
        if not inputs or operator.inputs[0] != previous_output:
            raise DenselabError(f"operator {index} ({kind}) does not follow the previous one")
        for one in (inputs[0], output):
            if one.type != schema.TensorType.INT8:
                raise DenselabError(f"operator {index} ({kind}) is not int8; quantize fully")
        name = output.name.decode(errors="replace") if output.name else f"tensor_{index}"
        if kind == "FULLY_CONNECTED":
            if len(inputs) < 2 or inputs[1] is None:
                raise DenselabError(f"operator {index} (FULLY_CONNECTED) has no weights")
            layer = _dense(name, operator, inputs, output, model.buffers or [])
        elif kind == "SOFTMAX":
            layer = _softmax(name, operator, inputs[0], output)
        elif kind in ("LOGISTIC", "TANH"):
            layer = _squash(name, kind.lower(), inputs[0], output)
        else:
            raise DenselabError(
                f"operator {index} is {kind}; the C engine runs dense networks only"
            )
        _check_follows(layers, layer, index, _size(inputs[0]))
        layers.append(layer)
        previous_output = int(operator.outputs[0])
    if not layers or not isinstance(layers[0], QuantizedDense):
        raise DenselabError("the model does not start with a FULLY_CONNECTED layer")
    if graph.outputs is None or list(graph.outputs) != [previous_output]:
        raise DenselabError("the .tflite's output is not its last operator's output")
    last_output = tensor(previous_output, "the output")
    return QuantizedNetwork(
        layers, *_scale_zero_point(first_input), *_scale_zero_point(last_output)
    )


def _check_follows(layers: list, layer, index: int, input_size: int) -> None:
    """Each layer must take exactly what the one before it gives."""
    expected = layers[-1].n_outputs if layers else input_size
    n_inputs = layer.n_inputs if isinstance(layer, QuantizedDense) else layer.size
    if n_inputs != expected or n_inputs != input_size or n_inputs < 1 or layer.n_outputs < 1:
        raise DenselabError(
            f"operator {index} takes {n_inputs} values but receives {expected}; "
            "the .tflite is inconsistent"
        )


def _size(tensor) -> int:
    shape = [] if tensor.shape is None else [int(d) for d in tensor.shape]
    if any(d < 1 for d in shape) or math.prod(shape) > _MAX_TENSOR_SIZE:
        raise DenselabError(f"tensor {tensor.name!r} has an unusable shape {shape}")
    return math.prod(shape)


def _dense(name, operator, tensors, output, buffers) -> QuantizedDense:
    input_tensor, filter_tensor = tensors[0], tensors[1]
    bias_tensor = tensors[2] if len(tensors) > 2 else None
    weights = _constant(filter_tensor, buffers, np.int8)
    if weights.ndim != 2 or weights.size == 0:
        raise DenselabError(f"layer {name!r} weights have shape {weights.shape}, not 2-D")
    n_neurons = weights.shape[0]
    bias = None if bias_tensor is None else _constant(bias_tensor, buffers, np.int32)
    if bias is not None and bias.shape != (n_neurons,):
        raise DenselabError(f"layer {name!r} bias has shape {bias.shape}, not ({n_neurons},)")
    if _size(output) != n_neurons:
        raise DenselabError(f"layer {name!r} has {n_neurons} neurons but {_size(output)} outputs")
    input_scale, input_zero_point = _scale_zero_point(input_tensor)
    output_scale, output_zero_point = _scale_zero_point(output)
    quantization = filter_tensor.quantization
    if quantization is None or quantization.scale is None or quantization.zeroPoint is None:
        raise DenselabError(f"layer {name!r} weights are not quantized")
    filter_scales = np.asarray(quantization.scale, dtype=np.float32)
    if filter_scales.size not in (1, n_neurons) or not _valid_scales(filter_scales):
        raise DenselabError(f"layer {name!r} has unusable weight scales")
    if np.any(np.asarray(quantization.zeroPoint) != 0):
        raise DenselabError(f"layer {name!r} has asymmetric int8 weights; TFLM needs symmetric")
    per_channel = filter_scales.size > 1
    if per_channel:  # all in double, as CalculateOpDataFullyConnected does
        real = [float(input_scale) * float(s) / float(output_scale) for s in filter_scales]
    else:  # float product first, as GetQuantizedConvolutionMultipler does
        product = float(np.float32(input_scale) * np.float32(filter_scales[0]))
        real = [product / float(output_scale)] * n_neurons
        filter_scales = np.full(n_neurons, filter_scales[0], dtype=np.float32)
    multipliers, shifts = zip(*(quantize_multiplier(r) for r in real), strict=True)
    if max(shifts) > 31:  # TFLM shifts an int left by it: undefined (x86 and Arm disagree)
        raise DenselabError(
            f"layer {name!r}: its output scale ({float(output_scale):.3g}) is too small for its "
            f"input and weight scales (a left shift of {max(shifts)} bits, above 31, where "
            "TFLite Micro's arithmetic is undefined); its outputs were constant in the "
            "calibration data: calibrate with data that moves them"
        )
    options = operator.builtinOptions
    activation = _FUSED_ACTIVATIONS.get(getattr(options, "fusedActivationFunction", 0))
    if activation is None:
        raise DenselabError(f"layer {name!r} has an unsupported fused activation")
    low, high = {"none": (None, None), "relu": (0.0, None), "relu6": (0.0, 6.0)}.get(
        activation, (-1.0, 1.0)
    )
    activation_min = (
        -128
        if low is None
        else max(-128, quantize_activation(low, output_scale, output_zero_point))
    )
    activation_max = (
        127
        if high is None
        else min(127, quantize_activation(high, output_scale, output_zero_point))
    )
    return QuantizedDense(
        name=name,
        weights=weights.reshape(n_neurons, -1),
        bias=bias,
        input_scale=input_scale,
        input_zero_point=input_zero_point,
        filter_scales=filter_scales,
        output_scale=output_scale,
        output_zero_point=output_zero_point,
        output_multiplier=np.array(multipliers, dtype=np.int64),
        output_shift=np.array(shifts, dtype=np.int64),
        activation=activation,
        activation_min=activation_min,
        activation_max=activation_max,
        per_channel=per_channel,
    )


# The int8 softmax adds every exp(x - max) as Q12.19 in an int32: 4,096 outputs at the
# maximum would reach 2^31.
SOFTMAX_MOST = 4096


def _softmax(name, operator, input_tensor, output) -> QuantizedSoftmax:
    input_scale, input_zero_point = _scale_zero_point(input_tensor)
    output_scale, output_zero_point = _scale_zero_point(output)
    if output_zero_point != -128 or output_scale != 1.0 / 256:
        raise DenselabError(f"softmax {name!r} output is not scale 1/256, zero point -128")
    if _size(output) >= SOFTMAX_MOST:
        raise DenselabError(
            f"softmax {name!r} has {_size(output):,} outputs; the int8 kernel sums them in 32 "
            f"bits, which holds fewer than {SOFTMAX_MOST:,}"
        )
    beta = float(np.float32(getattr(operator.builtinOptions, "beta", 1.0)))
    if not (math.isfinite(beta) and beta > 0):
        raise DenselabError(f"softmax {name!r} has beta {beta}; it must be positive")
    real = min(beta * input_scale * (1 << 26), (1 << 31) - 1.0)  # PreprocessSoftmaxScaling
    multiplier, left_shift = quantize_multiplier(real)
    if real <= 1.0 or left_shift < 0:  # TFLM's QuantizeMultiplierGreaterThanOne aborts there
        raise DenselabError(
            f"softmax {name!r} input scale ({float(input_scale):.3g}) is too small for the int8 "
            "kernel: its inputs were constant in the calibration data (all logits equal?)"
        )
    return QuantizedSoftmax(
        name=name,
        size=_same_size(input_tensor, output, name),
        beta=beta,
        input_scale=input_scale,
        input_zero_point=input_zero_point,
        output_scale=output_scale,
        output_zero_point=output_zero_point,
        input_multiplier=multiplier,
        input_left_shift=left_shift,
        diff_min=-calculate_input_radius(5, left_shift),
    )


def _squash(name, kind, input_tensor, output) -> QuantizedSquash:
    input_scale, input_zero_point = _scale_zero_point(input_tensor)
    output_scale, output_zero_point = _scale_zero_point(output)
    expected = (1.0 / 256, -128) if kind == "logistic" else (1.0 / 128, 0)
    if (output_scale, output_zero_point) != expected:
        raise DenselabError(f"{kind} {name!r} output quantization is not TFLM's fixed one")
    # TFLM rounds frexp's fraction itself here (no QuantizeMultiplier).
    fraction, left_shift = math.frexp(input_scale * (1 << 27))
    return QuantizedSquash(
        name=name,
        kind=kind,
        size=_same_size(input_tensor, output, name),
        input_scale=input_scale,
        input_zero_point=input_zero_point,
        output_scale=output_scale,
        output_zero_point=output_zero_point,
        input_multiplier=round_half_away(fraction * (1 << 31)),
        input_left_shift=left_shift,
        input_range_radius=calculate_input_radius(4, left_shift),
    )


def _constant(tensor, buffers, dtype) -> np.ndarray:
    if not 0 <= tensor.buffer < len(buffers) or buffers[tensor.buffer].data is None:
        raise DenselabError(f"tensor {tensor.name!r} has no constant data")
    data = np.asarray(buffers[tensor.buffer].data, np.uint8).tobytes()
    shape = [] if tensor.shape is None else [int(d) for d in tensor.shape]
    if any(d < 1 for d in shape) or math.prod(shape) * np.dtype(dtype).itemsize != len(data):
        raise DenselabError(f"tensor {tensor.name!r}: shape {shape} does not match its data")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _same_size(input_tensor, output, name: str) -> int:
    size = _size(output)
    if _size(input_tensor) != size:
        raise DenselabError(f"{name!r} changes the size of its input; not an activation")
    return size


def _valid_scales(scales: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(scales)) and np.all(scales > 0))


def _scale_zero_point(tensor) -> tuple[float, int]:
    quantization = tensor.quantization
    if (
        quantization is None
        or quantization.scale is None
        or quantization.zeroPoint is None
        or len(quantization.scale) != 1
        or len(quantization.zeroPoint) != 1
    ):
        raise DenselabError(f"tensor {tensor.name!r} is not quantized per tensor")
    scale, zero_point = float(quantization.scale[0]), int(quantization.zeroPoint[0])
    if not _valid_scales(np.float32([scale])) or not -128 <= zero_point <= 127:
        raise DenselabError(
            f"tensor {tensor.name!r} has scale {scale} and zero point {zero_point}; "
            "int8 needs a positive scale and a zero point in -128..127"
        )
    return scale, zero_point
