// Small SVG charts: the learning curves from history.json and, for the line lesson, the learned line.
Explorer.charts = (function () {
  const { run } = Explorer.model;
  const { el } = Explorer.draw;
  const { fmt } = Explorer.format;
  const { width: W, height: H, margin: m } = Explorer.geometry.chart;
  const DATA = Explorer.data;
  const state = Explorer.state;
  let lineScales = null; // the line chart's scales and its moving marker, once setupLine ran

  // About `count` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) from lo to hi.
  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const raw = span / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((k) => k * power).find((s) => span / s <= count) || raw;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return ticks;
  }

  // spec.series: [{name, colour, points: [[x, y]], dots}] → draws axes, grid, legend; returns the scales.
  function chart(svg, spec) {
    svg.innerHTML = "";
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
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
    // The line lessons have no data beyond their six points: a "validation" curve there is the
    // training curve again, so it is left out and the hint says why.
    const separate = history.val_loss && history.val_loss.some((v, i) => Math.abs(v - history.loss[i]) > 1e-12 * (1 + Math.abs(v)));
    if (!separate) {
      document.getElementById("curves-hint").textContent =
        "One point per epoch (one pass over the training data). " +
        (DATA.trainPoints ? "The six points are all the data there is, so there is no separate validation curve." : "No validation data was recorded.");
    }
    const both = (key) => series(key, "training", "#1f77b4").concat(separate ? series("val_" + key, "validation", "#d62728") : []);
    const losses = history.loss.concat(history.val_loss || []);
    // A loss that falls a thousandfold (regression) is flat after epoch 2 on a linear axis.
    const logY = Math.min.apply(null, losses) > 0 && Math.max.apply(null, losses) / Math.min.apply(null, losses) > 1000;
    const lossTitle = "Loss per epoch (lower is better" + (logY ? "; log scale)" : ")");
    chart(document.getElementById("loss-chart"), { series: both("loss"), xLabel: "epoch", yLabel: "loss", title: lossTitle, integerX: true, logY: logY });
    const metric = history.accuracy ? "accuracy" : history.mae ? "mae" : null;
    const metricChart = document.getElementById("metric-chart");
    if (!metric) return void (metricChart.style.display = "none");
    const title = metric === "accuracy" ? "Accuracy per epoch (higher is better)" : "Mean absolute error per epoch";
    chart(metricChart, { series: both(metric), xLabel: "epoch", yLabel: metric, title: title, integerX: true, legendBottom: metric === "accuracy" });
  }

  // The line lesson: a slider for x, the model's y over the slider's range and the training points.
  function setupLine() {
    document.getElementById("line-panel").hidden = false;
    document.getElementById("input-heading").textContent = "Input: move x";
    const slider = document.getElementById("x-slider");
    const domain = [parseFloat(slider.min), parseFloat(slider.max)];
    const learned = [];
    for (let k = 0; k <= 150; k++) {
      const xv = domain[0] + ((domain[1] - domain[0]) * k) / 150;
      learned.push([xv, run([xv]).pop().a[0]]);
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
      Explorer.actions.update();
    });
    state.input[0] = parseFloat(slider.value);
  }

  // Moves the marker to (x, f(x)) for the current input. Its label sits in the plot's empty
  // top-left corner (the line rises to the right), never on the line or the training points.
  function renderLine() {
    if (!lineScales) return;
    const xv = state.input[0];
    const yv = Explorer.outputs()[0];
    document.getElementById("x-value").textContent = fmt(xv, 1);
    const { sx, sy } = lineScales;
    const px = sx(xv);
    const py = sy(yv);
    lineScales.marker.innerHTML =
      '<line x1="' + px + '" x2="' + px + '" y1="' + m.top + '" y2="' + (H - m.bottom) + '" stroke="#2a9d3a" stroke-dasharray="4 3"/>' +
      '<circle cx="' + px + '" cy="' + py + '" r="6" fill="#2a9d3a"/>' +
      '<text class="marker-label" x="' + (m.left + 8) + '" y="' + (m.top + 14) + '" fill="#2a9d3a" font-weight="600">f(' + fmt(xv, 1) + ") = " + fmt(yv) + "</text>";
  }

  return { renderCurves, setupLine, renderLine };
})();
