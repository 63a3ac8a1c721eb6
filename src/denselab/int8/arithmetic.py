"""TFLite Micro's int8 arithmetic in plain Python, step by step, for one input.

The same integers the C engine and TFLM compute, written for reading rather than speed:
every neuron's trace keeps each intermediate value (the accumulator, the Q0.31 product,
the rounding shift, the zero point, the clamp), so ``denselab explain --int8`` can show them
and the explorer page can check its JavaScript port against them.

Python integers do not overflow, so each int32 step is wrapped or saturated exactly where
TFLM's C++ would wrap or saturate (gemmlowp's ``SaturatingRoundingDoublingHighMul`` and
``RoundingDivideByPOT``).
"""

from __future__ import annotations

import numpy as np

from .tflite import QuantizedDense, QuantizedNetwork, QuantizedSoftmax, QuantizedSquash

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def wrap32(x: int) -> int:
    """x as a two's-complement int32 (what C's int32 arithmetic leaves)."""
    return (x + 2**31) % 2**32 - 2**31


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """round(a * b / 2^31), ties away from zero, saturating a == b == INT32_MIN."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    return _truncating_div(ab + nudge, 2**31)


def _truncating_div(a: int, b: int) -> int:
    """C's integer division (toward zero), exact for big Python ints."""
    q = abs(a) // b
    return q if a >= 0 else -q


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """x / 2^exponent rounded to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> dict:
    """x * multiplier * 2^shift with TFLM's double rounding; every step in a dict."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = wrap32(x * (1 << left))
    high = saturating_rounding_doubling_high_mul(shifted, multiplier)
    return {"shifted": shifted, "high_mul": high, "result": rounding_divide_by_pot(high, right)}


