// The text panels: the header's one-line summary, the network's answer (probabilities or y) and,
// for a misclassified test image, its true class's output neuron beside the one that won.
Explorer.panels = (function () {
  const { layers, nInputs, classNames, isLine, test, shortName, inputName } = Explorer.model;
  const { esc, fmt } = Explorer.format;
  const { argmax, classProbabilities } = Explorer.math;
  const DATA = Explorer.data;
  const state = Explorer.state;

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
      const total = test ? test.total || test.count : null;
      const on = total ? " on all " + total.toLocaleString("en") + " test images" : "";
      parts.push("validation accuracy " + (100 * DATA.metrics.val_accuracy).toFixed(1) + "%" + on);
    }
    document.getElementById("summary").textContent = parts.join(" · ");
  }

  // The rows carry data-probability / data-output: the browser test reads the values from there.
  function renderOutputs() {
    const values = classNames ? classProbabilities(Explorer.outputs()) : Explorer.outputs();
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
    renderMistake();
  }

  // The output neuron of the true class beside the one that won: their sums, and what fed them.
  function renderMistake() {
    const box = document.getElementById("mistake");
    const mistake = classNames ? Explorer.actions.mistake() : null;
    box.hidden = !mistake;
    if (!mistake) return;
    const l = layers.length - 1;
    const layer = layers[l];
    const x = l === 0 ? state.input : state.trace[l - 1].a;
    const step = state.trace[l];
    function side(j, title, kind) {
      const terms = [];
      for (let i = 0; i < layer.nIn; i++) terms.push([x[i] * layer.kernel[i * layer.nOut + j], i]);
      terms.sort((p, q) => Math.abs(q[0]) - Math.abs(p[0]));
      const rows = terms
        .slice(0, 3)
        .map((t) => "<li>" + esc(inputName(l, t[1])) + " × w: " + fmt(t[0], 2) + "</li>")
        .join("");
      return (
        '<div class="side ' + kind + '" data-class-index="' + j + '"><h4>' + title + " <b>" + esc(classNames[j]) + "</b></h4>" +
        "<p>" + shortName(l, j) + ": z = " + fmt(step.z[j], 2) + "<br>p = " + (100 * step.a[j]).toFixed(1) + "%</p>" +
        "<ul>" + rows + "<li>bias: " + fmt(layer.bias[j], 2) + "</li></ul></div>"
      );
    }
    box.innerHTML =
      "<h3>Misclassified: a " + esc(classNames[mistake.label]) + " read as " + esc(classNames[mistake.predicted]) + "</h3>" +
      '<p class="note">The two output neurons side by side: the one with the larger sum z wins. Their largest inputs × weights:</p>' +
      '<div class="sides">' + side(mistake.label, "true class", "truth") + side(mistake.predicted, "network's answer", "answer") + "</div>";
  }

  return { renderHeader, renderOutputs };
})();
