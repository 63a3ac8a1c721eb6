"""The search's answer: the Pareto front of int8 accuracy vs flash, shown and written down.

From the study's finished trials (:func:`measured`) and the chosen network (:mod:`.choose`):
``search.json``, ``search_pareto.png`` and a table of the front (:func:`write`). Nothing here
trains or measures; the numbers are the trials' own, taken on the validation part held out
of the training split, and the chosen network's on the test split.
"""

from __future__ import annotations

from pathlib import Path

from .. import fileio, report
from ..data import Dataset
from .trial import SearchSpec


def pareto_front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both: flash (lower) and int8 accuracy (higher).

    Sorted by flash; each kept row is strictly more accurate than every smaller one.
    """
    front: list[dict] = []
    for row in sorted(rows, key=lambda r: (r["flash_bytes"], -r["int8_val_accuracy"])):
        if not front or row["int8_val_accuracy"] > front[-1]["int8_val_accuracy"]:
            front.append(row)
    return front


def measured(study, folder: Path) -> list[dict]:
    """One row per COMPLETE trial that was measured (not refused before training)."""
    from optuna.trial import TrialState

    return [
        _row(t, folder)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "int8_val_accuracy" in t.user_attrs
    ]


def write(
    study,
    spec: SearchSpec,
    data: Dataset,
    view: Dataset,
    folder: Path,
    trials: int,
    rows: list[dict],
    chosen: dict | None,
    confirmed: list[dict],
) -> dict:
    """Write ``search.json`` and ``search_pareto.png``; show the front; return the result."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    front = pareto_front([row for row in rows if row["within_budget"]])
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
        "confirmed": confirmed,
        "chosen": chosen,
        "measured": sorted(rows, key=lambda r: r["trial"]),
        "study": str(folder / "study.db"),
        "plot": str(folder / "search_pareto.png"),
    }
    _plot(rows, front, chosen, spec, folder / "search_pareto.png")
    fileio.write_json(folder / "search.json", result)
    _show(result)
    return result


def _row(trial, folder: Path) -> dict:
    attrs, params = trial.user_attrs, trial.params
    return {
        "trial": trial.number,
        "layers": attrs["layers"],
        "activations": attrs["activations"],
        "inputs_used": attrs.get("inputs_used"),
        "input_use": params.get("input_use"),
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
        "params": dict(params),
    }


def _plot(rows, front, chosen, spec: SearchSpec, out: Path) -> Path:
    """int8 validation accuracy vs flash: every measured trial, the front, target, budget."""
    from matplotlib.figure import Figure

    from ..plots import plain_text

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
                _label(r),
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
            label=f"chosen {_label(chosen)}",
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
    ax.set_title(f"{plain_text(spec.dataset)}: the smallest network that does the job")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    from ..plots import PNG_SOFTWARE  # marks it denselab's: a rerun may redraw it

    return fileio.write_with(
        out,
        lambda tmp: figure.savefig(tmp, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE}),
    )


def _label(row: dict) -> str:
    """``784-20-10``, and how many inputs it reads when that is fewer than all."""
    n_inputs = int(row["layers"].split("-")[0])
    used = row.get("inputs_used")
    return row["layers"] if used in (None, n_inputs) else f"{row['layers']} ({used} read)"


def _show(result: dict) -> None:
    rows = [
        (
            r["trial"],
            r["layers"],
            r["inputs_used"],
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
        [
            "trial",
            "layers",
            "inputs read",
            "activations",
            "flash",
            "RAM",
            "int8 acc",
            "epochs",
            "lr",
            "batch",
        ],
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
        f"{chosen['int8_test_accuracy']:.4f} test: {verdict}. Run folder: "
        f"{report.plain(chosen['run'])} (denselab deploy {report.plain(chosen['run'])} --out fw)"
    )
