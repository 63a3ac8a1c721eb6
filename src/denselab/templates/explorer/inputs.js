// Typed input values (a model that is neither an image nor the line) and the note under the input.
Explorer.inputs = (function () {
  const { nInputs, classNames, test } = Explorer.model;
  const { fmt } = Explorer.format;
  const state = Explorer.state;

  function setup() {
    document.getElementById("vector-panel").hidden = false;
    const box = document.getElementById("vector-inputs");
    for (let i = 0; i < Math.min(nInputs, Explorer.geometry.maxInputsShown); i++) {
      const label = document.createElement("label");
      label.className = "slider";
      label.textContent = "x" + (i + 1) + " ";
      const field = document.createElement("input");
      field.type = "number";
      field.step = "any";
      field.value = "0";
      field.dataset.index = String(i);
      field.addEventListener("input", () => {
        state.input[i] = parseFloat(field.value) || 0;
        state.edited = true;
        Explorer.actions.update();
      });
      label.appendChild(field);
      box.appendChild(label);
    }
  }

  // Shows state.input in the fields after something other than typing changed it.
  function sync() {
    for (const field of document.querySelectorAll("#vector-inputs input")) {
      field.value = String(state.input[+field.dataset.index]);
    }
  }

  function renderNote() {
    const note = document.getElementById("input-note");
    if (!note) return;
    if (state.testIndex === null) note.textContent = state.edited ? "your drawing" : "empty: draw something";
    else {
      const label = classNames ? classNames[test.y[state.testIndex]] : fmt(test.y[state.testIndex]);
      note.textContent = "test image #" + state.testIndex + " (true label " + label + ")" + (state.edited ? ", edited" : "");
    }
  }

  return { setup, sync, renderNote };
})();
