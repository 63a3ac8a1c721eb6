// The dense forward pass, with no DOM: a = activation(x · kernel + bias) layer by layer,
// kernel of shape (n_inputs, n_neurons) row-major, in Float64 from the exported Float32 weights,
// exactly the arithmetic Keras does.
Explorer.math = (function () {
  // Base64 little-endian bytes (as explore.py writes them) as a typed array.
  function decode(b64, Type) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  function activate(name, z) {
    const a = new Float64Array(z.length);
    if (name === "softmax") {
      let max = -Infinity;
      for (const v of z) max = Math.max(max, v);
      let sum = 0;
      for (let j = 0; j < z.length; j++) sum += a[j] = Math.exp(z[j] - max);
      for (let j = 0; j < z.length; j++) a[j] /= sum;
      return a;
    }
    for (let j = 0; j < z.length; j++) {
      const v = z[j];
      if (name === "relu") a[j] = v > 0 ? v : 0;
      else if (name === "sigmoid") a[j] = 1 / (1 + Math.exp(-v));
      else if (name === "tanh") a[j] = Math.tanh(v);
      else a[j] = v;
    }
    return a;
  }

  // Returns one {z, a} per layer: z = x · kernel + bias, a = activation(z).
  function forward(layers, x) {
    const trace = [];
    let input = x;
    for (const layer of layers) {
      const z = new Float64Array(layer.nOut);
      for (let j = 0; j < layer.nOut; j++) z[j] = layer.bias[j];
      for (let i = 0; i < layer.nIn; i++) {
        const xi = input[i];
        if (xi === 0) continue;
        const row = i * layer.nOut;
        for (let j = 0; j < layer.nOut; j++) z[j] += xi * layer.kernel[row + j];
      }
      const a = activate(layer.activation, z);
      trace.push({ z: z, a: a });
      input = a;
    }
    return trace;
  }

  function argmax(values) {
    let best = 0;
    for (let j = 1; j < values.length; j++) if (values[j] > values[best]) best = j;
    return best;
  }

  // One sigmoid output is p(class 1): as class probabilities, [1 - p, p].
  function classProbabilities(values) {
    return values.length === 1 ? Float64Array.of(1 - values[0], values[0]) : values;
  }

  return { decode, activate, forward, argmax, classProbabilities };
})();
