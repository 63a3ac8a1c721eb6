// One neuron as the chip computes it, in int8 mode: the integer formula with the actual numbers,
// and each neuron's dequantized output beside the float model's.
Explorer.formulaInt8 = (function () {
  const { layers, classNames, shortName } = Explorer.model;
  const { esc, fmt } = Explorer.format;
  const int8 = Explorer.int8;
  const state = Explorer.state;

  // Float layer l -> position of its FULLY_CONNECTED in the int8 trace (softmax etc. follow it).
  const densePosition = [];
  int8.layers.forEach((layer, k) => {
    if (layer.kind === "dense") densePosition.push(k);
  });
  const available = int8.available && densePosition.length === layers.length;

  // Neuron j of float layer l in int8: its output byte, the real value it stands for, the float one.
  function compare(l, j) {
    const trace = state.int8Trace;
    const k = densePosition[l];
    const next = int8.layers[k + 1];
    const last = next && next.kind !== "dense" ? k + 1 : k;
    const layer = int8.layers[last];
    const q = trace[last].out[j];
    const real = layer.kind === "softmax" ? (q + 128) / 256 : (q - layer.outputZeroPoint) * layer.outputScale;
    const float = state.trace[l].a[j];
    return { int8: q, real: real, float: float, error: real - float };
  }

  // The int8 network's output as real values (probabilities for a classifier).
  function outputs() {
    const trace = state.int8Trace;
    return int8.dequantizeOutput(trace[trace.length - 1].out);
  }

  // " + 5" or " − 5": a number added, its sign as an operator.
  function signed(v) {
    return v < 0 ? " − " + -v : " + " + v;
  }

  function span(field, value) {
    return '<b data-field="' + field + '">' + value + "</b>";
  }

  function render() {
    const target = state.hover || state.selected;
    const l = target.layer;
    const j = target.index;
    const k = densePosition[l];
    const layer = int8.layers[k];
    const n = layer.nInputs;
    const input = state.int8Trace[k].input;
    const neuron = state.int8Trace[k].neurons[j];
    const zp = layer.inputZeroPoint;
    const terms = [];
    for (let i = 0; i < n; i++) terms.push({ i: i, w: layer.weights[j * n + i], q: input[i], p: layer.weights[j * n + i] * (input[i] - zp) });
    const shown = terms
      .filter((t) => t.p !== 0)
      .sort((a, b) => Math.abs(b.p) - Math.abs(a.p))
      .slice(0, 4);
    const m = neuron.outputMultiplier;
    const shift = neuron.outputShift;
    const right = Math.max(-shift, 0);
    const c = compare(l, j);
    const zpText = signed(-zp);
    let sum = shown.map((t, k) => (k === 0 ? t.w : t.w < 0 ? " − " + -t.w : " + " + t.w) + "·(" + t.q + zpText + ")").join("");
    if (terms.length > shown.length) sum += " + … (" + n + " terms)";
    let text =
      "acc = bias + Σ w·(q − zp) = " + neuron.bias + " + " + (sum || "0") + "\n    = " + span("bias", neuron.bias) + " + " + span("dot", neuron.dot) +
      " = " + span("acc", neuron.acc) + "\n" +
      "× M = m·2^(shift−31) = " + span("output_multiplier", m) + "·2^(" + span("output_shift", shift) + "−31) = " +
      (m * 2 ** (shift - 31)).toExponential(4) + "\n" +
      "high_mul(acc" + (shift > 0 ? "·2^" + shift : "") + ", m) = round(" + neuron.shifted + " × " + m + " / 2^31) = " + span("high_mul", neuron.highMul) + "\n" +
      "rounded shift: " + neuron.highMul + " / 2^" + right + " → " + span("result", neuron.result) + "\n" +
      "+ zp:" + signed(layer.outputZeroPoint) + " = " + neuron.plusZeroPoint + "\n" +
      "clamp to [" + layer.activationMin + ", " + layer.activationMax + "] → int8 " + span("int8", neuron.int8) + "\n" +
      "= " + layer.outputScale.toExponential(4) + " × (" + neuron.int8 + signed(-layer.outputZeroPoint) + ") = " + span("real", fmt(neuron.real)) +
      (layer.activation === "relu" ? "  (relu is the clamp)" : "");
    const after = int8.layers[k + 1];
    if (after && after.kind !== "dense") {
      text += "\n" + after.kind + " (integer, as TFLM's kernel) → int8 " + span("after_int8", c.int8) + " = " + fmt(c.real);
    }
    text += "\nfloat (Keras) " + fmt(c.float) + " · int8 off by " + span("error", fmt(c.error));
    let html =
      "<h3>" + esc(layers[l].name) + ", " + esc(shortName(l, j)) + (l === layers.length - 1 && classNames ? ' · class "' + esc(classNames[j]) + '"' : "") +
      " · int8, as the chip computes it</h3>";
    html += '<div class="math int8-math" data-layer="' + l + '" data-index="' + j + '">' + text + "</div>";
    // How far each neuron of this layer is from the float model.
    html += '<table class="int8-errors"><tr><th>neuron</th><th>int8</th><th>= real</th><th>float</th><th>off by</th></tr>';
    for (let jj = 0; jj < layers[l].nOut; jj++) {
      const cc = compare(l, jj);
      html +=
        "<tr" + (jj === j ? ' class="total"' : "") + "><td>" + shortName(l, jj) + "</td><td>" + cc.int8 + "</td><td>" + fmt(cc.real) +
        "</td><td>" + fmt(cc.float) + "</td><td>" + fmt(cc.error) + "</td></tr>";
    }
    html += "</table>";
    document.getElementById("formula").innerHTML = html;
  }

  return { available, compare, outputs, render };
})();