def dense(layer: QuantizedDense, q_in: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """FULLY_CONNECTED on int8 ``q_in`` of shape (n_inputs,): the int8 output and, per neuron,
    ``acc = bias + sum_i w[j][i] * (q_in[i] - input_zero_point)`` and every step after it."""
    weights = layer.weights.astype(np.int64)  # (n_neurons, n_inputs), as TFLite's filter
    centred = q_in.astype(np.int64) - layer.input_zero_point
    bias = np.zeros(layer.n_outputs, np.int64) if layer.bias is None else layer.bias
    folded = bias.astype(np.int64) - layer.input_zero_point * weights.sum(axis=1)
    traces, out = [], np.zeros(layer.n_outputs, np.int8)
    for j in range(layer.n_outputs):
        dot = int(weights[j] @ centred)
        acc = wrap32(int(bias[j]) + dot)
        m, shift = int(layer.output_multiplier[j]), int(layer.output_shift[j])
        steps = multiply_by_quantized_multiplier(acc, m, shift)
        shifted_zero = steps["result"] + layer.output_zero_point
        clamped = min(max(shifted_zero, layer.activation_min), layer.activation_max)
        out[j] = clamped
        traces.append(
            {
                "neuron": j + 1,
                "bias": int(bias[j]),
                "folded_bias": int(folded[j]),
                "dot": dot,
                "acc": acc,
                "output_multiplier": m,
                "output_shift": shift,
                "real_multiplier": m * 2.0 ** (shift - 31),
                **steps,
                "plus_zero_point": shifted_zero,
                "activation_min": layer.activation_min,
                "activation_max": layer.activation_max,
                "int8": int(clamped),
                "real": (int(clamped) - layer.output_zero_point) * layer.output_scale,
            }
        )
    return out, traces


def _exp_on_interval_between_negative_one_quarter_and_0(a: int) -> int:
    high_mul = saturating_rounding_doubling_high_mul
    exp_minus_one_eighth, one_third = 1895147668, 715827883
    x = wrap32(a + (1 << 28))
    x2 = high_mul(x, x)
    x3 = high_mul(x2, x)
    x4 = high_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap32(high_mul(wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return wrap32(exp_minus_one_eighth + high_mul(exp_minus_one_eighth, wrap32(x + poly)))


def _saturating_shift_left(x: int, shift: int) -> int:
    threshold = (1 << (31 - shift)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap32(x << shift)


_EXP_OF_MINUS_POWER_OF_TWO = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """exp(a) for a <= 0 with ``integer_bits`` integer bits; the result in Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mod_quarter_minus_quarter = wrap32((a & (one_quarter - 1)) - one_quarter)
    remainder = wrap32(mod_quarter_minus_quarter - a)
    result = _exp_on_interval_between_negative_one_quarter_and_0(
        _saturating_shift_left(mod_quarter_minus_quarter, integer_bits)
    )
    for k in range(-2, min(5, integer_bits)):
        if remainder & (1 << (fractional_bits + k)):
            result = saturating_rounding_doubling_high_mul(
                result, _EXP_OF_MINUS_POWER_OF_TWO[k + 2]
            )
    return INT32_MAX if a == 0 else result


def _newton_two_over_one_plus_x(a: int) -> int:
    high_mul = saturating_rounding_doubling_high_mul
    half_denominator = _truncating_div(a + INT32_MAX + (1 if a + INT32_MAX >= 0 else -1), 2)
    x = wrap32(1515870810 + high_mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - high_mul(half_denominator, x))
        x = wrap32(x + _saturating_shift_left(high_mul(x, one_minus), 2))
    return x


def one_over_one_plus_x(a: int) -> int:
    """1 / (1 + a) for a in [0, 1), both Q0.31 (gemmlowp's one_over_one_plus_x_for_x_in_0_1)."""
    return _saturating_shift_left(_newton_two_over_one_plus_x(a), 1)


def softmax(layer: QuantizedSoftmax, q_in: np.ndarray) -> tuple[np.ndarray, dict]:
    """int8 SOFTMAX as TFLM's kernel does it, with its steps: the largest input, each
    difference scaled to Q5.26, exp in Q0.31, their sum in Q12.19, the reciprocal, the output."""
    q = [int(v) for v in q_in]
    max_input = max(q)
    steps = []
    sum_of_exps = 0
    for value in q:
        diff = value - max_input
        if diff >= layer.diff_min:
            scaled = saturating_rounding_doubling_high_mul(
                wrap32(diff * (1 << layer.input_left_shift)), layer.input_multiplier
            )
            exp_q0 = exp_on_negative_values(scaled, 5)
            sum_of_exps = wrap32(sum_of_exps + rounding_divide_by_pot(exp_q0, 12))
            steps.append({"diff": diff, "scaled_diff_q5_26": scaled, "exp_q0_31": exp_q0})
        else:
            steps.append({"diff": diff, "below_diff_min": True})
    headroom_plus_one = 32 - (sum_of_exps & 0xFFFFFFFF).bit_length()
    num_bits_over_unit = 12 - headroom_plus_one
    shifted_sum_minus_one = wrap32(((sum_of_exps << headroom_plus_one) & 0xFFFFFFFF) - 2**31)
    reciprocal = one_over_one_plus_x(shifted_sum_minus_one)
    exponent = num_bits_over_unit + 31 - 8
    out = np.full(len(q), -128, np.int8)
    for c, step in enumerate(steps):
        if "exp_q0_31" in step:
            value = rounding_divide_by_pot(
                saturating_rounding_doubling_high_mul(reciprocal, step["exp_q0_31"]), exponent
            )
            out[c] = min(value - 128, 127)
        step["int8"] = int(out[c])
        step["real"] = (int(out[c]) + 128) / 256
    return out, {
        "max_input": max_input,
        "diff_min": layer.diff_min,
        "input_multiplier": layer.input_multiplier,
        "input_left_shift": layer.input_left_shift,
        "sum_of_exps_q12_19": sum_of_exps,
        "reciprocal_q0_31": reciprocal,
        "exponent": exponent,
        "outputs": steps,
    }


def squash(layer: QuantizedSquash, q_in: np.ndarray) -> tuple[np.ndarray, dict]:
    """int8 LOGISTIC or TANH, as TFLM's kernels do them."""
    out = np.zeros(layer.size, np.int8)
    for i, value in enumerate(int(v) for v in q_in):
        x = value - layer.input_zero_point
        if x <= -layer.input_range_radius:
            result = -128
        elif x >= layer.input_range_radius:
            result = 127
        else:
            x_q4 = multiply_by_quantized_multiplier(
                x, layer.input_multiplier, layer.input_left_shift
            )["result"]
            if layer.kind == "logistic":
                positive = one_over_one_plus_x(exp_on_negative_values(-abs(x_q4), 4))
                q0 = 1 << 30 if x_q4 == 0 else positive if x_q4 > 0 else INT32_MAX - positive
                result = rounding_divide_by_pot(q0, 23) - 128
            else:
                exp_q0 = exp_on_negative_values(-abs(x_q4), 5)
                tanh_abs = _saturating_shift_left(
                    wrap32(_newton_two_over_one_plus_x(exp_q0) - (1 << 29)), 2
                )
                q0 = 0 if x_q4 == 0 else -tanh_abs if x_q4 < 0 else tanh_abs
                result = rounding_divide_by_pot(q0, 24)
            result = min(max(result, -128), 127)
        out[i] = result
    return out, {"kind": layer.kind, "input_zero_point": layer.input_zero_point}


def run(network: QuantizedNetwork, q_in: np.ndarray) -> tuple[np.ndarray, list]:
    """The whole int8 network on one int8 input: its output and one trace per layer."""
    q = np.asarray(q_in, dtype=np.int8).reshape(-1)
    traces = []
    for layer in network.layers:
        if layer.kind == "dense":
            q, trace = dense(layer, q)
        elif layer.kind == "softmax":
            q, trace = softmax(layer, q)
        else:
            q, trace = squash(layer, q)
        traces.append(trace)
    return q, traces


def dense_batch(layer: QuantizedDense, q_in: np.ndarray) -> np.ndarray:
    """:func:`dense` for many inputs at once, (n_samples, n_inputs) -> (n_samples, n_neurons),
    vectorized with int64 NumPy; the same integers, without the trace."""
    centred = q_in.astype(np.int64) - layer.input_zero_point
    bias = np.zeros(layer.n_outputs, np.int64) if layer.bias is None else layer.bias
    acc = centred @ layer.weights.astype(np.int64).T + bias.astype(np.int64)
    acc = (acc + 2**31) % 2**32 - 2**31
    multiplier = layer.output_multiplier.astype(np.int64)
    shift = layer.output_shift.astype(np.int64)
    shifted = acc * (np.int64(1) << np.maximum(shift, 0))
    shifted = (shifted + 2**31) % 2**32 - 2**31
    ab = shifted * multiplier  # |ab| < 2^62: exact in int64
    nudge = np.where(ab >= 0, 2**30, 1 - 2**30)
    total = ab + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # division toward zero
    saturated = (shifted == INT32_MIN) & (multiplier == INT32_MIN)
    high = np.where(saturated, INT32_MAX, high)
    right = np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    result = (high >> right) + (remainder > threshold)
    out = np.clip(result + layer.output_zero_point, layer.activation_min, layer.activation_max)
    return out.astype(np.int8)
