// Numbers and names as text: what every panel shows.
Explorer.format = (function () {
  // Escapes text for innerHTML, so a class name in the data cannot inject markup.
  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function fmt(v, digits) {
    const d = digits === undefined ? 4 : digits;
    if (v === 0) return "0";
    const size = Math.abs(v);
    if (size >= 1e5 || size < 1e-4) return v.toExponential(2);
    return v.toFixed(d);
  }
  // A negative factor in brackets, so "x × (−w)" reads as a product.
  function paren(v) {
    return v < 0 ? "(" + fmt(v) + ")" : fmt(v);
  }

  return { esc, fmt, paren };
})();
