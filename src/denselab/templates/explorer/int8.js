// TFLite Micro's int8 arithmetic, ported from denselab/int8/arithmetic.py step by step: the same
// integers the chip computes. 64-bit products are exact with BigInt; every other step fits in a
// double, and `| 0` wraps to int32 exactly where C's int32 arithmetic wraps.
Explorer.int8 = (function () {
  const { decode } = Explorer.math;
  const DATA = Explorer.data.int8 || null;
  const INT32_MIN = -2147483648;
  const INT32_MAX = 2147483647;

  const layers = DATA
    ? DATA.layers.map((layer) => {
        if (layer.kind !== "dense") return layer;
        return Object.assign({}, layer, {
          weights: decode(layer.weights, Int8Array), // (nNeurons, nInputs), as TFLite's filter
          bias: layer.bias === null ? null : decode(layer.bias, Int32Array),
        });
      })
    : [];

  const wrap32 = (x) => x | 0; // exact for |x| < 2^53

  // round(a * b / 2^31), ties away from zero, saturating a == b == INT32_MIN.
  function highMul(a, b) {
    if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
    const ab = BigInt(a) * BigInt(b);
    const nudge = ab >= 0n ? 1n << 30n : 1n - (1n << 30n);
    return Number((ab + nudge) / (1n << 31n)); // BigInt division truncates toward zero, as C's
  }

  // x / 2^exponent rounded to nearest, ties away from zero (x an int32).
  function roundingDivideByPot(x, exponent) {
    const power = 2 ** exponent;
    const mask = power - 1;
    const remainder = ((x % power) + power) % power; // x & mask
    const threshold = Math.floor(mask / 2) + (x < 0 ? 1 : 0);
    return Math.floor(x / power) + (remainder > threshold ? 1 : 0);
  }

  // x * multiplier * 2^shift with TFLM's double rounding; every step kept.
  function multiplyByQuantizedMultiplier(x, multiplier, shift) {
    const left = Math.max(shift, 0);
    const right = Math.max(-shift, 0);
    const shifted = Number(BigInt.asIntN(32, BigInt(x) << BigInt(left)));
    const high = highMul(shifted, multiplier);
    return { shifted: shifted, highMul: high, result: roundingDivideByPot(high, right) };
  }

  // FULLY_CONNECTED: acc = bias + Σ w[j][i] · (q[i] − input zero point), then requantized.
  function dense(layer, q) {
    const n = layer.nInputs;
    const out = new Int8Array(layer.nNeurons);
    const neurons = [];
    for (let j = 0; j < layer.nNeurons; j++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += layer.weights[j * n + i] * (q[i] - layer.inputZeroPoint);
      const bias = layer.bias ? layer.bias[j] : 0;
      const acc = wrap32(bias + dot);
      const m = layer.outputMultiplier[j];
      const shift = layer.outputShift[j];
      const steps = multiplyByQuantizedMultiplier(acc, m, shift);
      const plusZeroPoint = steps.result + layer.outputZeroPoint;
      const clamped = Math.min(Math.max(plusZeroPoint, layer.activationMin), layer.activationMax);
      out[j] = clamped;
      neurons.push({
        bias: bias,
        dot: dot,
        acc: acc,
        outputMultiplier: m,
        outputShift: shift,
        shifted: steps.shifted,
        highMul: steps.highMul,
        result: steps.result,
        plusZeroPoint: plusZeroPoint,
        int8: clamped,
        real: (clamped - layer.outputZeroPoint) * layer.outputScale,
      });
    }
    return { out: out, neurons: neurons };
  }

  function exponentialOnQuarterInterval(a) {
    const expMinusOneEighth = 1895147668;
    const oneThird = 715827883;
    const x = wrap32(a + (1 << 28));
    const x2 = highMul(x, x);
    const x3 = highMul(x2, x);
    const x4 = highMul(x2, x2);
    const x4Over4 = roundingDivideByPot(x4, 2);
    const poly = roundingDivideByPot(wrap32(highMul(wrap32(x4Over4 + x3), oneThird) + x2), 1);
    return wrap32(expMinusOneEighth + highMul(expMinusOneEighth, wrap32(x + poly)));
  }

  function saturatingShiftLeft(x, shift) {
    const threshold = 2 ** (31 - shift) - 1;
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return x << shift;
  }

  const EXP_OF_MINUS_POWER_OF_TWO = [1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242];

  // exp(a) for a <= 0 with `integerBits` integer bits; the result in Q0.31.
  function expOnNegativeValues(a, integerBits) {
    const fractionalBits = 31 - integerBits;
    const oneQuarter = 1 << (fractionalBits - 2);
    const modQuarterMinusQuarter = wrap32((a & (oneQuarter - 1)) - oneQuarter);
    const remainder = wrap32(modQuarterMinusQuarter - a);
    let result = exponentialOnQuarterInterval(saturatingShiftLeft(modQuarterMinusQuarter, integerBits));
    for (let k = -2; k < Math.min(5, integerBits); k++) {
      if (remainder & (1 << (fractionalBits + k))) result = highMul(result, EXP_OF_MINUS_POWER_OF_TWO[k + 2]);
    }
    return a === 0 ? INT32_MAX : result;
  }

  function newtonTwoOverOnePlusX(a) {
    const sum = a + INT32_MAX + (a + INT32_MAX >= 0 ? 1 : -1);
    const halfDenominator = Math.trunc(sum / 2);
    let x = wrap32(1515870810 + highMul(halfDenominator, -1010580540));
    for (let k = 0; k < 3; k++) {
      const oneMinus = wrap32((1 << 29) - highMul(halfDenominator, x));
      x = wrap32(x + saturatingShiftLeft(highMul(x, oneMinus), 2));
    }
    return x;
  }

  const oneOverOnePlusX = (a) => saturatingShiftLeft(newtonTwoOverOnePlusX(a), 1);

  // SOFTMAX as TFLM's kernel does it: differences from the largest input in Q5.26, exp in Q0.31,
  // their sum in Q12.19, its reciprocal, each output.
  function softmax(layer, q) {
    let maxInput = -128;
    for (const v of q) maxInput = Math.max(maxInput, v);
    const exps = [];
    let sumOfExps = 0;
    for (const v of q) {
      const diff = v - maxInput;
      if (diff >= layer.diffMin) {
        const scaled = highMul(wrap32(diff * 2 ** layer.inputLeftShift), layer.inputMultiplier);
        const e = expOnNegativeValues(scaled, 5);
        sumOfExps = wrap32(sumOfExps + roundingDivideByPot(e, 12));
        exps.push(e);
      } else {
        exps.push(null);
      }
    }
    const headroomPlusOne = Math.clz32(sumOfExps >>> 0);
    const numBitsOverUnit = 12 - headroomPlusOne;
    const shiftedSumMinusOne = wrap32(((sumOfExps << headroomPlusOne) >>> 0) - 2 ** 31);
    const reciprocal = oneOverOnePlusX(shiftedSumMinusOne);
    const exponent = numBitsOverUnit + 31 - 8;
    const out = new Int8Array(q.length).fill(-128);
    exps.forEach((e, c) => {
      if (e !== null) out[c] = Math.min(roundingDivideByPot(highMul(reciprocal, e), exponent) - 128, 127);
    });
    return { out: out, maxInput: maxInput, sumOfExps: sumOfExps, reciprocal: reciprocal, exponent: exponent };
  }

  // LOGISTIC or TANH, as TFLM's kernels do them.
  function squash(layer, q) {
    const out = new Int8Array(q.length);
    q.forEach((value, i) => {
      const x = value - layer.inputZeroPoint;
      let result;
      if (x <= -layer.inputRangeRadius) result = -128;
      else if (x >= layer.inputRangeRadius) result = 127;
      else {
        const xQ4 = multiplyByQuantizedMultiplier(x, layer.inputMultiplier, layer.inputLeftShift).result;
        if (layer.kind === "logistic") {
          const positive = oneOverOnePlusX(expOnNegativeValues(-Math.abs(xQ4), 4));
          const q0 = xQ4 === 0 ? 1 << 30 : xQ4 > 0 ? positive : INT32_MAX - positive;
          result = roundingDivideByPot(q0, 23) - 128;
        } else {
          const e = expOnNegativeValues(-Math.abs(xQ4), 5);
          const tanhAbs = saturatingShiftLeft(wrap32(newtonTwoOverOnePlusX(e) - (1 << 29)), 2);
          const q0 = xQ4 === 0 ? 0 : xQ4 < 0 ? -tanhAbs : tanhAbs;
          result = roundingDivideByPot(q0, 24);
        }
        result = Math.min(Math.max(result, -128), 127);
      }
      out[i] = result;
    });
    return { out: out };
  }

  // Round halves away from zero, as std::round in TFLite (and the chip's quantize_input).
  function roundHalfAway(v) {
    const whole = Math.trunc(v);
    return Math.abs(v - whole) >= 0.5 ? whole + Math.sign(v) : whole;
  }

  // The float input as the chip gets it: q = clamp(round(x / input_scale) + zero_point), in
  // float32 as QuantizedNetwork.quantize_input computes it.
  function quantizeInput(x) {
    const q = new Int8Array(x.length);
    const scale = Math.fround(DATA.inputScale);
    for (let i = 0; i < x.length; i++) {
      const v = roundHalfAway(Math.fround(Math.fround(x[i]) / scale)) + DATA.inputZeroPoint;
      q[i] = Math.min(Math.max(v, -128), 127);
    }
    return q;
  }

  // The whole int8 network on a float input: one {kind, input, out, ...} per layer.
  function run(x) {
    let q = quantizeInput(x);
    const trace = [];
    for (const layer of layers) {
      const step = layer.kind === "dense" ? dense(layer, q) : layer.kind === "softmax" ? softmax(layer, q) : squash(layer, q);
      step.kind = layer.kind;
      step.input = q;
      trace.push(step);
      q = step.out;
    }
    return trace;
  }

  function dequantizeOutput(q) {
    return Array.from(q, (v) => (v - DATA.outputZeroPoint) * DATA.outputScale);
  }

  return { available: Boolean(DATA), layers, run, quantizeInput, dequantizeOutput, dense, softmax, squash };
})();
