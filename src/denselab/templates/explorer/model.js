// The model and the test samples, decoded once from the page's JSON.
Explorer.model = (function () {
  const { decode, forward } = Explorer.math;
  const DATA = Explorer.data;

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
      limit: limit || 1, // the largest |weight|, so colours and line widths share one scale
    };
  });
  const nInputs = layers[0].nIn;
  const image = DATA.image; // {height, width} for image models, else null
  const classNames = DATA.classNames; // null for regression
  const isLine = DATA.inputShape.length === 1 && nInputs === 1;

  // The line lesson plots its training points instead of listing test samples.
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

  function run(x) {
    return forward(layers, x);
  }

  // Neurons are numbered from 1, as the lesson's N11 ... N120 and denselab's Python side:
  // shortName(0, 3) is "N1_4", layer 1's neuron 4 (the kernel's column 3).
  function shortName(l, j) {
    return "N" + (l + 1) + "_" + (j + 1);
  }
  // "neuron 4 (N1_4)", and for a classifier's output its class: 'neuron 8 (N2_8), class "7"'.
  function neuronName(l, j) {
    const name = "neuron " + (j + 1) + " (" + shortName(l, j) + ")";
    return l === layers.length - 1 && classNames ? name + ', class "' + classNames[j] + '"' : name;
  }
  // Pixels keep their (row, column) from 0, as NumPy indexes an image; other inputs count from 1.
  function inputName(l, i) {
    if (l > 0) return shortName(l - 1, i);
    if (image) return "pixel (" + Math.floor(i / image.width) + ", " + (i % image.width) + ")";
    return nInputs === 1 ? "x" : "x" + (i + 1);
  }

  return { layers, nInputs, image, classNames, isLine, test, testSample, run, shortName, neuronName, inputName };
})();
