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
    report.say(f"saved to {report.plain(result['run'])}")
    pictures(result)


def pictures(result: dict) -> None:
    if result.get("pictures"):
        report.say("pictures: " + report.plain(", ".join(str(p) for p in result["pictures"])))


def inspect(result: dict) -> None:
    rows = [
        (
            f"{number}: {r['layer']}",
            tuple(r["kernel_shape"]),
            f"{r['kernel_size']:,}",
            f"{r['bias_size']:,}",
            f"{r['params']:,}",
            r["activation"],
        )
        for number, r in enumerate(result["layers"], start=1)
    ]
    report.table(
        f"{result['model']}: {result['summary']}, {result['params']:,} parameters",  # plain text
        ["layer", "kernel shape", "[0].size", "[1].size", "params", "activation"],
        rows,
    )
    for number, r in enumerate(result["layers"], start=1):
        n_inputs, n_neurons = r["kernel_shape"]
        bias = (
            f"[1].size = {r['bias_size']:,} (one bias per neuron)"
            if r.get("use_bias", True)
            else "no [1]: use_bias=False, so get_weights() is [kernel] (each bias is 0)"
        )
        report.say(
            f"layer_{number}.get_weights()[0].size = {r['kernel_size']:,} = {n_inputs} inputs x "
            f"{n_neurons} neurons (a weight for every input in every neuron); {bias}"
        )
    for r in result["layers"]:
        if r.get("folded"):
            report.say(_folded(r["layer"], r["folded"]))
    report.say(report.plain(result["indexing"]))
    neuron = result.get("neuron")
    if neuron is None:
        return
    report.say(
        f"layer {report.plain(neuron['layer'])}, neuron {report.plain(neuron['name'])} "
        f"(--neuron {neuron['neuron']}: the "
        f"kernel's column {neuron['neuron']}, counted from 0): {neuron['n_weights']} weights "
        f"(row i is input i) and bias {neuron['bias']:+.6f}"
    )
    shown = np.array(neuron["weights"])
    with np.printoptions(precision=4, suppress=True, linewidth=100, threshold=100):
        report.code(str(shown))
    report.say(
        f"min {shown.min():+.4f}, max {shown.max():+.4f}, mean {shown.mean():+.4f}; "
        f"y = w1*x1 + ... + w{len(shown)}*x{len(shown)} + ({neuron['bias']:+.6f})"
    )


def explain(result: dict) -> None:
    if "bit_exact" in result:
        return explain_int8(result)
    report.heading(
        f"{report.plain(result['source'])}: the forward pass by hand, from get_weights()"
    )
    for number, (layer, neurons) in enumerate(
        zip(result["network"], result["layers"], strict=True), start=1
    ):
        report.say(
            f"[bold]layer {number} ({report.plain(layer['name'])})[/]: {layer['n_inputs']} "
            f"inputs -> {layer['n_neurons']} neurons, {layer['activation']}; "
            "each = sum(input * weight) + bias"
        )
        if layer.get("folded"):
            report.say(_folded(layer["name"], layer["folded"]))
        report.code("\n".join(f"{n['name']}: {n['formula']}" for n in neurons))
        if layer["activation"] == "softmax":
            report.say("softmax turns the sums into probabilities: p_j = exp(z_j) / sum_k exp(z_k)")
    report.say(f"by hand:       {_vector(result['hand_prediction'])}")
    report.say(f"model.predict: {_vector(result['prediction'])}")
    report.say(
        f"largest difference: {result['max_abs_diff']:.2e} "
        f"(relative to the largest output: {result['max_rel_diff']:.2e})"
    )
    if result.get("agrees") is False:
        report.say(
            f"[bold red]check failed[/]: more than rounding ({result['tolerance']:.0e} of the "
            "largest output) apart: denselab read a layer of this model differently from Keras"
        )


