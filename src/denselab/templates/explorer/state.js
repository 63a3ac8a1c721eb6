"use strict"; // first in JS_MODULES, so it covers the whole joined script
// denselab explorer: a dense network's forward pass, drawn. No library, no network request.
// Each file adds one entry to Explorer; explore.py joins them in JS_MODULES order into one <script>.
// This one holds what every module shares: the page's data, the constants and the mutable state.
const Explorer = {};

Explorer.data = JSON.parse(document.getElementById("denselab-data").textContent);

Explorer.colours = {
  POS: [178, 24, 43], // red: positive weight (as weights.png, RdBu_r)
  NEG: [33, 102, 172], // blue: negative weight
  HOT: [230, 126, 34], // orange: a hidden neuron's output
  GOOD: [42, 157, 58], // green: a class probability
};

// Sizes in SVG user units that several modules must agree on.
Explorer.geometry = {
  // Every chart's viewBox (the <svg class="chart"> elements in page.html) and its plot margins.
  chart: { width: 420, height: 280, margin: { left: 54, right: 12, top: 28, bottom: 40 } },
  // The network diagram, in CSS pixels: rows at least minPitch apart (a finger's tap target),
  // room for the values and class labels right of a column, two-line labels at the top.
  diagram: {
    minWidth: 300,
    maxWidth: 1000,
    top: 52,
    bottom: 16,
    labelY: 16,
    minPitch: 26,
    maxPitch: 40,
    columnHeight: 560,
    minColumn: 240,
    valueRoom: 64,
    classRoom: 80,
  },
  maxInputsShown: 64, // inputs beyond this get no dot in the diagram and no typed field
  edgesPerNeuron: 6, // lines drawn from the image to each first-layer neuron
  termsShown: 8, // a wide neuron's formula lists its top contributions, sums the rest
};

Explorer.state = {
  input: new Float64Array(Explorer.data.layers[0].nInputs),
  trace: null, // one {z, a} per layer for the current input
  selected: { layer: Explorer.data.layers.length - 1, index: 0, auto: true },
  hover: null,
  testIndex: null,
  edited: false,
  fromInk: false, // the input is the drawing on the canvas, preprocessed (canvas.js)
  edgeMode: "contribution",
  mode: "float", // or "int8": the panels show the chip's integer arithmetic (int8.js)
  int8Trace: null, // the int8 network's steps for the current input, when the page has it
};

// The last layer's activations for the current input.
Explorer.outputs = function () {
  const trace = Explorer.state.trace;
  return trace[trace.length - 1].a;
};
