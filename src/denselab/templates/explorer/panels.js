// The text panels: the header's one-line summary and the network's answer (probabilities or y).
Explorer.panels = (function () {
  const { layers, nInputs, classNames, isLine } = Explorer.model;
  const { esc, fmt } = Explorer.format;
  const { argmax } = Explorer.math;
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
      parts.push("validation accuracy " + (100 * DATA.metrics.val_accuracy).toFixed(1) + "%");
    }
    document.getElementById("summary").textContent = parts.join(" · ");
  }

  // The rows carry data-probability / data-output: the browser test reads the values from there.
  function renderOutputs() {
    const values = Explorer.outputs();
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

  return { renderHeader, renderOutputs };
})();
