"""The search's answer: the Pareto front of int8 accuracy vs flash, and the chosen model.

Written to the search folder as ``search.json``, ``search_pareto.png`` and ``chosen/``: the
chosen trial's recipe, confirmed by cross-validation, retrained on the whole training split
and measured on the test split (``metrics.json``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import _io, report
from ._search_trial import SearchSpec
from .data import Dataset

CONFIRM_FOLDS = 5  # cross-validation folds that confirm a chosen network's accuracy
CONFIRM_MAX = 3  # networks that met the target which are cross-validated, smallest first


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
    chosen, confirmed = _choose(feasible, spec, data, view)
    if chosen is not None:
        chosen = {**chosen, **_keep_chosen(chosen, spec, data, view, folder)}
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
    _io.write_json(folder / "search.json", result)
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


def _choose(
    feasible: list[dict], spec: SearchSpec, data: Dataset, view: Dataset
) -> tuple[dict | None, list[dict]]:
    """``(chosen, confirmed)``: the smallest network whose accuracy holds up, and the checks.

    A trial's validation part is small (800 samples on mnist-5k: +-1 point of noise), so
    the smallest trial that met the target may have been lucky. Those that met it are
    cross-validated, smallest first, on the whole training split (CONFIRM_FOLDS folds, the
    test split untouched); the first whose mean int8 accuracy still meets the target is
    chosen. If none of the CONFIRM_MAX checked does, the one with the best cross-validated
    accuracy is chosen; if no trial met the target at all, the most accurate trial.
    """
    meeting = sorted(
        (row for row in feasible if row["int8_val_accuracy"] >= spec.target_accuracy),
        key=lambda r: (r["flash_bytes"], -r["int8_val_accuracy"]),
    )
    confirmed: list[dict] = []
    candidates = meeting[:CONFIRM_MAX]
    if candidates:
        with report.progress(f"cross-validating ({CONFIRM_FOLDS} folds)", len(candidates)) as bar:
            for row in candidates:
                accuracy = _cross_validate(row, spec, data, view)
                confirmed.append(
                    {
                        "trial": row["trial"],
                        "layers": row["layers"],
                        "flash_bytes": row["flash_bytes"],
                        "int8_val_accuracy": row["int8_val_accuracy"],
                        "int8_cv_accuracy": accuracy,
                    }
                )
                bar.advance(1, status=f"{row['layers']}: {accuracy:.3f}")
                if accuracy >= spec.target_accuracy:
                    return {**row, "int8_cv_accuracy": accuracy, "meets_target": True}, confirmed
        best = max(confirmed, key=lambda r: (r["int8_cv_accuracy"], -r["flash_bytes"]))
        row = next(r for r in candidates if r["trial"] == best["trial"])
        return {**row, "int8_cv_accuracy": best["int8_cv_accuracy"], "meets_target": False}, (
            confirmed
        )
    if feasible:
        row = max(feasible, key=lambda r: (r["int8_val_accuracy"], -r["flash_bytes"]))
        return {**row, "meets_target": False}, confirmed
    return None, confirmed


def _cross_validate(row: dict, spec: SearchSpec, data: Dataset, view: Dataset) -> float:
    """Mean int8 accuracy (C engine) of ``row``'s recipe over CONFIRM_FOLDS folds of the
    training split; the inputs read are the trial's own, so the flash is the trial's."""
    from ._search_trial import _measure, _ship, train_candidate, used_inputs

    used = used_inputs(view.x_train, float(row["params"].get("input_use", 0.0)))
    # another stream than validation_view's, so that no fold is the part that picked it
    order = np.random.default_rng([spec.seed, 1]).permutation(len(data.x_train))
    correct = 0
    for fold in np.array_split(order, CONFIRM_FOLDS):
        fit = np.setdiff1d(order, fold)
        part = Dataset(
            data.name,
            data.x_train[fit],
            data.y_train[fit],
            data.x_train[fold],
            data.y_train[fold],
            data.task,
            data.source,
            data.class_names,
        )
        trained = train_candidate(row["params"], part, used, spec)
        if trained is None:  # diverged on this fold: it counts as no correct answers
            continue
        int8_tflite, engine = _ship(trained[0], part)
        correct += round(_measure(int8_tflite, engine, part)["int8_val_accuracy"] * len(fold))
    return correct / len(order)


def _keep_chosen(chosen: dict, spec: SearchSpec, data: Dataset, view: Dataset, folder: Path):
    """Retrain the chosen recipe on the whole training split (as scikit-learn's ``refit``),
    save it as ``out/chosen`` (a normal run folder) and measure it on the test split.

    If the retrained network diverges or no longer fits the budgets (an input whose weights
    all rounded to 0 in the trial may not in the refit), the trial's own model is kept.
    """
    from ._search_trial import _save, _ship, train_candidate, used_inputs
    from .model import load_model

    used = used_inputs(view.x_train, float(chosen["params"].get("input_use", 0.0)))
    with report.progress("retraining the chosen on the whole training split", 1) as bar:
        trained = train_candidate(chosen["params"], data, used, spec)
        bar.advance(1)
    staging = folder / ".chosen-partial"
    shutil.rmtree(staging, ignore_errors=True)
    if trained is not None:
        model, config, history = trained
        int8_tflite, engine = _ship(model, data)
        tested = _test(chosen, model, int8_tflite, engine, data)
        if not spec.over_budget(tested["flash_bytes"], tested["ram_bytes"]):
            measurements = {**tested, "int8_val_accuracy": chosen["int8_val_accuracy"]}
            _save(staging, model, config, history, data, measurements, int8_tflite)
            note = (
                f"retrained on the whole training split ({len(data.x_train):,}) after the "
                f"search; val_* metrics are on the test split ({len(data.x_test):,})"
            )
            test_split = f"the test split ({len(data.x_test):,} samples)"
            return _install(chosen, staging, folder, tested, note, validation=test_split)
    report.warn(
        f"trial {chosen['trial']}'s recipe "
        + ("diverged" if trained is None else "went over the budget")
        + " when retrained on the whole training split; keeping the trial's own model"
    )
    from .compile import generate_c

    shutil.copytree(chosen["run"], staging)
    int8_tflite = (staging / "model_int8.tflite").read_bytes()
    tested = _test(chosen, load_model(staging), int8_tflite, generate_c(int8_tflite), data)
    return _install(chosen, staging, folder, tested, "the search trial's model, not retrained")


def _test(chosen: dict, model, int8_tflite: bytes, engine: dict, data: Dataset) -> dict:
    """The C engine's int8 and Keras's float accuracy on the test split; flash and RAM."""
    from .deploy import quantize_inputs
    from .verify import c_engine_invoke, c_engine_size

    outputs = c_engine_invoke(engine, quantize_inputs(int8_tflite, data.x_test))
    keras_outputs = model.predict(data.x_test, verbose=0, batch_size=1024)
    size = c_engine_size(engine)
    return {
        "int8_test_accuracy": float(np.mean(outputs.argmax(axis=1) == data.y_test)),
        "keras_test_accuracy": float(np.mean(keras_outputs.argmax(axis=1) == data.y_test)),
        "test_samples": len(data.x_test),
        "flash_bytes": size["flash_bytes"],
        "ram_bytes": size["ram_bytes"],
        "trial_flash_bytes": chosen["flash_bytes"],
    }


def _install(
    chosen: dict, staging: Path, folder: Path, tested: dict, note: str, validation: str = ""
) -> dict:
    """Add ``tested`` to the run folder ``staging``'s metrics, then make it ``out/chosen``."""
    tested = {**tested, "chosen_model": note}
    metrics = json.loads((staging / "metrics.json").read_text())
    metrics.update(tested, search_trial=chosen["trial"])
    if validation:  # what Keras's validation data was, when it was not the trial's
        metrics["validation"] = validation
    _io.write_json(staging / "metrics.json", metrics)
    target, retired = folder / "chosen", folder / ".chosen-old"
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
    ax.set_title(f"{spec.dataset}: the smallest network that does the job")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _io.write_with(out, lambda tmp: figure.savefig(tmp, format="png", dpi=100))


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
        f"{chosen['int8_test_accuracy']:.4f} test: {verdict}. Run folder: {chosen['run']} "
        f"(denselab deploy {chosen['run']} --out fw)"
    )
