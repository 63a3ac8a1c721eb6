// The drawing canvas of an image model. Strokes (mouse, pen or finger) ink a big canvas; the
// network sees that drawing made into an MNIST digit (preprocess.js), shown beside it.
Explorer.canvas = (function () {
  const { image, test } = Explorer.model;
  const { paint, grey } = Explorer.draw;
  const { mnistLike } = Explorer.preprocess;
  const state = Explorer.state;
  const drawCanvas = document.getElementById("draw");
  const seenCanvas = document.getElementById("seen");
  const ink = drawCanvas.getContext("2d", { willReadFrequently: true });
  // About 2-3 pixels once a digit as tall as the canvas is scaled to MNIST's 20×20 box.
  const brush = drawCanvas.width * 0.08;

  // Shows the network's input beside the canvas and inside the diagram; the canvas itself shows
  // the drawing, or (for a test image or typed values) that input, enlarged.
  function render() {
    if (!image) return;
    const { height, width } = image;
    paint(seenCanvas, state.input, height, width, grey);
    const small = document.getElementById("diagram-input");
    paint(small, state.input, height, width, grey);
    if (state.fromInk) return;
    ink.imageSmoothingEnabled = false;
    ink.clearRect(0, 0, drawCanvas.width, drawCanvas.height);
    ink.drawImage(small, 0, 0, drawCanvas.width, drawCanvas.height);
  }

  function blank() {
    ink.fillStyle = "#000";
    ink.fillRect(0, 0, drawCanvas.width, drawCanvas.height);
  }

  // The drawing as the network's input: its grey levels, preprocessed as MNIST's digits were.
  function readInk() {
    const { data } = ink.getImageData(0, 0, drawCanvas.width, drawCanvas.height);
    const levels = new Uint8Array(drawCanvas.width * drawCanvas.height);
    for (let k = 0; k < levels.length; k++) levels[k] = data[k * 4];
    state.input.set(mnistLike(levels, drawCanvas.height, drawCanvas.width, image.height, image.width));
  }

  function setup() {
    document.getElementById("draw-panel").hidden = false;
    document.getElementById("input-heading").textContent = test ? "Input: draw, or pick a test image" : "Input: draw";
    document.getElementById("seen-caption").textContent =
      "what the network sees: " + image.height + "×" + image.width + ", scaled and centred as MNIST's digits";
    blank();
    let last = null;
    function canvasPoint(clientX, clientY) {
      const box = drawCanvas.getBoundingClientRect();
      return [((clientX - box.left) / box.width) * drawCanvas.width, ((clientY - box.top) / box.height) * drawCanvas.height];
    }
    function stroke(from, to) {
      ink.strokeStyle = "#fff";
      ink.fillStyle = "#fff";
      ink.lineWidth = brush;
      ink.lineCap = "round";
      ink.lineJoin = "round";
      ink.beginPath();
      if (from[0] === to[0] && from[1] === to[1]) {
        ink.arc(to[0], to[1], brush / 2, 0, 2 * Math.PI);
        ink.fill();
      } else {
        ink.moveTo(from[0], from[1]);
        ink.lineTo(to[0], to[1]);
        ink.stroke();
      }
      readInk();
      Explorer.actions.update();
    }
    function start(clientX, clientY) {
      if (!state.fromInk) {
        blank(); // a new drawing: a test image or typed values shown before are not drawn over
        state.fromInk = true;
        state.testIndex = null;
        Explorer.gallery.markCurrent();
      }
      state.edited = true;
      last = canvasPoint(clientX, clientY);
      stroke(last, last);
    }
    function move(clientX, clientY) {
      if (!last) return;
      const next = canvasPoint(clientX, clientY);
      stroke(last, next);
      last = next;
    }
    function end() {
      last = null;
    }
    if (window.PointerEvent) {
      drawCanvas.addEventListener("pointerdown", (e) => {
        drawCanvas.setPointerCapture(e.pointerId);
        e.preventDefault();
        start(e.clientX, e.clientY);
      });
      drawCanvas.addEventListener("pointermove", (e) => move(e.clientX, e.clientY));
      drawCanvas.addEventListener("pointerup", end);
      drawCanvas.addEventListener("pointercancel", end);
    } else {
      drawCanvas.addEventListener("mousedown", (e) => start(e.clientX, e.clientY));
      window.addEventListener("mousemove", (e) => move(e.clientX, e.clientY));
      window.addEventListener("mouseup", end);
      const touch = (handler) => (e) => {
        e.preventDefault();
        if (e.touches.length) handler(e.touches[0].clientX, e.touches[0].clientY);
        else end();
      };
      drawCanvas.addEventListener("touchstart", touch(start), { passive: false });
      drawCanvas.addEventListener("touchmove", touch(move), { passive: false });
      drawCanvas.addEventListener("touchend", touch(end), { passive: false });
    }
    document.getElementById("clear").addEventListener("click", () => Explorer.actions.clear());
  }

  // Forgets the drawing: the next stroke starts a new one.
  function reset() {
    state.fromInk = false;
    if (image) blank();
  }

  // The drawing as a PNG (data: URL), for the browser test to preprocess in Python.
  function drawingPng() {
    return drawCanvas.toDataURL("image/png");
  }

  return { setup, render, reset, drawingPng };
})();
