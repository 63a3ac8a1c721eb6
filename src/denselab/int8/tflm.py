"""The oracle: the int8 ``.tflite`` run by the real TensorFlow Lite Micro interpreter.

"Bit-exact" in denselab always means "the same bytes as these functions return": they call
the ``tflite-micro`` package's interpreter (the real TFLM kernels), not LiteRT, whose
reference FullyConnected requantizes differently.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import DenselabError
from ..fileio import captured_stderr


def tflm_invoke(int8_tflite: bytes, inputs_int8: np.ndarray) -> np.ndarray:
    """Run each sample through the TFLM interpreter.

    inputs_int8 : ndarray of shape (n_samples, n_inputs), int8.
    Returns the int8 outputs, shape (n_samples, n_outputs).
    """
    interpreter = _tflm_interpreter(int8_tflite)
    details = interpreter.get_input_details(0)
    inputs_int8 = check_inputs(inputs_int8, int(np.prod(details["shape"])))
    shape = tuple(details["shape"])
    outputs = []
    for sample in inputs_int8:
        interpreter.set_input(sample.reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0), dtype=np.int8).reshape(-1))
    return np.stack(outputs)


def tflm_arena_bytes(int8_tflite: bytes) -> int:
    """The tensor arena TFLM allocated for this model, in bytes, on this (64-bit) host.

    The runtime does not return the number; its ``RecordingMicroAllocator`` prints it
    (``Arena allocation total N bytes``) on the C stderr, which is captured here. On a
    32-bit microcontroller pointers are smaller, so the arena there is a little smaller.
    """
    interpreter = _tflm_interpreter(int8_tflite)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=np.int8), 0)
    interpreter.invoke()
    with captured_stderr() as captured:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", captured["text"])
    if match is None:
        raise RuntimeError("TFLM did not report its arena allocation")
    return int(match.group(1))


def _tflm_interpreter(int8_tflite: bytes):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise DenselabError(
            "TFLite Micro is not installed; pip install 'denselab[deploy]'"
        ) from None
    try:
        return runtime.Interpreter.from_bytes(
            bytes(int8_tflite), arena_size=len(int8_tflite) + 65536
        )
    except RuntimeError as error:
        raise DenselabError(f"TFLite Micro cannot load this model: {error}") from None


def check_inputs(inputs_int8: np.ndarray, n_inputs: int) -> np.ndarray:
    inputs_int8 = np.asarray(inputs_int8)
    if inputs_int8.dtype != np.int8:
        raise DenselabError(f"inputs must be int8 (quantized), not {inputs_int8.dtype}")
    if inputs_int8.ndim != 2 or inputs_int8.shape[1] != n_inputs:
        raise DenselabError(
            f"inputs must have shape (n_samples, {n_inputs}), not {inputs_int8.shape}"
        )
    return np.ascontiguousarray(inputs_int8)