def explain_int8(result: dict) -> None:
    """The int8 network, neuron by neuron, as the chip computes it."""
    report.heading(f"{report.plain(result['source'])}: the int8 network as the chip computes it")
    report.say(
        f"input: q = round(x / {result['input_scale']:.6g}) + {result['input_zero_point']}, "
        "clamped to -128..127"
    )
    for number, layer in enumerate(result["layers"], start=1):
        if layer["kind"] != "dense":
            _int8_activation(number, layer)
            continue
        report.say(
            f"[bold]layer {number} (FULLY_CONNECTED, {report.plain(layer['name'])})[/]: "
            f"{layer['n_inputs']} int8 inputs (zero point {layer['input_zero_point']}) -> "
            f"{layer['n_neurons']} neurons, fused {layer['fused_activation']}, output zero point "
            f"{layer['output_zero_point']}, scale {layer['output_scale']:.6g}"
        )
        report.code("\n".join(_int8_neuron(n, layer) for n in layer["neurons"]))
        if layer["max_abs_error"] is not None:
            report.say(
                f"int8 vs float on this layer: largest difference {layer['max_abs_error']:.4g}, "
                f"mean {layer['mean_abs_error']:.4g}"
            )
    verdict = "bit-exact" if result["bit_exact"] else "DIFFERENT"
    report.say(f"int8 output: {result['output_int8']}")
    report.say(f"TFLite Micro: {result['tflm_output_int8']}  ({verdict})")
    if "int8_class" in result:
        agree = "agree" if result["int8_class"] == result["float_class"] else "DISAGREE"
        report.say(
            f"int8 class {result['int8_class']}, float class {result['float_class']} ({agree})"
        )


def _int8_neuron(n: dict, layer: dict) -> str:
    terms = " ".join(f"{t['weight']:+d}*{t['centred']:+d}" for t in n["top_terms"])
    more = layer["n_inputs"] - len(n["top_terms"])
    rest = f" + [{more} more]" if more > 0 else ""
    clamp = f"clamp[{n['activation_min']},{n['activation_max']}]"
    float_part = "" if n["float"] is None else f"; float {n['float']:.5g}"
    return (
        f"N{n['neuron']}: acc = bias {n['bias']:+d} + sum w*(q-zp) ({terms}{rest}) = {n['acc']}\n"
        f"    x M = {n['output_multiplier']} * 2^({n['output_shift']}-31) = "
        f"{n['real_multiplier']:.6g}: high_mul {n['high_mul']}, rounded shift -> {n['result']}, "
        f"+ zp {layer['output_zero_point']} = {n['plus_zero_point']}, {clamp} -> {n['int8']} "
        f"(= {n['real']:.5g}{float_part})"
    )


def _int8_activation(number: int, layer: dict) -> None:
    if layer["kind"] == "softmax":
        report.say(
            f"[bold]layer {number} (SOFTMAX)[/]: largest input {layer['max_input']}; each "
            f"difference scaled to Q5.26 (multiplier {layer['input_multiplier']}, shift "
            f"{layer['input_left_shift']}), exp in Q0.31, sum {layer['sum_of_exps_q12_19']} "
            f"(Q12.19), reciprocal {layer['reciprocal_q0_31']} (Q0.31), output = "
            f"exp * reciprocal / 2^{layer['exponent']} - 128"
        )
        report.code(
            "\n".join(
                f"N{c}: diff {o['diff']}"
                + (
                    " (below diff_min: 0)"
                    if o.get("below_diff_min")
                    else f", scaled {o['scaled_diff_q5_26']}, exp {o['exp_q0_31']}"
                )
                + f" -> {o['int8']} (= {o['real']:.4f})"
                for c, o in enumerate(layer["outputs"], start=1)
            )
        )
    else:
        report.say(f"[bold]layer {number} ({layer['kind'].upper()})[/]: TFLM's fixed-point kernel")


