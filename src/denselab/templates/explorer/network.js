// The SVG diagram: the input (an image or dots), one column of neurons per layer, the strongest lines.
// It is laid out in CSS pixels for the width it has (one SVG unit = one pixel), so on a phone the
// labels stay readable and every neuron keeps a tap target of at least 24×24 px.
Explorer.network = (function () {
  const { layers, nInputs, image, classNames, neuronName } = Explorer.model;
  const { POS, NEG, HOT, GOOD } = Explorer.colours;
  const { el, mix, rgb, diverging } = Explorer.draw;
  const { fmt } = Explorer.format;
  const geometry = Explorer.geometry.diagram;
  const state = Explorer.state;
  // Where build() put things, for render() to colour: neurons[l][j] = {x, y, r, circle, ...}.
  const diagram = { width: 0, height: 0, neurons: [], edgeGroups: [], inputBox: null, inputDots: [] };

  function build() {
    const svg = document.getElementById("diagram");
    svg.innerHTML = "";
    Object.assign(diagram, { neurons: [], edgeGroups: [], inputBox: null, inputDots: [] });
    const box = document.getElementById("diagram-box");
    const width = Math.max(geometry.minWidth, Math.min(geometry.maxWidth, box.clientWidth || geometry.maxWidth));
    const narrow = width < 560;
    const maxShown = Explorer.geometry.maxInputsShown;
    const counts = layers.map((l) => l.nOut).concat(image ? [] : [Math.min(nInputs, maxShown)]);
    const widest = Math.max.apply(null, counts);
    // Rows far enough apart for a finger (the tap target is the whole row), closer for huge layers.
    const pitch = Math.max(geometry.minPitch, Math.min(geometry.maxPitch, geometry.columnHeight / widest));
    const top = geometry.top;
    const usable = Math.max(geometry.minColumn, widest * pitch);
    const height = top + usable + geometry.bottom;
    diagram.width = width;
    diagram.height = height;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    let inputRight;
    if (image) {
      const side = Math.min(210, usable, narrow ? width * 0.28 : width * 0.27);
      const scale = side / Math.max(image.height, image.width);
      const inputBox = { x: 8, y: top + (usable - image.height * scale) / 2, w: image.width * scale, h: image.height * scale };
      diagram.inputBox = inputBox;
      el("rect", { x: inputBox.x - 1, y: inputBox.y - 1, width: inputBox.w + 2, height: inputBox.h + 2, fill: "none", stroke: "#9aa3b5" }, svg);
      // The input image is a canvas laid over the SVG, placed in percent so it scales with it.
      const canvas = document.getElementById("diagram-input");
      canvas.hidden = false;
      Object.assign(canvas.style, {
        left: (100 * inputBox.x) / width + "%",
        top: (100 * inputBox.y) / height + "%",
        width: (100 * inputBox.w) / width + "%",
        height: (100 * inputBox.h) / height + "%",
      });
      label(svg, inputBox.x + inputBox.w / 2, ["input", image.height + "×" + image.width + " = " + nInputs]);
      inputRight = inputBox.x + inputBox.w;
    } else {
      const shown = Math.min(nInputs, maxShown);
      const spacing = Math.min(geometry.maxPitch, usable / shown);
      const r = Math.max(2, Math.min(12, spacing * 0.38));
      const x = geometry.valueRoom + r;
      for (let i = 0; i < shown; i++) {
        const y = top + usable / 2 + (i - (shown - 1) / 2) * spacing;
        const dot = el("circle", { cx: x, cy: y, r: r, fill: "#fff", stroke: "#6b7385" }, svg);
        const text = el("text", { x: x - r - 4, y: y + 4, "text-anchor": "end", class: "small" }, svg);
        diagram.inputDots.push({ x: x, y: y, r: r, dot: dot, text: text });
      }
      label(svg, x, nInputs > 1 ? ["inputs", String(nInputs)] : ["input", "x"]);
      inputRight = x;
    }
    // Room on the right for the output labels ("7  99.2%" or a value).
    const end = width - (classNames ? geometry.classRoom : geometry.valueRoom);
    const start = image ? inputRight + (end - inputRight) / (layers.length + (narrow ? 0.3 : 0.6)) : inputRight + (end - inputRight) / layers.length;
    const edgeLayer = el("g", {}, svg); // first child, so the lines stay under the neurons
    layers.forEach((layer, l) => {
      const x = layers.length === 1 ? end : start + ((end - start) * l) / (layers.length - 1);
      const spacing = Math.min(geometry.maxPitch, usable / layer.nOut);
      const r = Math.max(2, Math.min(11, spacing * 0.4));
      const hit = Math.max(r, Math.min(spacing / 2, 2 * r + 6));
      diagram.edgeGroups.push(el("g", {}, edgeLayer));
      const column = [];
      for (let j = 0; j < layer.nOut; j++) {
        const y = top + usable / 2 + (j - (layer.nOut - 1) / 2) * spacing;
        const group = el("g", { class: "neuron", "data-layer": l, "data-index": j, role: "button", "aria-label": neuronName(l, j) }, svg);
        el("circle", { cx: x, cy: y, r: hit, class: "hit" }, group); // the tap target: the neuron's whole row
        const circle = el("circle", { cx: x, cy: y, r: r, fill: "#fff", class: "body" }, group);
        const title = el("title", {}, group);
        const text = layer.nOut <= 40 && spacing >= 14 ? el("text", { x: x + r + 4, y: y + 4, class: "small" }, svg) : null;
        group.addEventListener("mouseenter", () => {
          state.hover = { layer: l, index: j };
          Explorer.formula.render();
        });
        group.addEventListener("mouseleave", () => {
          state.hover = null;
          Explorer.formula.render();
        });
        group.addEventListener("click", () => Explorer.actions.selectNeuron(l, j));
        column.push({ x: x, y: y, r: r, circle: circle, title: title, text: text, group: group });
      }
      diagram.neurons.push(column);
      label(svg, x, [layer.name, layer.nOut + " " + layer.activation]);
    });
  }

  // A column's two-line label at the top: its name, then its size.
  function label(svg, x, lines) {
    lines.forEach((text, k) => {
      const node = el("text", { x: x, y: geometry.labelY + k * 15, "text-anchor": "middle", class: k ? "small" : "layer" }, svg);
      node.textContent = text;
    });
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
        // Thousands of lines would be a grey smear: keep each neuron's few strongest.
        if (layer.nIn * layer.nOut > 1500 || (l === 0 && image)) {
          scored.sort((a, b) => b[0] - a[0]);
          scored.length = Math.min(scored.length, Explorer.geometry.edgesPerNeuron);
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

  // Where a line into layer l from its input i starts; [null, null] for an input without a dot.
  function sourcePoint(l, i) {
    if (l > 0) return [diagram.neurons[l - 1][i].x + diagram.neurons[l - 1][i].r, diagram.neurons[l - 1][i].y];
    if (image) {
      const box = diagram.inputBox;
      return [box.x + ((i % image.width) + 0.5) * (box.w / image.width), box.y + (Math.floor(i / image.width) + 0.5) * (box.h / image.height)];
    }
    const dot = diagram.inputDots[i];
    return dot ? [dot.x + dot.r, dot.y] : [null, null];
  }

  function render() {
    drawEdges();
    diagram.inputDots.forEach((d, i) => {
      d.dot.setAttribute("fill", rgb(diverging(state.input[i] / (Math.abs(state.input[i]) || 1))));
      d.text.textContent = fmt(state.input[i], 2);
    });
    const truth = Explorer.actions.mistake(); // {label, predicted} when a test image is misclassified
    state.trace.forEach((step, l) => {
      const softmax = layers[l].activation === "softmax";
      const last = l === layers.length - 1;
      let scale = 0;
      for (const v of step.a) scale = Math.max(scale, Math.abs(v));
      diagram.neurons[l].forEach((n, j) => {
        const v = step.a[j];
        n.circle.setAttribute("fill", rgb(softmax ? mix(GOOD, v) : v >= 0 ? mix(HOT, v / (scale || 1)) : mix(NEG, -v / scale)));
        const selected = state.selected.layer === l && state.selected.index === j;
        n.group.classList.toggle("selected", selected);
        n.group.classList.toggle("truth", Boolean(last && truth && truth.label === j));
        n.title.textContent = layers[l].name + ", " + neuronName(l, j) + ": z = " + fmt(step.z[j]) + ", output " + fmt(v);
        if (state.mode === "int8") {
          const c = Explorer.formulaInt8.compare(l, j);
          n.title.textContent += "; int8 " + c.int8 + " = " + fmt(c.real) + ", off by " + fmt(c.error);
          if (n.text) n.text.textContent = (last && classNames ? classNames[j] + " " : "") + "Δ" + (c.error >= 0 ? "+" : "") + c.error.toFixed(3);
          return;
        }
        if (!n.text) return;
        if (last && classNames) n.text.textContent = classNames[j] + "  " + (100 * v).toFixed(1) + "%";
        else n.text.textContent = fmt(v, 2);
      });
    });
  }

  // Rebuilds the diagram when its width changes (a phone turned, a window resized).
  function watchWidth() {
    let built = document.getElementById("diagram-box").clientWidth;
    window.addEventListener("resize", () => {
      const now = document.getElementById("diagram-box").clientWidth;
      if (Math.abs(now - built) < 2) return;
      built = now;
      build();
      render();
    });
  }

  return { build, render, watchWidth };
})();
