// The deployed chip beside the float model: the "float (Keras)" / "int8 (the chip)" switch, both
// predictions, where quantization hurts, and the target's figures from deploy's report.json.
Explorer.chip = (function () {
  const { layers, classNames, image, test, testSample } = Explorer.model;
  const { esc, fmt } = Explorer.format;
  const { argmax, classProbabilities } = Explorer.math;
  const { paint, grey } = Explorer.draw;
  const formulaInt8 = Explorer.formulaInt8;
  const DEPLOY = Explorer.data.deploy || {};
  const state = Explorer.state;
  const available = formulaInt8.available;

  function setup() {
    if (!available) return;
    document.getElementById("mode-switch").hidden = false;
    for (const radio of document.querySelectorAll('input[name="mode"]')) {
      radio.addEventListener("change", (e) => setMode(e.target.value));
    }
    renderHurt();
    renderTarget();
  }

  function setMode(mode) {
    if (mode === "int8" && !available) throw new Error("this page has no int8 network: make it from a deploy folder");
    state.mode = mode;
    for (const radio of document.querySelectorAll('input[name="mode"]')) radio.checked = radio.value === mode;
    document.body.classList.toggle("int8-mode", mode === "int8");
    Explorer.actions.update();
  }

  // Both answers, float and int8, and whether they agree.
  function renderComparison() {
    const box = document.getElementById("int8-answer");
    if (!available) return;
    box.hidden = state.mode !== "int8";
    if (box.hidden) return;
    const real = classNames ? classProbabilities(formulaInt8.outputs()) : formulaInt8.outputs();
    const float = classNames ? classProbabilities(Explorer.outputs()) : Explorer.outputs();
    if (!classNames) {
      box.innerHTML = "float (Keras) y = <b>" + fmt(float[0]) + "</b> · int8 (the chip) y = <b>" + fmt(real[0]) + "</b>";
      return;
    }
    const f = argmax(float);
    const q = argmax(real);
    const disagree = f !== q;
    box.classList.toggle("disagree", disagree);
    box.dataset.floatClass = String(f);
    box.dataset.int8Class = String(q);
    box.innerHTML =
      "float (Keras): <b>" + esc(classNames[f]) + "</b> " + (100 * float[f]).toFixed(1) + "% · int8 (the chip): <b>" + esc(classNames[q]) +
      "</b> " + (100 * real[q]).toFixed(1) + "%" +
      (disagree ? "<br><b>They disagree here:</b> quantization changed the answer." : " · they agree");
  }

  // Per layer, the largest and mean |int8 − float| over the test split, and a gallery of the
  // test images on this page whose int8 class differs from the float class.
  function renderHurt() {
    const summary = DEPLOY.quantization;
    if (!summary) return;
    const card = document.getElementById("hurt-card");
    card.hidden = false;
    let html = "<table><tr><th>layer</th><th>largest |int8 − float|</th><th>mean</th><th>output scale</th></tr>";
    for (const layer of summary.layers) {
      html +=
        "<tr><td>" + esc(layers[layer.layer - 1] ? layers[layer.layer - 1].name : layer.name) + "</td><td>" + fmt(layer.max_abs_error) + "</td><td>" + fmt(layer.mean_abs_error) + "</td><td>" +
        fmt(layer.output_scale) + "</td></tr>";
    }
    html += "</table>";
    const over = DEPLOY.test_samples ? " of the " + DEPLOY.test_samples.toLocaleString("en") + " test samples" : "";
    html +=
      '<p class="note" id="hurt-summary">int8 and float disagree on the class of ' + summary.disagree_total + over + "; on this page: " +
      summary.disagree.length + (summary.disagree.length ? " (tap one to run it in int8)" : "") + "</p>";
    document.getElementById("hurt").innerHTML = html;
    const gallery = document.getElementById("hurt-gallery");
    if (!test) return;
    for (const i of summary.disagree) {
      const thumb = document.createElement("div");
      thumb.className = "thumb wrong";
      thumb.dataset.index = String(i);
      if (image) {
        const canvas = document.createElement("canvas");
        paint(canvas, testSample(i), image.height, image.width, grey);
        thumb.appendChild(canvas);
      }
      const caption = document.createElement("div");
      caption.textContent = "#" + i;
      thumb.appendChild(caption);
      thumb.addEventListener("click", () => {
        setMode("int8");
        Explorer.actions.showTestImage(i, true);
      });
      gallery.appendChild(thumb);
    }
  }

  function renderTarget() {
    const rows = [];
    const target = DEPLOY.target;
    if (target && !target.skipped) {
      rows.push(["core", target.core + " " + (target.opt || "") + " (emulated)"]);
      rows.push(["flash", target.flash_bytes.toLocaleString("en") + " bytes"]);
      rows.push(["RAM", target.ram_bytes.toLocaleString("en") + " bytes"]);
      rows.push(["stack", target.stack_bytes.toLocaleString("en") + " bytes"]);
      rows.push(["instructions per inference", target.instructions.median.toLocaleString("en") + " (median)"]);
      rows.push(["time at 64 MHz", target.ms_at_64_mhz.toFixed(2) + " ms (estimated)"]);
    } else if (DEPLOY.flash_bytes !== undefined) {
      const built = DEPLOY.size_toolchain ? " (" + DEPLOY.size_toolchain + ")" : "";
      rows.push(["flash" + built, DEPLOY.flash_bytes.toLocaleString("en") + " bytes"]);
      rows.push(["RAM" + built, DEPLOY.ram_bytes.toLocaleString("en") + " bytes"]);
    }
    if (!rows.length && DEPLOY.c_vs_tflm_differing_samples === undefined) return;
    document.getElementById("target-card").hidden = false;
    let html = "<table>" + rows.map((r) => "<tr><td>" + esc(r[0]) + "</td><td>" + esc(r[1]) + "</td></tr>").join("") + "</table>";
    const lines = [];
    if (DEPLOY.c_vs_tflm_differing_samples !== undefined) {
      lines.push(
        DEPLOY.c_vs_tflm_differing_samples + " samples differ from TFLite Micro in any byte on " + DEPLOY.test_samples.toLocaleString("en") +
          " test inputs (the C engine on this computer)"
      );
    }
    if (target && !target.skipped) {
      const on = target.inputs.toLocaleString("en") + " inputs (the emulated " + target.core + ")";
      lines.push(
        target.differing_inputs === 0
          ? "0 bytes differ from TFLite Micro on " + on
          : target.differing_inputs + " of " + on + " differ from TFLite Micro"
      );
    } else if (target && target.skipped) {
      lines.push("not run on an emulated core: " + target.skipped);
    }
    html += lines.map((line) => '<p class="note exact">' + esc(line) + "</p>").join("");
    if (target && target.note) html += '<p class="note">' + esc(target.note) + "</p>";
    document.getElementById("target").innerHTML = html;
  }

  return { available, setup, setMode, renderComparison };
})();
