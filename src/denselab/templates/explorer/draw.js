// Colours, SVG elements and values painted as pixels: the drawing primitives the panels share.
Explorer.draw = (function () {
  const SVG = "http://www.w3.org/2000/svg";
  const { POS, NEG } = Explorer.colours;

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }
  // White at t = 0, the full colour at t = 1.
  function mix(colour, t) {
    const k = Math.max(0, Math.min(1, t));
    return colour.map((c) => Math.round(255 + (c - 255) * k));
  }
  function rgb(c) {
    return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")";
  }
  // t in [-1, 1]: blue for negative, red for positive, as weights.png.
  function diverging(t) {
    return t >= 0 ? mix(POS, t) : mix(NEG, -t);
  }
  function grey(v) {
    const g = Math.round(255 * Math.max(0, Math.min(1, v)));
    return [g, g, g];
  }

  // Paint values (length h*w) onto a canvas of size w x h; colour(v) -> [r, g, b].
  function paint(canvas, values, h, w, colour) {
    canvas.width = w;
    canvas.height = h;
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(w, h);
    for (let k = 0; k < h * w; k++) {
      const c = colour(values[k]);
      pixels.data.set([c[0], c[1], c[2], 255], k * 4);
    }
    context.putImageData(pixels, 0, 0);
  }

  return { el, mix, rgb, diverging, grey, paint };
})();
