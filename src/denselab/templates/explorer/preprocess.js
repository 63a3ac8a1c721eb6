// A drawing made into what MNIST's digits were: the ink's bounding box scaled to fit 20×20
// (keeping its aspect ratio), then placed in 28×28 with its centre of mass in the middle.
// The Python twin is denselab.data.samples.load_image; this follows it step for step, with
// Pillow's Lanczos resampling in its 8-bit fixed point, so both give the same pixels.
Explorer.preprocess = (function () {
  const PRECISION_BITS = 22; // Pillow's for 8-bit images: 32 - 8 - 2

  // Python's round(): halves go to the even neighbour.
  function roundHalfEven(v) {
    const floor = Math.floor(v);
    const diff = v - floor;
    if (diff > 0.5) return floor + 1;
    if (diff < 0.5) return floor;
    return floor % 2 === 0 ? floor : floor + 1;
  }

  function sinc(x) {
    if (x === 0) return 1;
    const px = Math.PI * x;
    return Math.sin(px) / px;
  }
  function lanczos(x) {
    return x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  }

  // For each output pixel: the first input pixel it reads and its integer weights (Pillow's
  // precompute_coeffs and normalize_coeffs_8bpc: a Lanczos-3 filter widened when shrinking).
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterScale = Math.max(scale, 1);
    const support = 3 * filterScale;
    const taps = [];
    for (let out = 0; out < outSize; out++) {
      const centre = (out + 0.5) * scale;
      const first = Math.max(Math.trunc(centre - support + 0.5), 0);
      const last = Math.min(Math.trunc(centre + support + 0.5), inSize);
      const weights = [];
      let total = 0;
      for (let x = first; x < last; x++) {
        const w = lanczos((x - centre + 0.5) / filterScale);
        weights.push(w);
        total += w;
      }
      const fixed = weights.map((w) => {
        const k = (total ? w / total : 0) * (1 << PRECISION_BITS);
        return Math.trunc(k < 0 ? k - 0.5 : k + 0.5);
      });
      taps.push({ first: first, weights: fixed });
    }
    return taps;
  }

  // One resampling pass over uint8 pixels (h×w), along rows (horizontal) or columns.
  function pass(pixels, h, w, outSize, horizontal) {
    const taps = coefficients(horizontal ? w : h, outSize);
    const outH = horizontal ? h : outSize;
    const outW = horizontal ? outSize : w;
    const out = new Uint8Array(outH * outW);
    for (let r = 0; r < outH; r++) {
      for (let c = 0; c < outW; c++) {
        const tap = taps[horizontal ? c : r];
        let sum = 1 << (PRECISION_BITS - 1);
        for (let k = 0; k < tap.weights.length; k++) {
          const i = tap.first + k;
          sum += (horizontal ? pixels[r * w + i] : pixels[i * w + c]) * tap.weights[k];
        }
        out[r * outW + c] = Math.max(0, Math.min(255, Math.floor(sum / (1 << PRECISION_BITS))));
      }
    }
    return out;
  }

  // Pillow's Image.resize(size, LANCZOS) of an 8-bit grey image: rows first, then columns.
  function resize(pixels, h, w, outH, outW) {
    let out = pixels;
    if (outW !== w) out = pass(out, h, w, outW, true);
    if (outH !== h) out = pass(out, h, outW, outH, false);
    return out;
  }

  // grey: uint8 light-on-dark pixels (h×w). Returns the model's input, outH×outW in [0, 1]
  // (all zeros when nothing is drawn).
  function mnistLike(grey, h, w, outH, outW) {
    const result = new Float64Array(outH * outW);
    let top = h;
    let left = w;
    let bottom = -1;
    let right = -1;
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        if (Math.fround(grey[r * w + c] / 255) > 0.1) {
          top = Math.min(top, r);
          bottom = Math.max(bottom, r);
          left = Math.min(left, c);
          right = Math.max(right, c);
        }
      }
    }
    if (bottom < 0) return result;
    const cropH = bottom - top + 1;
    const cropW = right - left + 1;
    const crop = new Uint8Array(cropH * cropW);
    for (let r = 0; r < cropH; r++) {
      for (let c = 0; c < cropW; c++) {
        // As load_image: grey levels as float32 in [0, 1], times 255, truncated to uint8.
        crop[r * cropW + c] = Math.trunc(Math.fround(Math.fround(grey[(top + r) * w + left + c] / 255) * 255));
      }
    }
    const box = Math.max(1, roundHalfEven((Math.min(outH, outW) * 20) / 28));
    const factor = box / Math.max(cropH, cropW);
    const sizeW = Math.max(1, roundHalfEven(cropW * factor));
    const sizeH = Math.max(1, roundHalfEven(cropH * factor));
    const scaled = resize(crop, cropH, cropW, sizeH, sizeW);
    let mass = 0;
    let rowSum = 0;
    let colSum = 0;
    for (let r = 0; r < sizeH; r++) {
      for (let c = 0; c < sizeW; c++) {
        const v = scaled[r * sizeW + c];
        mass += v;
        rowSum += r * v;
        colSum += c * v;
      }
    }
    mass = mass || 1;
    const placeTop = Math.max(0, Math.min(outH - sizeH, roundHalfEven(outH / 2 - rowSum / mass)));
    const placeLeft = Math.max(0, Math.min(outW - sizeW, roundHalfEven(outW / 2 - colSum / mass)));
    for (let r = 0; r < sizeH; r++) {
      for (let c = 0; c < sizeW; c++) {
        result[(placeTop + r) * outW + placeLeft + c] = Math.fround(scaled[r * sizeW + c] / 255);
      }
    }
    return result;
  }

  return { mnistLike, resize, roundHalfEven };
})();
