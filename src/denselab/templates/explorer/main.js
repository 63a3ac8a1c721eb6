// Wires the modules together: what changes the input, one update() that redraws every panel, the start.
Explorer.actions = (function () {
  const { nInputs, classNames, test, testSample, run } = Explorer.model;
  const { argmax } = Explorer.math;
  const E = Explorer;
  const state = E.state;

  // Reruns the network on state.input and redraws everything that shows it.
  function update() {
    state.trace = run(state.input);
    if (state.selected.auto) state.selected.index = classNames ? argmax(E.outputs()) : 0;
    E.canvas.render();
    E.network.render();
    E.panels.renderOutputs();
    E.formula.render();
    E.charts.renderLine();
    E.inputs.renderNote();
  }

  function setInput(values) {
    if (values.length !== nInputs) throw new Error("expected " + nInputs + " input values, got " + values.length);
    for (let i = 0; i < nInputs; i++) state.input[i] = Number(values[i]);
    state.testIndex = null;
    state.edited = true;
    E.inputs.sync();
    update();
  }

  function showTestImage(i) {
    if (!test || i < 0 || i >= test.count) throw new Error("no test image " + i);
    state.input.set(testSample(i));
    state.testIndex = i;
    state.edited = false;
    E.inputs.sync();
    update();
    E.gallery.markCurrent();
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
    E.inputs.sync();
    update();
    E.gallery.markCurrent();
  }

  return { update, setInput, showTestImage, selectNeuron, clear };
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
  if (test) E.gallery.setup();
  E.charts.renderCurves();
  if (test) E.actions.showTestImage(0);
  else E.actions.update();
  E.testhook.ready = true; // the browser test waits for this
  document.body.dataset.ready = "true";
})();
