// One neuron's arithmetic (the hovered one, else the selected one): z = x · w + b, then its activation.
Explorer.formula = (function () {
  const { layers, image, classNames, shortName, inputName } = Explorer.model;
  const { esc, fmt, paren } = Explorer.format;
  const { diverging, paint } = Explorer.draw;
  const state = Explorer.state;

  function render() {
    if (state.mode === "int8") return Explorer.formulaInt8.render();
    const termsShown = Explorer.geometry.termsShown;
    const target = state.hover || state.selected;
    const l = target.layer;
    const j = target.index;
    const layer = layers[l];
    const x = l === 0 ? state.input : state.trace[l - 1].a;
    const z = state.trace[l].z[j];
    const a = state.trace[l].a[j];
    const terms = [];
    for (let i = 0; i < layer.nIn; i++) {
      const w = layer.kernel[i * layer.nOut + j];
      terms.push({ i: i, x: x[i], w: w, p: x[i] * w });
    }
    const wide = layer.nIn > termsShown + 2;
    let shown = terms;
    let rest = null;
    if (wide) {
      shown = terms.slice().sort((p, q) => Math.abs(q.p) - Math.abs(p.p)).slice(0, termsShown);
      const kept = new Set(shown.map((t) => t.i));
      rest = { count: 0, sum: 0, zeros: 0 };
      for (const t of terms) {
        if (kept.has(t.i)) continue;
        rest.count += 1;
        rest.sum += t.p;
        if (t.x === 0) rest.zeros += 1;
      }
    }
    const b = layer.bias[j];
    let sum = shown.map((t) => paren(t.x) + "×" + paren(t.w)).join(" + ");
    if (rest) sum += " + [" + rest.count + " more: " + paren(rest.sum) + "]";
    let html =
      "<h3>" + esc(layer.name) + ", " + esc(heading(l, j)) + " (" + layer.activation + ")" +
      (state.hover ? "" : !state.selected.auto ? " · pinned" : classNames ? " · the top answer" : "") + "</h3>";
    html += '<div class="math">z = ' + sum + " + bias " + paren(b) + "\n  = " + fmt(z) + "\n" + activationText(l, j, z, a) + "</div>";
    html += '<div class="columns"><table><tr><th>input</th><th>x</th><th>weight w</th><th>x × w</th></tr>';
    for (const t of shown) {
      html += "<tr><td>" + esc(inputName(l, t.i)) + "</td><td>" + fmt(t.x) + "</td><td>" + fmt(t.w) + "</td><td>" + fmt(t.p) + "</td></tr>";
    }
    if (rest) {
      const zeros = rest.zeros ? " (" + rest.zeros + " of them have x = 0)" : "";
      html += '<tr class="sum"><td colspan="3">the other ' + rest.count + " inputs" + zeros + "</td><td>" + fmt(rest.sum) + "</td></tr>";
    }
    html += '<tr class="sum"><td colspan="3">bias b</td><td>' + fmt(b) + "</td></tr>";
    html += '<tr class="total"><td colspan="3">z = sum</td><td>' + fmt(z) + "</td></tr>";
    html += '<tr class="total"><td colspan="3">output = ' + layer.activation + "(z)</td><td>" + fmt(a) + "</td></tr></table>";
    if (l === 0 && image) {
      html +=
        '<figure><canvas id="weights-image"></canvas>its weights</figure>' +
        '<figure><canvas id="contribution-image"></canvas>pixel × weight</figure>';
    }
    html += "</div>";
    const box = document.getElementById("formula");
    box.innerHTML = html;
    if (l === 0 && image) {
      // A first-layer neuron's kernel column is an image: one weight per pixel.
      const column = terms.map((t) => t.w);
      paint(document.getElementById("weights-image"), column, image.height, image.width, (v) => diverging(v / layer.limit));
      let most = 0;
      for (const t of terms) most = Math.max(most, Math.abs(t.p));
      paint(document.getElementById("contribution-image"), terms.map((t) => t.p), image.height, image.width, (v) =>
        diverging(v / (most || 1))
      );
    }
  }

  // "neuron 4 of 20 · N1_4", and a classifier's output: 'neuron 8 of 10 · N2_8 · class "7"'.
  function heading(l, j) {
    const name = "neuron " + (j + 1) + " of " + layers[l].nOut + " · " + shortName(l, j);
    return l === layers.length - 1 && classNames ? name + ' · class "' + classNames[j] + '"' : name;
  }

  function activationText(l, j, z, a) {
    const name = layers[l].activation;
    if (name === "relu") return "output = relu(z) = max(0, " + fmt(z) + ") = " + fmt(a);
    if (name === "sigmoid") return "output = sigmoid(z) = 1 / (1 + e^-z) = " + fmt(a);
    if (name === "tanh") return "output = tanh(z) = " + fmt(a);
    if (name === "linear") return "output = z = " + fmt(a) + "  (linear: no activation)";
    const zs = state.trace[l].z;
    let total = 0;
    for (const v of zs) total += Math.exp(v);
    return (
      "output = softmax = e^z / (e^z1 + … + e^z" + zs.length + ") = " + fmt(Math.exp(z)) + " / " + fmt(total) + " = " + fmt(a) +
      "  (" + (100 * a).toFixed(2) + "%)"
    );
  }

  return { render };
})();
