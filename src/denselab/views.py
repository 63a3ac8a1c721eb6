"""What each command shows a person: the one place a command's result becomes tables and text.

The library computes results (plain dicts, ready for ``--json``); the CLI hands each to the
function of the same name here. Everything is printed through :mod:`denselab.report`.
"""

from __future__ import annotations

import numpy as np

from . import report


def train(result: dict) -> None:
    shown = {k: v for k, v in result.items() if k not in ("model_path", "run", "pictures")}
    report.table("Result", ["metric", "value"], [(k, _fmt(v)) for k, v in shown.items()])
    report.say(f"saved to {result['run']}")
    pictures(result)


def pictures(result: dict) -> None:
    if result.get("pictures"):
        report.say("pictures: " + ", ".join(str(p) for p in result["pictures"]))


def inspect(result: dict) -> None:
    rows = [
        (
            r["layer"],
            tuple(r["kernel_shape"]),
            tuple(r["bias_shape"]),
            f"{r['params']:,}",
            r["activation"],
        )
        for r in result["layers"]
    ]
    report.table(
        f"{result['model']}: {result['summary']}, {result['params']:,} parameters",
        ["layer", "kernel shape", "bias shape", "params", "activation"],
        rows,
    )
    neuron = result.get("neuron")
    if neuron is None:
        return
    report.say(
        f"layer {neuron['layer']}, neuron {neuron['neuron']}: {neuron['n_weights']} weights "
        f"(kernel column {neuron['neuron']}: row i is input i) and bias {neuron['bias']:+.6f}"
    )
    shown = np.array(neuron["weights"])
    with np.printoptions(precision=4, suppress=True, linewidth=100, threshold=100):
        report.code(str(shown))
    report.say(
        f"min {shown.min():+.4f}, max {shown.max():+.4f}, mean {shown.mean():+.4f}; "
        f"y = w1*x1 + ... + w{len(shown)}*x{len(shown)} + ({neuron['bias']:+.6f})"
    )


def explain(result: dict) -> None:
    report.heading(f"{result['source']}: the forward pass by hand, from get_weights()")
    for number, (layer, neurons) in enumerate(
        zip(result["network"], result["layers"], strict=True), start=1
    ):
        report.say(
            f"[bold]layer {number} ({report.plain(layer['name'])})[/]: {layer['n_inputs']} "
            f"inputs -> {layer['n_neurons']} neurons, {layer['activation']}; "
            "each = sum(input * weight) + bias"
        )
        report.code("\n".join(f"n{n['neuron']}: {n['formula']}" for n in neurons))
        if layer["activation"] == "softmax":
            report.say("softmax turns the sums into probabilities: p_j = exp(z_j) / sum_k exp(z_k)")
    report.say(f"by hand:       {_vector(result['hand_prediction'])}")
    report.say(f"model.predict: {_vector(result['prediction'])}")
    report.say(f"largest difference: {result['max_abs_diff']:.2e}")


def predict(result: dict) -> None:
    report.heading(f"predict {result['source']}")
    output, label = result["output"], result["label"]
    if len(output) > 1:
        rows = [(i, f"{p:.6f}", "#" * int(round(p * 40))) for i, p in enumerate(output)]
        report.table("class probabilities", ["class", "probability", ""], rows)
        truth = "" if label is None else f" (true label {label})"
        report.say(f"predicted class {result['predicted_class']}{truth}")
    else:
        report.say(f"output {output[0]:.6f}" + ("" if label is None else f" (true {label})"))


def evaluate(result: dict) -> None:
    shown = {k: v for k, v in result.items() if k != "model"}
    report.table(
        f"{result['model']} on {result['dataset']}",
        ["metric", "value"],
        [(k, _fmt(v)) for k, v in shown.items()],
    )


def datasets(result: dict) -> None:
    rows = [
        (name, "yes" if entry["available"] else "no", entry["description"], entry["where"])
        for name, entry in result.items()
    ]
    report.table("datasets", ["name", "here", "what", "where"], rows)
    report.say(
        "Also: your own .csv (target column by --target) or .npz "
        "(x_train, y_train, x_test, y_test)."
    )


_DEPLOY_ROWS = {
    "params": "parameters",
    "macs": "MACs per inference",
    "flash_bytes": "flash, C engine ({size_toolchain})",
    "ram_bytes": "RAM, C engine (static: activation buffers, int32 sums)",
    "tflm_arena_bytes": "TFLite Micro arena (64-bit host)",
    "tflite_int8_bytes": ".tflite int8 file",
    "keras_accuracy": "accuracy, Keras float",
    "tflm_int8_accuracy": "accuracy, TFLM int8",
    "c_int8_accuracy": "accuracy, C engine int8",
    "keras_mae": "MAE, Keras float",
    "c_int8_mae": "MAE, C engine int8",
    "test_samples": "test samples compared",
    "c_vs_tflm_differing_samples": "samples where C differs from TFLM",
}


def deploy(result: dict) -> None:
    """The deploy (or verify) report: sizes, accuracies and the bit-exactness verdict."""
    folder = result.get("folder", "")
    rows = []
    for key, label in _DEPLOY_ROWS.items():
        if key in result:
            value = result[key]
            text = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
            rows.append((label.format(**result), text))
    report.table(f"deploy report: {folder}", ["", "value"], rows)
    verdict = "bit-exact" if result["c_vs_tflm_differing_samples"] == 0 else "DIFFERENT"
    report.say(f"C engine vs TFLite Micro on every test sample: {verdict}")
    if result.get("target"):
        report.say(target_line(result["target"]))


def target_line(target: dict) -> str:
    """One line for the emulated core: bytes that differ, instructions, cycles, memory."""
    core = target["core"].replace("cortex-m", "Cortex-M").replace("0plus", "0+")
    if "skipped" in target:
        return f"{core}: skipped ({target['skipped']})"
    spread = target["instructions"]
    return (
        f"{core} ({target['opt']}, emulated): {target['differing_inputs']} of "
        f"{target['inputs']:,} inputs differ from TFLite Micro; "
        f"{spread['median']:,} instructions per inference ({spread['min']:,}-{spread['max']:,}), "
        f"~{target['cycles_estimate']['median']:,} cycles, ~{target['ms_at_64_mhz']:.2f} ms at "
        f"64 MHz; flash {target['flash_bytes']:,} B, RAM {target['ram_bytes']:,} B + stack "
        f"{target['stack_bytes']:,} B. Emulated counts are not silicon: no wait states, caches "
        "or interrupts."
    )


verify = deploy


def explore(result: dict) -> None:
    report.say(f"wrote {result['html']}; open it in any browser (it works offline)")


def plot(result: dict) -> None:
    pictures(result)


def _vector(values) -> str:
    return "[" + " ".join(f"{v:.6g}" for v in values) + "]"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return report.plain(str(value)) if isinstance(value, str) else str(value)
