// The test samples as clickable thumbnails, with an "All / Misclassified" switch for classifiers.
Explorer.gallery = (function () {
  const { image, classNames, test, testSample, run } = Explorer.model;
  const { argmax, classProbabilities } = Explorer.math;
  const { paint, grey } = Explorer.draw;
  const state = Explorer.state;

  // The network's answer on every test sample, computed once: {label, confidence, wrong}.
  const predictions = [];
  if (test && classNames) {
    for (let i = 0; i < test.count; i++) {
      const p = classProbabilities(run(testSample(i)).pop().a);
      const best = argmax(p);
      predictions.push({ label: best, confidence: p[best], wrong: best !== test.y[i] });
    }
  }

  function misclassified() {
    return predictions.map((p, i) => (p.wrong ? i : -1)).filter((i) => i >= 0);
  }

  function setup() {
    document.getElementById("test-card").hidden = false;
    const gallery = document.getElementById("gallery");
    const wrong = predictions.filter((p) => p.wrong).length;
    const summary = document.getElementById("test-summary");
    if (classNames) {
      const total = test.total || test.count;
      const right = ((100 * (test.count - wrong)) / test.count).toFixed(1) + "% right";
      // The header's accuracy is over the whole test split; these are its first test.count images.
      const scope =
        total > test.count
          ? "The first " + test.count + " of the " + total.toLocaleString("en") + " test images: " + wrong + " misclassified (" + right +
            "; the header's accuracy is over all " + total.toLocaleString("en") + ")."
          : test.count + " test images: " + wrong + " misclassified (" + right + ").";
      summary.textContent = scope + " Tap one to run it.";
      document.getElementById("show-wrong").textContent = "Misclassified (" + wrong + ")";
    } else {
      summary.textContent = test.count + " test samples. Tap one to run it.";
      document.getElementById("show-wrong").hidden = true;
    }
    document.getElementById("show-all").textContent = "All (" + test.count + ")";
    for (let i = 0; i < test.count; i++) {
      const thumb = document.createElement("div");
      thumb.className = "thumb";
      thumb.dataset.index = String(i);
      const p = predictions[i];
      if (image) {
        const canvas = document.createElement("canvas");
        paint(canvas, testSample(i), image.height, image.width, grey);
        thumb.appendChild(canvas);
      } else {
        thumb.classList.add("sample-button");
      }
      const caption = document.createElement("div");
      if (p) {
        caption.textContent = p.wrong ? classNames[test.y[i]] + "→" + classNames[p.label] : classNames[p.label];
        thumb.title = "#" + i + ": true " + classNames[test.y[i]] + ", network says " + classNames[p.label] + " (" + (100 * p.confidence).toFixed(0) + "%)";
        if (p.wrong) thumb.classList.add("wrong");
      } else {
        caption.textContent = "#" + i;
      }
      thumb.appendChild(caption);
      thumb.addEventListener("click", () => Explorer.actions.showTestImage(i, true));
      gallery.appendChild(thumb);
    }
    const tabs = [document.getElementById("show-all"), document.getElementById("show-wrong")];
    tabs.forEach((tab, k) =>
      tab.addEventListener("click", () => {
        tabs.forEach((t) => t.classList.toggle("active", t === tab));
        for (const thumb of gallery.children) thumb.hidden = k === 1 && !thumb.classList.contains("wrong");
      })
    );
  }

  // Outlines the thumbnail of the test sample now shown, if any.
  function markCurrent() {
    for (const thumb of document.querySelectorAll(".thumb.current")) thumb.classList.remove("current");
    if (state.testIndex !== null) {
      const thumb = document.querySelector('.thumb[data-index="' + state.testIndex + '"]');
      if (thumb) thumb.classList.add("current");
    }
  }

  return { setup, markCurrent, misclassified };
})();
