// The SVG diagram: the input (an image or dots), one column of neurons per layer, the strongest lines.
Explorer.network = (function () {
  const { layers, nInputs, image, classNames, neuronName } = Explorer.model;
  const { POS, NEG, HOT, GOOD } = Explorer.colours;
  const { el, mix, rgb, diverging } = Explorer.draw;
  const { fmt } = Explorer.format;
  const geometry = Explorer.geometry;
  const state = Explorer.state;
  // Where build() put things, for render() to colour: neurons[l][j] = {x, y, r, circle, ...}.
  const diagram = { width: geometry.diagram.width, height: 0, neurons: [], edgeGroups: [], inputBox: null, inputDots: [] };

  function build() {
    const svg = document.getElementById("diagram");
    const maxShown = geometry.maxInputsShown;
    const widest = Math.max.apply(null, layers.map((l) => l.nOut).concat(image ? [] : [Math.min(nInputs, maxShown)]));
    const height = Math.max(300, Math.min(640, widest * 24 + 70));
    const width = diagram.width;
    const labelY = geometry.diagram.labelY;
    diagram.height = height;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const top = geometry.diagram.top;
    const usable = height - top - geometry.diagram.bottom;
    let inputRight;
    if (image) {
      const side = Math.min(210, usable);
      const scale = side / Math.max(image.height, image.width);
      const box = { x: 8, y: top + (usable - image.height * scale) / 2, w: image.width * scale, h: image.height * scale };
      diagram.inputBox = box;
      el("rect", { x: box.x - 1, y: box.y - 1, width: box.w + 2, height: box.h + 2, fill: "none", stroke: "#9aa3b5" }, svg);
      // The input image is a canvas laid over the SVG, placed in percent so it scales with it.
      const canvas = document.getElementById("diagram-input");
      canvas.hidden = false;
      Object.assign(canvas.style, {
        left: (100 * box.x) / width + "%",
        top: (100 * box.y) / height + "%",
        width: (100 * box.w) / width + "%",
        height: (100 * box.h) / height + "%",
      });
      label(svg, box.x + box.w / 2, labelY, "input: " + image.height + "×" + image.width + " = " + nInputs + " pixels");
      inputRight = box.x + box.w;
    } else {
      const shown = Math.min(nInputs, maxShown);
      const spacing = Math.min(40, usable / shown);
      const r = Math.max(2, Math.min(12, spacing * 0.38));
      for (let i = 0; i < shown; i++) {
        const y = top + usable / 2 + (i - (shown - 1) / 2) * spacing;
        const dot = el("circle", { cx: 40, cy: y, r: r, fill: "#fff", stroke: "#6b7385" }, svg);
        const text = el("text", { x: 40 - r - 4, y: y + 4, "text-anchor": "end", class: "small" }, svg);
        diagram.inputDots.push({ x: 40, y: y, r: r, dot: dot, text: text });
      }
      label(svg, 40, labelY, "input" + (nInputs > 1 ? "s (" + nInputs + ")" : " x"));
      inputRight = 40;
    }
    const end = width - 120;
    const start = image ? inputRight + 120 : inputRight + (end - inputRight) / layers.length;
    const edgeLayer = el("g", {}, svg); // first child, so the lines stay under the neurons
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
      label(svg, x, labelY, layer.name + " · " + layer.nOut + " " + layer.activation);
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
        // Thousands of lines would be a grey smear: keep each neuron's few strongest.
        if (layer.nIn * layer.nOut > 1500 || (l === 0 && image)) {
          scored.sort((a, b) => b[0] - a[0]);
          scored.length = Math.min(scored.length, geometry.edgesPerNeuron);
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

  return { build, render };
})();
