"""TensorFlow Lite Micro's integer arithmetic for the constants an int8 kernel bakes in.

Each function is the Python twin of a TFLite C++ helper of the same name, computed in the
same precision (double where TFLite uses double, float32 where it uses float), so the
integers match TFLM's ``Prepare`` exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DenselabError


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real = multiplier * 2^shift / 2^31``, multiplier in Q0.31.

    ``frexp`` then ``round`` (half away from zero) of ``q * 2^31`` in double; tiny multipliers
    (shift < -31) flush to zero.
    """
    if real_multiplier == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    multiplier = round_half_away(fraction * (1 << 31))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return multiplier, shift


def calculate_input_radius(input_integer_bits: int, input_left_shift: int) -> int:
    """TFLite's ``CalculateInputRadius`` (31 signed bits): the largest safe |input difference|."""
    if input_left_shift < 0:
        raise DenselabError("input scale too small for the int8 fixed-point kernels")
    radius = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * (1 << (31 - input_integer_bits))
        / (1 << input_left_shift)
    )
    return math.floor(radius)


def quantize_activation(real: float, scale: float, zero_point: int) -> int:
    """TFLite's activation-range ``Quantize``: zero_point + round(real / scale) in float."""
    return zero_point + round_half_away(float(np.float32(real) / np.float32(scale)))


def round_half_away(value: float) -> int:
    """``std::round``: to nearest, halves away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))