def predict(result: dict) -> None:
    report.heading(f"predict {report.plain(result['source'])}")
    if result.get("model_input") is not None:
        report.say("what the model saw, after preprocessing the picture as MNIST was made:")
        report.code(image_text(result["model_input"]))
        report.say(
            "\n".join(
                f"  {number}. {step}"
                for number, step in enumerate(result["preprocessing"], start=1)
            )
        )
    _stand_in(result.get("dataset"))
    output, label = result["output"], result["label"]
    if "predicted_class" not in result:  # regression: the outputs are the prediction
        truth = "" if label is None else f" (true {label})"
        report.say(f"output {_vector(output)}{truth}")
    elif len(output) > 1 and result.get("logits"):  # a linear last layer: not probabilities
        rows = [(i, f"{z:.6f}") for i, z in enumerate(output)]
        report.table(
            "class outputs (logits: softmax makes them probabilities)", ["class", "logit"], rows
        )
    elif len(output) > 1:
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
    _stand_in(result.get("dataset"))


def _stand_in(dataset: str | None) -> None:
    from .data import stand_in_note

    if dataset and stand_in_note(dataset):
        report.say(f"note: {stand_in_note(dataset)}.")


def image_text(image, shades: str = " .:-=+*#%@") -> str:
    """A grey image (rows of values in [0, 1]; others are shown clipped to it) as text, two
    characters per pixel."""
    values = np.nan_to_num(np.clip(np.asarray(image, dtype=float), 0.0, 1.0), nan=0.0)
    levels = np.round(values * (len(shades) - 1))
    return "\n".join("".join(shades[int(v)] * 2 for v in row) for row in levels)


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


def deploy_rows(result: dict) -> list[tuple[str, str]]:
    """The deploy report's numbers as (what, value) rows, for the terminal and notebooks."""
    rows = []
    for key, label in _DEPLOY_ROWS.items():
        if key in result:
            value = result[key]
            text = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
            rows.append((label.format(**result), text))
    return rows


def deploy(result: dict) -> None:
    """The deploy (or verify) report: sizes, accuracies and the bit-exactness verdict."""
    folder = result.get("folder", "")
    report.table(f"deploy report: {folder}", ["", "value"], deploy_rows(result))
    verdict = "bit-exact" if result["c_vs_tflm_differing_samples"] == 0 else "DIFFERENT"
    report.say(f"C engine vs TFLite Micro on every test sample: {verdict}")
    if result.get("quantization"):
        report.say(report.plain(quantization_line(result["quantization"])))
    if result.get("target"):
        report.say(report.plain(target_line(result["target"])))


def quantization_line(summary: dict) -> str:
    """Where quantization hurts: per layer the largest and mean |int8 - float| activation."""
    parts = [
        f"layer {row['layer']} max {row['max_abs_error']:.3g}, mean {row['mean_abs_error']:.3g} "
        f"(one int8 step = {row['output_scale']:.3g})"
        for row in summary["layers"]
    ]
    text = "where quantization hurts (dequantized int8 vs float, test split): " + "; ".join(parts)
    if "int8_float_disagree" in summary:
        changed = summary["int8_float_disagree"]
        shown = ", ".join(str(i) for i in changed[:12]) + (" ..." if len(changed) > 12 else "")
        text += f". {len(changed)} test samples change class in int8" + (
            f": {shown}" if changed else ""
        )
    return text


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
    report.say(f"wrote {report.plain(result['html'])}; open it in any browser (it works offline)")


def plot(result: dict) -> None:
    pictures(result)


def _folded(layer: str, folded: list[str]) -> str:
    """A Dense layer that absorbed normalisation layers, in words."""
    return (
        f"folded into {report.plain(layer)}: {report.plain(', '.join(folded))} (each computes "
        "x * scale + offset at inference; the kernel and bias shown include it)"
    )


def _vector(values) -> str:
    return "[" + " ".join(f"{v:.6g}" for v in values) + "]"


def _fmt(value) -> str:
    """A table cell (tables show plain text: no markup to escape)."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
