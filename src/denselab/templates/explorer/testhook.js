// window.denselab: what tests/test_pictures_explorer.py (and a curious learner's console) call.
// Values come back as plain arrays; the browser test waits for `ready` before it touches the page.
Explorer.testhook = (function () {
  const { nInputs, classNames, test, testSample } = Explorer.model;
  const state = Explorer.state;
  const actions = () => Explorer.actions; // main.js, after this file

  const api = {
    inputShape: Explorer.data.inputShape.slice(),
    inputSize: nInputs,
    classNames: classNames ? classNames.slice() : null,
    testCount: test ? test.count : 0,
    setInput(values) {
      actions().setInput(values);
      return api.probabilities();
    },
    input: () => Array.from(state.input),
    probabilities: () => Array.from(Explorer.outputs()),
    outputs: () => Array.from(Explorer.outputs()),
    activations: () => state.trace.map((step) => Array.from(step.a)),
    preactivations: () => state.trace.map((step) => Array.from(step.z)),
    testImage: (i) => Array.from(testSample(i)),
    testLabel: (i) => test.y[i],
    misclassified: () => Explorer.gallery.misclassified(),
    showTestImage(i) {
      actions().showTestImage(i);
      return api.probabilities();
    },
    selectNeuron: (l, j) => actions().selectNeuron(l, j),
    drawing: () => Explorer.canvas.drawingPng(), // the canvas as drawn, before preprocessing
    predictedClass: () => Explorer.math.argmax(Explorer.math.classProbabilities(Explorer.outputs())),
    clear: () => actions().clear(),
    hasInt8: () => Explorer.chip.available,
    setMode: (mode) => Explorer.chip.setMode(mode),
    mode: () => state.mode,
    // The int8 network's output bytes for the current input (what TFLite Micro returns).
    int8Outputs: () => Array.from(state.int8Trace[state.int8Trace.length - 1].out),
    ready: false,
  };
  window.denselab = api;
  return api;
})();
