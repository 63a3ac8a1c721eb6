"""Quantize: turn a dense network into a float and a full-integer (int8) ``.tflite``.

The TensorFlow graph is rebuilt from the network's arrays alone, one layer at a time::

    x = activation(matmul(x, kernel) + bias)

so the converter sees only FULLY_CONNECTED (with a fused ReLU) and, for the other
activations, SOFTMAX, LOGISTIC or TANH. The int8 model takes and returns int8 tensors:
``real = input_scale * (q - input_zero_point)``; its input is the flattened sample,
shape ``(1, n_inputs)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..backend import tensorflow as _tensorflow
from ..errors import DenselabError
from ..fileio import captured_stderr
from ..model import DenseNetwork

CALIBRATION_SAMPLES = 500  # training samples the converter measures ranges on

# Operators the int8 C engine and this module agree a dense network may become.
ALLOWED_OPERATORS = ("FULLY_CONNECTED", "SOFTMAX", "LOGISTIC", "TANH")


def to_tflite(
    network: DenseNetwork, representative: np.ndarray, per_channel: bool = True
) -> tuple[bytes, bytes]:
    """Convert ``network`` to a float ``.tflite`` and a full-integer int8 ``.tflite``.

    Parameters
    ----------
    network : DenseNetwork
        The layers to convert (kernel ``(n_inputs, n_neurons)``, bias ``(n_neurons,)``).
    representative : ndarray of shape (n_samples, *input_shape) or (n_samples, n_inputs)
        Typical inputs; the converter measures each tensor's range on them to choose
        its scale and zero point. A few hundred training samples are plenty.
    per_channel : bool
        One weight scale per neuron (the converter's default) or one per layer.

    Returns
    -------
    (float_tflite, int8_tflite) : tuple of bytes
        Both take a flat float/int8 input of shape ``(1, n_inputs)``.
    """
    samples = _flat_samples(network, representative)
    tf = _tensorflow()
    function = _tf_function(network, tf)
    concrete = function.get_concrete_function()

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    float_tflite = converter.convert()

    def representative_dataset():
        for sample in samples:
            yield [sample[np.newaxis, :]]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel
    with warnings.catch_warnings(), captured_stderr():  # the converter's C++ logs, and
        warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs..."
        int8_tflite = converter.convert()

    for tflite in (float_tflite, int8_tflite):
        unexpected = sorted(set(operator_names(tflite)) - set(ALLOWED_OPERATORS))
        if unexpected:
            raise DenselabError(
                f"the converter produced {', '.join(unexpected)}; denselab only ships "
                f"{', '.join(ALLOWED_OPERATORS)} (is the network really dense?)"
            )
    return bytes(float_tflite), bytes(int8_tflite)


def calibration_samples(
    x_train: np.ndarray, count: int = CALIBRATION_SAMPLES, seed: int = 0
) -> np.ndarray:
    """``count`` training samples drawn without replacement, in their original order: the
    typical inputs the converter measures each tensor's range on (deploy and search alike)."""
    count = min(count, len(x_train))
    chosen = np.random.default_rng(seed).choice(len(x_train), count, replace=False)
    return np.asarray(x_train)[np.sort(chosen)]


def operator_names(tflite: bytes) -> list[str]:
    """The builtin operator of each node of a ``.tflite`` flatbuffer, in execution order."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(tflite, 0)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items()}
    subgraph = model.Subgraphs(0)
    codes = []
    for index in range(subgraph.OperatorsLength()):
        code = model.OperatorCodes(subgraph.Operators(index).OpcodeIndex())
        codes.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return codes


def _tf_function(network: DenseNetwork, tf):
    """A ``tf.function`` computing the network from constants, input ``[1, n_inputs]``."""
    activations = {
        "linear": lambda x: x,
        "relu": tf.nn.relu,
        "sigmoid": tf.math.sigmoid,
        "tanh": tf.math.tanh,
        "softmax": tf.nn.softmax,
    }
    for layer in network.layers:
        if layer.activation not in activations:
            raise DenselabError(
                f"layer {layer.name!r} uses activation {layer.activation!r}; "
                f"quantize supports {', '.join(activations)}"
            )
    weights = [
        (tf.constant(layer.kernel, tf.float32), tf.constant(layer.bias, tf.float32))
        for layer in network.layers
    ]

    @tf.function(input_signature=[tf.TensorSpec([1, network.n_inputs], tf.float32)])
    def dense_network(x):
        for layer, (kernel, bias) in zip(network.layers, weights, strict=True):
            x = activations[layer.activation](tf.matmul(x, kernel) + bias)
        return x

    return dense_network


def _flat_samples(network: DenseNetwork, representative: np.ndarray) -> np.ndarray:
    samples = np.asarray(representative, dtype=np.float32)
    if samples.ndim == 0 or samples.shape[0] == 0:
        raise DenselabError("the representative data set is empty; give a few hundred samples")
    if int(np.prod(samples.shape[1:])) != network.n_inputs:  # (28, 28, 1) is the 28x28 image
        raise DenselabError(
            f"representative samples have shape {samples.shape[1:]}, but the model takes "
            f"{tuple(network.input_shape)} (or {network.n_inputs} flat values)"
        )
    if not np.all(np.isfinite(samples)):
        raise DenselabError("the representative data set contains NaN or infinite values")
    return samples.reshape(len(samples), network.n_inputs)


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated
