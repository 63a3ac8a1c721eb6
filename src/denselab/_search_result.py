"""The search's answer: the Pareto front of int8 accuracy vs flash, and the chosen model.

Written to the search folder as ``search.json``, ``search_pareto.png`` and ``chosen/`` (the
chosen trial's run folder, with its test-split accuracy added to ``metrics.json``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import _io, report
from ._search_trial import SearchSpec
from .data import Dataset


def pareto_front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both: flash (lower) and int8 accuracy (higher).

    Sorted by flash; each kept row is strictly more accurate than every smaller one.
    """
    front: list[dict] = []
    for row in sorted(rows, key=lambda r: (r["flash_bytes"], -r["int8_val_accuracy"])):
        if not front or row["int8_val_accuracy"] > front[-1]["int8_val_accuracy"]:
            front.append(row)
    return front


def summarize(
    study, spec: SearchSpec, data: Dataset, view: Dataset, folder: Path, trials: int
) -> dict:
    """Write ``search.json``, ``search_pareto.png`` and ``chosen/``; show the front; return it."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    rows = [
        _row(t, folder)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "int8_val_accuracy" in t.user_attrs
    ]
    feasible = [row for row in rows if row["within_budget"]]
    front = pareto_front(feasible)
    chosen = _choose(feasible, spec.target_accuracy)
    if chosen is not None:
        chosen = {**chosen, **_keep_chosen(chosen, data, folder)}
    result = {
        "dataset": data.name,
        "target_accuracy": spec.target_accuracy,
        "max_flash": spec.max_flash,
        "max_ram": spec.max_ram,
        "trials": trials,
        "trials_complete": states.count(TrialState.COMPLETE),
        "trials_pruned": states.count(TrialState.PRUNED),
        "trials_failed": states.count(TrialState.FAIL),
        "validation_samples": len(view.x_test),
        "validation": f"{len(view.x_test):,} of the {len(data.x_train):,} training samples, "
        f"held out (seed {spec.seed}); the test split scores only the chosen model",
        "toolchain": rows[0]["toolchain"] if rows else None,
        "pareto_front": front,
        "chosen": chosen,
        "measured": sorted(rows, key=lambda r: r["trial"]),
        "study": str(folder / "study.db"),
        "plot": str(folder / "search_pareto.png"),
    }
    _plot(rows, front, chosen, spec, folder / "search_pareto.png")
    _io.write_json(folder / "search.json", result)
    _show(result)
    return result


def _row(trial, folder: Path) -> dict:
    attrs, params = trial.user_attrs, trial.params
    return {
        "trial": trial.number,
        "layers": attrs["layers"],
        "activations": attrs["activations"],
        "flash_bytes": attrs["flash_bytes"],
        "ram_bytes": attrs["ram_bytes"],
        "int8_val_accuracy": attrs["int8_val_accuracy"],
        "float_val_accuracy": attrs.get("float_val_accuracy"),
        "within_budget": attrs["within_budget"],
        "learning_rate": params["learning_rate"],
        "batch_size": params["batch_size"],
        "epochs": params["epochs"],
        "score": trial.value,
        "toolchain": attrs.get("toolchain"),
        "run": str(folder / "trials" / f"{trial.number:04d}"),
    }


def _choose(feasible: list[dict], target: float) -> dict | None:
    """The smallest flash that meets the target; if none does, the most accurate."""
    meeting = [row for row in feasible if row["int8_val_accuracy"] >= target]
    if meeting:
        return {
            **min(meeting, key=lambda r: (r["flash_bytes"], -r["int8_val_accuracy"])),
            "meets_target": True,
        }
    if feasible:
        return {
            **max(feasible, key=lambda r: (r["int8_val_accuracy"], -r["flash_bytes"])),
            "meets_target": False,
        }
    return None


def _keep_chosen(chosen: dict, data: Dataset, folder: Path) -> dict:
    """Copy the chosen trial's run folder to ``out/chosen`` and measure it on the test split."""
    from .compile import generate_c
    from .deploy import quantize_inputs
    from .model import load_model
    from .verify import c_engine_invoke

    target = folder / "chosen"
    staging = folder / ".chosen-partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(chosen["run"], staging)
    int8_tflite = (staging / "model_int8.tflite").read_bytes()
    outputs = c_engine_invoke(generate_c(int8_tflite), quantize_inputs(int8_tflite, data.x_test))
    keras_outputs = load_model(staging).predict(data.x_test, verbose=0, batch_size=1024)
    tested = {
        "int8_test_accuracy": float(np.mean(outputs.argmax(axis=1) == data.y_test)),
        "keras_test_accuracy": float(np.mean(keras_outputs.argmax(axis=1) == data.y_test)),
        "test_samples": len(data.x_test),
    }
    metrics = json.loads((staging / "metrics.json").read_text())
    _io.write_json(staging / "metrics.json", {**metrics, **tested, "search_trial": chosen["trial"]})
    retired = folder / ".chosen-old"
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():  # set the old one aside first: an interrupt never leaves no `chosen`
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    return {**tested, "run": str(target), "trial_run": chosen["run"]}


def _plot(rows, front, chosen, spec: SearchSpec, out: Path) -> Path:
    """int8 validation accuracy vs flash: every measured trial, the front, target, budget."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.8), dpi=100, layout="constrained")
    ax = figure.subplots()
    inside = [r for r in rows if r["within_budget"]]
    outside = [r for r in rows if not r["within_budget"]]
    for group, style in ((inside, {"marker": "o"}), (outside, {"marker": "x"})):
        if group:
            ax.scatter(
                [r["flash_bytes"] for r in group],
                [r["int8_val_accuracy"] for r in group],
                color="#9e9e9e",
                s=22,
                label="trial" if group is inside else "trial over budget",
                **style,
            )
    if front:
        ax.step(
            [r["flash_bytes"] for r in front],
            [r["int8_val_accuracy"] for r in front],
            where="post",
            color="#d62728",
            marker="o",
            label="Pareto front",
        )
        for r in front:
            ax.annotate(
                r["layers"],
                (r["flash_bytes"], r["int8_val_accuracy"]),
                fontsize=7,
                xytext=(4, -10),
                textcoords="offset points",
            )
    if chosen is not None:
        ax.scatter(
            [chosen["flash_bytes"]],
            [chosen["int8_val_accuracy"]],
            marker="*",
            s=260,
            color="#ffbf00",
            edgecolor="black",
            zorder=5,
            label=f"chosen {chosen['layers']}",
        )
    ax.axhline(
        spec.target_accuracy,
        color="#1f77b4",
        linestyle="--",
        linewidth=1,
        label=f"target {spec.target_accuracy:.3f}",
    )
    if spec.max_flash is not None:
        ax.axvline(spec.max_flash, color="#555555", linestyle=":", label="flash budget")
    ax.set_xscale("log")
    ax.set_xlabel("flash of the C engine, bytes (Cortex-M4, log scale)")
    ax.set_ylabel("int8 accuracy, validation (C engine)")
    ax.set_title(f"{spec.dataset}: the smallest network that does the job")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _io.write_with(out, lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def _show(result: dict) -> None:
    rows = [
        (
            r["trial"],
            r["layers"],
            r["activations"],
            f"{r['flash_bytes']:,}",
            f"{r['ram_bytes']:,}",
            f"{r['int8_val_accuracy']:.4f}",
            r["epochs"],
            f"{r['learning_rate']:.4f}",
            r["batch_size"],
        )
        for r in result["pareto_front"]
    ]
    report.table(
        f"Pareto front: int8 accuracy (validation) vs flash ({result['toolchain']})",
        ["trial", "layers", "activations", "flash", "RAM", "int8 acc", "epochs", "lr", "batch"],
        rows,
    )
    chosen = result["chosen"]
    if chosen is None:
        report.warn(
            "no trial finished within the budgets; raise --max-flash/--max-ram or run more --trials"
        )
        return
    verdict = "meets the target" if chosen["meets_target"] else "the most accurate (none met it)"
    report.say(
        f"chosen: trial {chosen['trial']}, {chosen['layers']} ({chosen['activations']}), "
        f"{chosen['flash_bytes']:,} bytes flash, {chosen['ram_bytes']:,} bytes RAM, int8 "
        f"accuracy {chosen['int8_val_accuracy']:.4f} validation / "
        f"{chosen['int8_test_accuracy']:.4f} test: {verdict}. Run folder: {chosen['run']} "
        f"(denselab deploy {chosen['run']} --out fw)"
    )
