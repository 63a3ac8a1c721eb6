// Wires the modules together: what changes the input, one update() that redraws every panel, the start.
Explorer.actions = (function () {
  const { nInputs, classNames, test, testSample, run, layers } = Explorer.model;
  const { argmax, classProbabilities } = Explorer.math;
  const E = Explorer;
  const state = E.state;

  // Reruns the network on state.input and redraws everything that shows it.
  function update() {
    state.trace = run(state.input);
    if (E.chip.available) state.int8Trace = E.int8.run(state.input);
    if (state.selected.auto) state.selected.index = classNames && layers.at(-1).nOut > 1 ? argmax(E.outputs()) : 0;
    E.canvas.render();
    E.network.render();
    E.panels.renderOutputs();
    E.formula.render();
    E.chip.renderComparison();
    E.charts.renderLine();
    E.inputs.renderNote();
  }

  function setInput(values) {
    if (values.length !== nInputs) throw new Error("expected " + nInputs + " input values, got " + values.length);
    for (let i = 0; i < nInputs; i++) state.input[i] = Number(values[i]);
    state.testIndex = null;
    state.edited = true;
    state.fromInk = false;
    E.inputs.sync();
    update();
    E.gallery.markCurrent();
  }

  // Shows test image i; with `reveal` (a tap in the gallery) the answer is scrolled into view.
  function showTestImage(i, reveal) {
    if (!test || i < 0 || i >= test.count) throw new Error("no test image " + i);
    state.input.set(testSample(i));
    state.testIndex = i;
    state.edited = false;
    state.fromInk = false;
    E.inputs.sync();
    update();
    E.gallery.markCurrent();
    if (reveal) revealAnswer();
  }

  // Scrolls the input card to the top of the view if the network's answer is not in view.
  function revealAnswer() {
    const answer = document.getElementById("prediction").getBoundingClientRect();
    if (answer.top >= 0 && answer.bottom <= window.innerHeight) return;
    document.getElementById("input-card").scrollIntoView({ block: "start" });
  }

  // {label, predicted} when the test image shown (not edited) is misclassified, else null.
  function mistake() {
    // One sigmoid unit has no output neuron per class: nothing to set side by side.
    if (!classNames || layers.at(-1).nOut === 1) return null;
    if (state.testIndex === null || state.edited || !state.trace) return null;
    const predicted = argmax(classProbabilities(E.outputs()));
    const label = test.y[state.testIndex];
    return predicted === label ? null : { label: label, predicted: predicted };
  }

  // Pins the formula panel to neuron j of layer l (until another click).
  function selectNeuron(l, j) {
    state.selected = { layer: l, index: j, auto: false };
    update();
  }

  function clear() {
    state.input.fill(0);
    state.testIndex = null;
    state.edited = false;
    E.canvas.reset();
    E.inputs.sync();
    update();
    E.gallery.markCurrent();
  }

  return { update, setInput, showTestImage, selectNeuron, clear, mistake };
})();

// Start: the input panel this kind of model needs, the diagram, the gallery, the curves; then draw.
(function start() {
  const E = Explorer;
  const { image, isLine, test } = E.model;
  E.panels.renderHeader();
  if (image) E.canvas.setup();
  else if (isLine) E.charts.setupLine();
  else E.inputs.setup();
  document.getElementById("edge-mode").addEventListener("change", (e) => {
    E.state.edgeMode = e.target.value;
    E.actions.update();
  });
  E.network.build();
  E.network.watchWidth();
  if (test) E.gallery.setup();
  E.chip.setup();
  E.charts.renderCurves();
  if (test) E.actions.showTestImage(0);
  else E.actions.update();
  E.testhook.ready = true; // the browser test waits for this
  document.body.dataset.ready = "true";
})();
