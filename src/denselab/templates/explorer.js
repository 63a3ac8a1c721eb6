"use strict";
// denselab explorer: a dense network's forward pass, drawn. No library, no network request.
// Each layer computes a = activation(x · kernel + bias) with kernel of shape (n_inputs, n_neurons),
// in Float64 from the exported Float32 weights, exactly the arithmetic Keras does.
(function () {
  const DATA = JSON.parse(document.getElementById("denselab-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const POS = [178, 24, 43]; // red: positive weight (as weights.png, RdBu_r)
  const NEG = [33, 102, 172]; // blue: negative weight
  const HOT = [230, 126, 34]; // orange: a hidden neuron's output
  const GOOD = [42, 157, 58]; // green: a class probability
  const EDGES_PER_NEURON = 6; // lines drawn from the image to each first-layer neuron
  const TERMS_SHOWN = 8; // a wide neuron's formula lists its top contributions, sums the rest

  // --- the model ------------------------------------------------------------------------------

  function decode(b64, Type) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  const layers = DATA.layers.map((layer) => {
    const kernel = decode(layer.kernel, Float32Array);
    let limit = 0;
    for (const w of kernel) limit = Math.max(limit, Math.abs(w));
    return {
      name: layer.name,
      activation: layer.activation,
      nIn: layer.nInputs,
      nOut: layer.nNeurons,
      kernel: kernel,
      bias: decode(layer.bias, Float32Array),
      limit: limit || 1,
    };
  });
  const nInputs = layers[0].nIn;
  const image = DATA.image; // {height, width} for image models, else null
  const classNames = DATA.classNames; // null for regression
  const isLine = DATA.inputShape.length === 1 && nInputs === 1;

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
  function forward(x) {
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

  // --- test samples ---------------------------------------------------------------------------

  const test = DATA.test && !isLine ? DATA.test : null;
  let testPixels = null;
  if (test) {
    testPixels = test.encoding === "uint8" ? decode(test.x, Uint8Array) : decode(test.x, Float32Array);
  }
  function testSample(i) {
    const x = new Float64Array(nInputs);
    const scale = test.encoding === "uint8" ? 1 / 255 : 1;
    for (let k = 0; k < nInputs; k++) x[k] = testPixels[i * nInputs + k] * scale;
    return x;
  }
  const testPredictions = [];
  if (test && classNames) {
    for (let i = 0; i < test.count; i++) {
      const p = forward(testSample(i)).pop().a;
      let best = 0;
      for (let j = 1; j < p.length; j++) if (p[j] > p[best]) best = j;
      testPredictions.push({ label: best, confidence: p[best], wrong: best !== test.y[i] });
    }
  }

  // --- state and the update loop --------------------------------------------------------------

  const state = {
    input: new Float64Array(nInputs),
    trace: null,
    selected: { layer: layers.length - 1, index: 0, auto: true },
    hover: null,
    testIndex: null,
    edited: false,
    edgeMode: "contribution",
  };

  function outputs() {
    return state.trace[state.trace.length - 1].a;
  }
  function argmax(values) {
    let best = 0;
    for (let j = 1; j < values.length; j++) if (values[j] > values[best]) best = j;
    return best;
  }

  function update() {
    state.trace = forward(state.input);
    if (state.selected.auto) state.selected.index = classNames ? argmax(outputs()) : 0;
    drawInputImages();
    updateDiagram();
    renderOutputs();
    renderFormula();
    updateLineChart();
    renderInputNote();
  }

  // --- small helpers --------------------------------------------------------------------------

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function fmt(v, digits) {
    const d = digits === undefined ? 4 : digits;
    if (v === 0) return "0";
    const size = Math.abs(v);
    if (size >= 1e5 || size < 1e-4) return v.toExponential(2);
    return v.toFixed(d);
  }
  function paren(v) {
    return v < 0 ? "(" + fmt(v) + ")" : fmt(v);
  }
  function mix(colour, t) {
    const k = Math.max(0, Math.min(1, t));
    return colour.map((c) => Math.round(255 + (c - 255) * k));
  }
  function rgb(c) {
    return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")";
  }
  function diverging(t) {
    return t >= 0 ? mix(POS, t) : mix(NEG, -t);
  }
  function neuronName(l, j) {
    if (l === layers.length - 1 && classNames) return 'class "' + classNames[j] + '"';
    return "neuron " + (j + 1);
  }
  function inputName(l, i) {
    if (l > 0) return layers[l - 1].name + " #" + (i + 1);
    if (image) return "pixel (" + Math.floor(i / image.width) + ", " + (i % image.width) + ")";
    return nInputs === 1 ? "x" : "x" + (i + 1);
  }

  // Paint values (length h*w) onto a canvas of size w x h; colour(v) -> [r, g, b].
  function paint(canvas, values, h, w, colour) {
    canvas.width = w;
    canvas.height = h;
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(w, h);
    for (let k = 0; k < h * w; k++) {
      const c = colour(values[k]);
      pixels.data.set([c[0], c[1], c[2], 255], k * 4);
    }
    context.putImageData(pixels, 0, 0);
  }
  function grey(v) {
    const g = Math.round(255 * Math.max(0, Math.min(1, v)));
    return [g, g, g];
  }

  // --- header -----------------------------------------------------------------------------------

  function renderHeader() {
    document.getElementById("model-title").textContent = DATA.title ? "· " + DATA.title : "";
    const widths = [nInputs].concat(layers.map((l) => l.nOut + " " + l.activation));
    let params = 0;
    for (const l of layers) params += l.kernel.length + l.bias.length;
    const parts = [widths.join(" → "), params.toLocaleString("en") + " weights and biases"];
    if (DATA.dataset) parts.push("trained on " + DATA.dataset);
    const history = DATA.history;
    if (history && history.loss) parts.push(history.loss.length + " epochs");
    if (DATA.metrics && DATA.metrics.val_accuracy !== undefined) {
      parts.push("validation accuracy " + (100 * DATA.metrics.val_accuracy).toFixed(1) + "%");
    }
    document.getElementById("summary").textContent = parts.join(" · ");
  }

  // --- input panels -----------------------------------------------------------------------------

  const drawCanvas = document.getElementById("draw");
  const brush = image ? Math.max(0.9, image.width * 0.075) : 1; // ~4-pixel strokes on 28x28, like MNIST's

  function drawInputImages() {
    if (!image) return;
    const { height, width } = image;
    const small = document.getElementById("diagram-input");
    paint(small, state.input, height, width, grey);
    const context = drawCanvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, drawCanvas.width, drawCanvas.height);
    context.drawImage(small, 0, 0, drawCanvas.width, drawCanvas.height);
  }

  function stamp(gx, gy) {
    const { height, width } = image;
    for (let row = Math.floor(gy - brush - 1); row <= Math.ceil(gy + brush); row++) {
      for (let col = Math.floor(gx - brush - 1); col <= Math.ceil(gx + brush); col++) {
        if (row < 0 || col < 0 || row >= height || col >= width) continue;
        const d = Math.hypot(col + 0.5 - gx, row + 0.5 - gy);
        const v = Math.max(0, Math.min(1, (brush - d) / (brush * 0.6)));
        const k = row * width + col;
        if (v > state.input[k]) state.input[k] = v;
      }
    }
  }

  function setupDrawing() {
    document.getElementById("draw-panel").hidden = false;
    document.getElementById("input-heading").textContent = test ? "Input: draw, or pick a test image" : "Input: draw";
    let last = null;
    function gridPoint(clientX, clientY) {
      const box = drawCanvas.getBoundingClientRect();
      return [((clientX - box.left) / box.width) * image.width, ((clientY - box.top) / box.height) * image.height];
    }
    function start(clientX, clientY) {
      last = gridPoint(clientX, clientY);
      stamp(last[0], last[1]);
      state.edited = true;
      update();
    }
    function move(clientX, clientY) {
      if (!last) return;
      const next = gridPoint(clientX, clientY);
      const steps = Math.max(1, Math.ceil(Math.hypot(next[0] - last[0], next[1] - last[1]) / 0.25));
      for (let s = 1; s <= steps; s++) {
        stamp(last[0] + ((next[0] - last[0]) * s) / steps, last[1] + ((next[1] - last[1]) * s) / steps);
      }
      last = next;
      update();
    }
    function end() {
      last = null;
    }
    if (window.PointerEvent) {
      drawCanvas.addEventListener("pointerdown", (e) => {
        drawCanvas.setPointerCapture(e.pointerId);
        e.preventDefault();
        start(e.clientX, e.clientY);
      });
      drawCanvas.addEventListener("pointermove", (e) => move(e.clientX, e.clientY));
      drawCanvas.addEventListener("pointerup", end);
      drawCanvas.addEventListener("pointercancel", end);
    } else {
      drawCanvas.addEventListener("mousedown", (e) => start(e.clientX, e.clientY));
      window.addEventListener("mousemove", (e) => move(e.clientX, e.clientY));
      window.addEventListener("mouseup", end);
      const touch = (handler) => (e) => {
        e.preventDefault();
        if (e.touches.length) handler(e.touches[0].clientX, e.touches[0].clientY);
        else end();
      };
      drawCanvas.addEventListener("touchstart", touch(start), { passive: false });
      drawCanvas.addEventListener("touchmove", touch(move), { passive: false });
      drawCanvas.addEventListener("touchend", touch(end), { passive: false });
    }
    document.getElementById("clear").addEventListener("click", () => api.clear());
  }

  function renderInputNote() {
    const note = document.getElementById("input-note");
    if (!note) return;
    if (state.testIndex === null) note.textContent = state.edited ? "your drawing" : "empty: draw something";
    else {
      const label = classNames ? classNames[test.y[state.testIndex]] : fmt(test.y[state.testIndex]);
      note.textContent = "test image #" + state.testIndex + " (true label " + label + ")" + (state.edited ? ", edited" : "");
    }
  }

  function setupVectorInputs() {
    document.getElementById("vector-panel").hidden = false;
    const box = document.getElementById("vector-inputs");
    for (let i = 0; i < Math.min(nInputs, 64); i++) {
      const label = document.createElement("label");
      label.className = "slider";
      label.textContent = "x" + (i + 1) + " ";
      const field = document.createElement("input");
      field.type = "number";
      field.step = "any";
      field.value = "0";
      field.dataset.index = String(i);
      field.addEventListener("input", () => {
        state.input[i] = parseFloat(field.value) || 0;
        state.edited = true;
        update();
      });
      label.appendChild(field);
      box.appendChild(label);
    }
  }
  function syncVectorInputs() {
    for (const field of document.querySelectorAll("#vector-inputs input")) {
      field.value = String(state.input[+field.dataset.index]);
    }
  }

  // --- outputs --------------------------------------------------------------------------------------

  function renderOutputs() {
    const values = outputs();
    const box = document.getElementById("probabilities");
    const prediction = document.getElementById("prediction");
    if (classNames) {
      const best = argmax(values);
      const empty = state.input.every((v) => v === 0);
      prediction.innerHTML = empty
        ? "Blank input: the network still answers (its biases decide)."
        : "<b>" + esc(classNames[best]) + "</b> with " + (100 * values[best]).toFixed(1) + "% probability";
      box.innerHTML = classNames
        .map(
          (name, j) =>
            '<div class="prob-row' + (j === best ? " top" : "") + '" data-class-index="' + j + '" data-class="' +
            esc(name) + '" data-probability="' + values[j] + '" data-output="' + values[j] + '">' +
            '<span class="name">' + esc(name) + '</span><span class="bar"><span style="width:' +
            (100 * values[j]).toFixed(2) + '%"></span></span><span class="value">' +
            (100 * values[j]).toFixed(1) + "%</span></div>"
        )
        .join("");
    } else {
      document.getElementById("outputs-heading").textContent = "What the network computes";
      const x = isLine ? " for x = " + fmt(state.input[0], 2) : "";
      prediction.innerHTML = "y" + x + " = <b>" + fmt(values[0]) + "</b>";
      box.innerHTML = Array.from(values)
        .map((v, j) => '<div class="output" data-output-index="' + j + '" data-output="' + v + '" hidden></div>')
        .join("");
    }
  }

  // --- the diagram ----------------------------------------------------------------------------------

  const diagram = { width: 760, height: 0, neurons: [], edgeGroups: [], inputBox: null, inputDots: [] };

  function buildDiagram() {
    const svg = document.getElementById("diagram");
    const widest = Math.max.apply(null, layers.map((l) => l.nOut).concat(image ? [] : [Math.min(nInputs, 64)]));
    const height = Math.max(300, Math.min(640, widest * 24 + 70));
    const width = diagram.width;
    diagram.height = height;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const top = 40;
    const usable = height - top - 16;
    let inputRight;
    if (image) {
      const side = Math.min(210, usable);
      const scale = side / Math.max(image.height, image.width);
      const box = { x: 8, y: top + (usable - image.height * scale) / 2, w: image.width * scale, h: image.height * scale };
      diagram.inputBox = box;
      el("rect", { x: box.x - 1, y: box.y - 1, width: box.w + 2, height: box.h + 2, fill: "none", stroke: "#9aa3b5" }, svg);
      const canvas = document.getElementById("diagram-input");
      canvas.hidden = false;
      Object.assign(canvas.style, {
        left: (100 * box.x) / width + "%",
        top: (100 * box.y) / height + "%",
        width: (100 * box.w) / width + "%",
        height: (100 * box.h) / height + "%",
      });
      label(svg, box.x + box.w / 2, 22, "input: " + image.height + "×" + image.width + " = " + nInputs + " pixels");
      inputRight = box.x + box.w;
    } else {
      const shown = Math.min(nInputs, 64);
      const spacing = Math.min(40, usable / shown);
      const r = Math.max(2, Math.min(12, spacing * 0.38));
      for (let i = 0; i < shown; i++) {
        const y = top + usable / 2 + (i - (shown - 1) / 2) * spacing;
        const dot = el("circle", { cx: 40, cy: y, r: r, fill: "#fff", stroke: "#6b7385" }, svg);
        const text = el("text", { x: 40 - r - 4, y: y + 4, "text-anchor": "end", class: "small" }, svg);
        diagram.inputDots.push({ x: 40, y: y, r: r, dot: dot, text: text });
      }
      label(svg, 40, 22, "input" + (nInputs > 1 ? "s (" + nInputs + ")" : " x"));
      inputRight = 40;
    }
    const end = width - 120;
    const start = image ? inputRight + 120 : inputRight + (end - inputRight) / layers.length;
    const edgeLayer = el("g", {}, svg);
    layers.forEach((layer, l) => {
      const x = layers.length === 1 ? end : start + ((end - start) * l) / (layers.length - 1);
      const spacing = Math.min(34, usable / layer.nOut);
      const r = Math.max(2, Math.min(11, spacing * 0.4));
      diagram.edgeGroups.push(el("g", {}, edgeLayer));
      const column = [];
      for (let j = 0; j < layer.nOut; j++) {
        const y = top + usable / 2 + (j - (layer.nOut - 1) / 2) * spacing;
        const group = el("g", { class: "neuron", "data-layer": l, "data-index": j }, svg);
        const circle = el("circle", { cx: x, cy: y, r: r, fill: "#fff" }, group);
        const title = el("title", {}, group);
        const text = layer.nOut <= 32 ? el("text", { x: x + r + 4, y: y + 4, class: "small" }, svg) : null;
        group.addEventListener("mouseenter", () => {
          state.hover = { layer: l, index: j };
          renderFormula();
        });
        group.addEventListener("mouseleave", () => {
          state.hover = null;
          renderFormula();
        });
        group.addEventListener("click", () => api.selectNeuron(l, j));
        column.push({ x: x, y: y, r: r, circle: circle, title: title, text: text, group: group });
      }
      diagram.neurons.push(column);
      const last = l === layers.length - 1;
      label(svg, x, 22, layer.name + " · " + layer.nOut + " " + layer.activation + (last ? "" : ""));
    });
  }

  function label(svg, x, y, text) {
    el("text", { x: x, y: y, "text-anchor": "middle", class: "layer" }, svg).textContent = text;
  }

  function line(x1, y1, x2, y2, value, limit) {
    const t = Math.min(1, Math.abs(value) / limit);
    const colour = rgb(value >= 0 ? POS : NEG);
    return (
      '<line x1="' + x1.toFixed(1) + '" y1="' + y1.toFixed(1) + '" x2="' + x2.toFixed(1) + '" y2="' + y2.toFixed(1) +
      '" stroke="' + colour + '" stroke-width="' + (0.3 + 3.7 * t).toFixed(2) + '" stroke-opacity="' +
      (0.25 + 0.55 * t).toFixed(2) + '"/>'
    );
  }

  // Lines into each neuron: its inputs' x × w for this input (or its weights w), strongest first.
  function drawEdges() {
    const byContribution = state.edgeMode === "contribution";
    layers.forEach((layer, l) => {
      const x = l === 0 ? state.input : state.trace[l - 1].a;
      const chosen = [];
      let limit = byContribution ? 0 : layer.limit;
      for (let j = 0; j < layer.nOut; j++) {
        const scored = [];
        for (let i = 0; i < layer.nIn; i++) {
          const w = layer.kernel[i * layer.nOut + j];
          const value = byContribution ? x[i] * w : w;
          if (value !== 0) scored.push([Math.abs(value), i, value]);
        }
        if (layer.nIn * layer.nOut > 1500 || (l === 0 && image)) {
          scored.sort((a, b) => b[0] - a[0]);
          scored.length = Math.min(scored.length, EDGES_PER_NEURON);
        }
        for (const pick of scored) {
          chosen.push([j, pick[1], pick[2]]);
          if (byContribution) limit = Math.max(limit, pick[0]);
        }
      }
      const targets = diagram.neurons[l];
      let svgText = "";
      for (const [j, i, value] of chosen) {
        const [px, py] = sourcePoint(l, i);
        if (px === null) continue;
        svgText += line(px, py, targets[j].x - targets[j].r, targets[j].y, value, limit || 1);
      }
      diagram.edgeGroups[l].innerHTML = svgText;
    });
  }

  function sourcePoint(l, i) {
    if (l > 0) return [diagram.neurons[l - 1][i].x + diagram.neurons[l - 1][i].r, diagram.neurons[l - 1][i].y];
    if (image) {
      const box = diagram.inputBox;
      return [box.x + ((i % image.width) + 0.5) * (box.w / image.width), box.y + (Math.floor(i / image.width) + 0.5) * (box.h / image.height)];
    }
    const dot = diagram.inputDots[i];
    return dot ? [dot.x + dot.r, dot.y] : [null, null];
  }

  function updateDiagram() {
    drawEdges();
    diagram.inputDots.forEach((d, i) => {
      d.dot.setAttribute("fill", rgb(diverging(state.input[i] / (Math.abs(state.input[i]) || 1))));
      d.text.textContent = fmt(state.input[i], 2);
    });
    state.trace.forEach((step, l) => {
      const softmax = layers[l].activation === "softmax";
      let scale = 0;
      for (const v of step.a) scale = Math.max(scale, Math.abs(v));
      diagram.neurons[l].forEach((n, j) => {
        const v = step.a[j];
        n.circle.setAttribute("fill", rgb(softmax ? mix(GOOD, v) : v >= 0 ? mix(HOT, v / (scale || 1)) : mix(NEG, -v / scale)));
        const selected = state.selected.layer === l && state.selected.index === j;
        n.group.classList.toggle("selected", selected);
        n.title.textContent = layers[l].name + ", " + neuronName(l, j) + ": z = " + fmt(step.z[j]) + ", output " + fmt(v);
        if (!n.text) return;
        if (l === layers.length - 1 && classNames) n.text.textContent = classNames[j] + "  " + (100 * v).toFixed(1) + "%";
        else n.text.textContent = fmt(v, 2);
      });
    });
  }

  // --- one neuron's arithmetic ------------------------------------------------------------------------

  function renderFormula() {
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
    const wide = layer.nIn > TERMS_SHOWN + 2;
    let shown = terms;
    let rest = null;
    if (wide) {
      shown = terms.slice().sort((p, q) => Math.abs(q.p) - Math.abs(p.p)).slice(0, TERMS_SHOWN);
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
      "<h3>" + esc(layer.name) + ", " + esc(neuronName(l, j)) + " of " + layer.nOut + " (" + layer.activation + ")" +
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
      const column = terms.map((t) => t.w);
      paint(document.getElementById("weights-image"), column, image.height, image.width, (v) => diverging(v / layer.limit));
      let most = 0;
      for (const t of terms) most = Math.max(most, Math.abs(t.p));
      paint(document.getElementById("contribution-image"), terms.map((t) => t.p), image.height, image.width, (v) =>
        diverging(v / (most || 1))
      );
    }
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

  // --- charts (learning curves, the learned line) -------------------------------------------------------

  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const raw = span / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => span / s <= count) || raw;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return ticks;
  }

  // series: [{name, colour, points: [[x, y]], dots}] → draws axes, grid, legend; returns the scales.
  function chart(svg, spec) {
    svg.innerHTML = "";
    const W = 420;
    const H = 280;
    const m = { left: 54, right: 12, top: 28, bottom: 40 };
    const xs = [];
    const ys = [];
    const ty = spec.logY ? (v) => Math.log10(v) : (v) => v;
    for (const s of spec.series) for (const p of s.points) xs.push(p[0]), ys.push(ty(p[1]));
    const xDomain = spec.xDomain || [Math.min.apply(null, xs), Math.max.apply(null, xs)];
    let y0 = Math.min.apply(null, ys);
    let y1 = Math.max.apply(null, ys);
    const pad = (y1 - y0) * 0.08 || 1;
    y0 -= pad;
    y1 += pad;
    const sx = (v) => m.left + ((v - xDomain[0]) / (xDomain[1] - xDomain[0] || 1)) * (W - m.left - m.right);
    const sy = (v) => H - m.bottom - ((ty(v) - y0) / (y1 - y0)) * (H - m.top - m.bottom);
    const yTicks = spec.logY
      ? niceTicks(y0, y1, 6).filter((v) => Number.isInteger(v)).map((v) => Math.pow(10, v))
      : niceTicks(y0, y1, 5);
    const xTicks = spec.integerX
      ? niceTicks(xDomain[0], xDomain[1], 6).filter((v) => Number.isInteger(v))
      : niceTicks(xDomain[0], xDomain[1], 8);
    const decimals = (v) => [0, 1, 2, 3, 4].find((d) => Math.abs(v * 10 ** d - Math.round(v * 10 ** d)) < 1e-6) ?? 4;
    const digits = (ticks) => Math.max.apply(null, ticks.map(decimals).concat([0]));
    for (const v of yTicks) {
      el("line", { x1: m.left, x2: W - m.right, y1: sy(v), y2: sy(v), class: "grid" }, svg);
      const text = spec.logY ? (v >= 0.01 && v <= 1000 ? String(v) : "1e" + Math.round(Math.log10(v))) : v.toFixed(digits(yTicks));
      el("text", { x: m.left - 6, y: sy(v) + 4, "text-anchor": "end" }, svg).textContent = text;
    }
    for (const v of xTicks) {
      el("line", { x1: sx(v), x2: sx(v), y1: m.top, y2: H - m.bottom, class: "grid" }, svg);
      el("text", { x: sx(v), y: H - m.bottom + 15, "text-anchor": "middle" }, svg).textContent = v.toFixed(spec.integerX ? 0 : digits(xTicks));
    }
    const axis = el("g", { class: "axis" }, svg);
    el("line", { x1: m.left, x2: W - m.right, y1: H - m.bottom, y2: H - m.bottom }, axis);
    el("line", { x1: m.left, x2: m.left, y1: m.top, y2: H - m.bottom }, axis);
    el("text", { x: (m.left + W - m.right) / 2, y: H - 6, "text-anchor": "middle" }, svg).textContent = spec.xLabel;
    el("text", { x: 14, y: (m.top + H - m.bottom) / 2, "text-anchor": "middle", transform: "rotate(-90 14 " + (m.top + H - m.bottom) / 2 + ")" }, svg).textContent = spec.yLabel;
    el("text", { x: W / 2, y: 16, "text-anchor": "middle", "font-weight": "600" }, svg).textContent = spec.title;
    spec.series.forEach((s, k) => {
      if (!s.dots) {
        const path = s.points.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join("");
        el("path", { d: path, fill: "none", stroke: s.colour, "stroke-width": 2 }, svg);
      }
      if (s.dots || s.points.length <= 40) {
        for (const p of s.points) el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: s.dots ? 4.5 : 2.5, fill: s.colour }, svg);
      }
      const ly = (spec.legendBottom ? H - m.bottom - 12 - (spec.series.length - 1 - k) * 15 : m.top + 6 + k * 15);
      el("rect", { x: W - m.right - 120, y: ly - 5, width: 12, height: 4, fill: s.colour }, svg);
      el("text", { x: W - m.right - 104, y: ly + 1 }, svg).textContent = s.name;
    });
    return { sx: sx, sy: sy, svg: svg };
  }

  function renderCurves() {
    const history = DATA.history;
    if (!history || !history.loss || !history.loss.length) return;
    document.getElementById("curves-card").hidden = false;
    const series = (key, name, colour) =>
      history[key] ? [{ name: name, colour: colour, points: history[key].map((v, i) => [i + 1, v]) }] : [];
    const both = (key) => series(key, "training", "#1f77b4").concat(series("val_" + key, "validation", "#d62728"));
    const losses = history.loss.concat(history.val_loss || []);
    const logY = Math.min.apply(null, losses) > 0 && Math.max.apply(null, losses) / Math.min.apply(null, losses) > 1000;
    const lossTitle = "Loss per epoch (lower is better" + (logY ? "; log scale)" : ")");
    chart(document.getElementById("loss-chart"), { series: both("loss"), xLabel: "epoch", yLabel: "loss", title: lossTitle, integerX: true, logY: logY });
    const metric = history.accuracy ? "accuracy" : history.mae ? "mae" : null;
    const metricChart = document.getElementById("metric-chart");
    if (!metric) return void (metricChart.style.display = "none");
    const title = metric === "accuracy" ? "Accuracy per epoch (higher is better)" : "Mean absolute error per epoch";
    chart(metricChart, { series: both(metric), xLabel: "epoch", yLabel: metric, title: title, integerX: true, legendBottom: metric === "accuracy" });
  }

  let lineScales = null;
  function setupLine() {
    document.getElementById("line-panel").hidden = false;
    document.getElementById("input-heading").textContent = "Input: move x";
    const slider = document.getElementById("x-slider");
    const domain = [-3, 12];
    const learned = [];
    for (let k = 0; k <= 150; k++) {
      const xv = domain[0] + ((domain[1] - domain[0]) * k) / 150;
      learned.push([xv, forward([xv]).pop().a[0]]);
    }
    const series = [{ name: "the model's line", colour: "#1f77b4", points: learned }];
    if (DATA.trainPoints) {
      const points = DATA.trainPoints.x.map((xv, i) => [xv, DATA.trainPoints.y[i]]);
      series.push({ name: "training points", colour: "#d62728", points: points, dots: true });
    }
    lineScales = chart(document.getElementById("line-chart"), { series: series, xLabel: "x", yLabel: "y", title: "What the network learned", xDomain: domain, legendBottom: true });
    lineScales.marker = el("g", {}, lineScales.svg);
    slider.addEventListener("input", () => {
      state.input[0] = parseFloat(slider.value);
      update();
    });
    state.input[0] = parseFloat(slider.value);
  }

  function updateLineChart() {
    if (!lineScales) return;
    const xv = state.input[0];
    const yv = outputs()[0];
    document.getElementById("x-value").textContent = fmt(xv, 1);
    const { sx, sy } = lineScales;
    const px = sx(xv);
    const py = sy(yv);
    lineScales.marker.innerHTML =
      '<line x1="' + px + '" x2="' + px + '" y1="28" y2="240" stroke="#2a9d3a" stroke-dasharray="4 3"/>' +
      '<circle cx="' + px + '" cy="' + py + '" r="6" fill="#2a9d3a"/>' +
      '<text x="' + (px > 260 ? px - 8 : px + 8) + '" y="' + (py - 10) + '" text-anchor="' + (px > 260 ? "end" : "start") + '">f(' + fmt(xv, 1) + ") = " + fmt(yv) + "</text>";
  }

  // --- the test-image browser -------------------------------------------------------------------------

  function setupGallery() {
    document.getElementById("test-card").hidden = false;
    const gallery = document.getElementById("gallery");
    const wrong = testPredictions.filter((p) => p.wrong).length;
    const summary = document.getElementById("test-summary");
    if (classNames) {
      summary.textContent =
        test.count + " test images · " + wrong + " misclassified (" + ((100 * (test.count - wrong)) / test.count).toFixed(1) + "% right). Click one to run it.";
      document.getElementById("show-wrong").textContent = "Misclassified (" + wrong + ")";
    } else {
      summary.textContent = test.count + " test samples. Click one to run it.";
      document.getElementById("show-wrong").hidden = true;
    }
    document.getElementById("show-all").textContent = "All (" + test.count + ")";
    for (let i = 0; i < test.count; i++) {
      const thumb = document.createElement("div");
      thumb.className = "thumb";
      thumb.dataset.index = String(i);
      const p = testPredictions[i];
      if (image) {
        const canvas = document.createElement("canvas");
        paint(canvas, testSample(i), image.height, image.width, grey);
        thumb.appendChild(canvas);
      } else {
        thumb.classList.add("sample-button");
      }
      const caption = document.createElement("div");
      if (p) {
        caption.textContent = p.wrong ? classNames[test.y[i]] + "→" + classNames[p.label] : classNames[p.label];
        thumb.title = "#" + i + ": true " + classNames[test.y[i]] + ", network says " + classNames[p.label] + " (" + (100 * p.confidence).toFixed(0) + "%)";
        if (p.wrong) thumb.classList.add("wrong");
      } else {
        caption.textContent = "#" + i;
      }
      thumb.appendChild(caption);
      thumb.addEventListener("click", () => api.showTestImage(i));
      gallery.appendChild(thumb);
    }
    const tabs = [document.getElementById("show-all"), document.getElementById("show-wrong")];
    tabs.forEach((tab, k) =>
      tab.addEventListener("click", () => {
        tabs.forEach((t) => t.classList.toggle("active", t === tab));
        for (const thumb of gallery.children) thumb.hidden = k === 1 && !thumb.classList.contains("wrong");
      })
    );
  }

  function markCurrentThumb() {
    for (const thumb of document.querySelectorAll(".thumb.current")) thumb.classList.remove("current");
    if (state.testIndex !== null) {
      const thumb = document.querySelector('.thumb[data-index="' + state.testIndex + '"]');
      if (thumb) thumb.classList.add("current");
    }
  }

  // --- the hook for tests and the console ---------------------------------------------------------------

  const api = {
    inputShape: DATA.inputShape.slice(),
    inputSize: nInputs,
    classNames: classNames ? classNames.slice() : null,
    testCount: test ? test.count : 0,
    setInput(values) {
      if (values.length !== nInputs) throw new Error("expected " + nInputs + " input values, got " + values.length);
      for (let i = 0; i < nInputs; i++) state.input[i] = Number(values[i]);
      state.testIndex = null;
      state.edited = true;
      syncVectorInputs();
      update();
      return api.probabilities();
    },
    input: () => Array.from(state.input),
    probabilities: () => Array.from(outputs()),
    outputs: () => Array.from(outputs()),
    activations: () => state.trace.map((step) => Array.from(step.a)),
    preactivations: () => state.trace.map((step) => Array.from(step.z)),
    testImage: (i) => Array.from(testSample(i)),
    testLabel: (i) => test.y[i],
    misclassified: () => testPredictions.map((p, i) => (p.wrong ? i : -1)).filter((i) => i >= 0),
    showTestImage(i) {
      if (!test || i < 0 || i >= test.count) throw new Error("no test image " + i);
      state.input.set(testSample(i));
      state.testIndex = i;
      state.edited = false;
      syncVectorInputs();
      update();
      markCurrentThumb();
      return api.probabilities();
    },
    selectNeuron(l, j) {
      state.selected = { layer: l, index: j, auto: false };
      update();
    },
    clear() {
      state.input.fill(0);
      state.testIndex = null;
      state.edited = false;
      syncVectorInputs();
      update();
      markCurrentThumb();
    },
    ready: false,
  };
  window.denselab = api;

  // --- start ------------------------------------------------------------------------------------------------

  renderHeader();
  if (image) setupDrawing();
  else if (isLine) setupLine();
  else setupVectorInputs();
  document.getElementById("edge-mode").addEventListener("change", (e) => {
    state.edgeMode = e.target.value;
    update();
  });
  buildDiagram();
  if (test && !isLine) setupGallery();
  renderCurves();
  if (test) api.showTestImage(0);
  else update();
  api.ready = true;
  document.body.dataset.ready = "true";
})();
