// The drawing canvas of an image model: strokes (mouse, pen or finger) ink state.input.
Explorer.canvas = (function () {
  const { image, test } = Explorer.model;
  const { paint, grey } = Explorer.draw;
  const state = Explorer.state;
  const drawCanvas = document.getElementById("draw");
  const brush = image ? Math.max(0.9, image.width * 0.075) : 1; // ~4-pixel strokes on 28x28, like MNIST's

  // Shows state.input on the big canvas and on the small one inside the diagram.
  function render() {
    if (!image) return;
    const { height, width } = image;
    const small = document.getElementById("diagram-input");
    paint(small, state.input, height, width, grey);
    const context = drawCanvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, drawCanvas.width, drawCanvas.height);
    context.drawImage(small, 0, 0, drawCanvas.width, drawCanvas.height);
  }

  // A soft round brush at grid point (gx, gy); ink only ever darkens a pixel.
  function stamp(gx, gy) {
    const { height, width } = image;
    for (let row = Math.floor(gy - brush - 1); row <= Math.ceil(gy + brush); row++) {
      for (let col = Math.floor(gx - brush - 1); col <= Math.ceil(gx + brush); col++) {
        if (row < 0 || col < 0 || row >= height || col >= width) continue;
        const d = Math.hypot(col + 0.5 - gx, row + 0.5 - gy);
        const v = Math.max(0, Math.min(1, (brush - d) / (brush * 0.6)));
        const k = row * width + col;
        if (v > state.input[k]) state.input[k] = v;
      }
    }
  }

  function setup() {
    document.getElementById("draw-panel").hidden = false;
    document.getElementById("input-heading").textContent = test ? "Input: draw, or pick a test image" : "Input: draw";
    const update = () => Explorer.actions.update();
    let last = null;
    function gridPoint(clientX, clientY) {
      const box = drawCanvas.getBoundingClientRect();
      return [((clientX - box.left) / box.width) * image.width, ((clientY - box.top) / box.height) * image.height];
    }
    function start(clientX, clientY) {
      last = gridPoint(clientX, clientY);
      stamp(last[0], last[1]);
      state.edited = true;
      update();
    }
    function move(clientX, clientY) {
      if (!last) return;
      const next = gridPoint(clientX, clientY);
      // Quarter-pixel steps, so a fast stroke stays a line rather than dots.
      const steps = Math.max(1, Math.ceil(Math.hypot(next[0] - last[0], next[1] - last[1]) / 0.25));
      for (let s = 1; s <= steps; s++) {
        stamp(last[0] + ((next[0] - last[0]) * s) / steps, last[1] + ((next[1] - last[1]) * s) / steps);
      }
      last = next;
      update();
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

  return { setup, render };
})();
