"""Choose the answer among the trials: cross-validate the smallest that met the target, refit it.

A trial is scored on one validation part held out of the training split, small enough to
flatter a lucky network, so the trials that met the target are cross-validated on the whole
training split, smallest first (:func:`choose`). The chosen recipe is then retrained on the
whole training split (as scikit-learn's ``refit``) and measured once on the test split,
which nothing before touched: ``out/chosen``, a normal run folder (:func:`keep_chosen`).
Both retrain on purpose; everything else reuses the trials' own run folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .. import fileio, folders, report
from ..data import Dataset
from . import trial
from .trial import SearchSpec

CONFIRM_FOLDS = 5  # cross-validation folds that confirm a chosen network's accuracy
CONFIRM_MAX = 3  # networks that met the target which are cross-validated, smallest first


def choose(
    feasible: list[dict],
    spec: SearchSpec,
    data: Dataset,
    view: Dataset,
    folder: Path,
    force: bool = False,
) -> tuple[dict | None, list[dict]]:
    """``(chosen, confirmed)``: the chosen trial's row with its refit's numbers (or None when
    no trial finished within the budgets), and the cross-validation checks."""
    chosen, confirmed = _pick(feasible, spec, data, view)
    if chosen is not None:
        chosen = {**chosen, **keep_chosen(chosen, spec, data, view, folder, force=force)}
    return chosen, confirmed


def _pick(
    feasible: list[dict], spec: SearchSpec, data: Dataset, view: Dataset
) -> tuple[dict | None, list[dict]]:
    """The smallest network whose accuracy holds up, and the checks.

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
                accuracy = cross_validate(row, spec, data, view)
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


def cross_validate(row: dict, spec: SearchSpec, data: Dataset, view: Dataset) -> float:
    """Mean int8 accuracy (C engine) of ``row``'s recipe over CONFIRM_FOLDS folds of the
    training split; the inputs read are the trial's own, so the flash is the trial's."""
    used = trial.used_inputs(view.x_train, float(row["params"].get("input_use", 0.0)))
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
        trained = trial.train_candidate(row["params"], part, used, spec)
        if trained is None:  # diverged on this fold: it counts as no correct answers
            continue
        int8_tflite, engine = trial.ship(trained[0], part)
        accuracy = trial.measure_candidate(int8_tflite, engine, part)["int8_val_accuracy"]
        correct += round(accuracy * len(fold))
    return correct / len(order)


def keep_chosen(
    chosen: dict,
    spec: SearchSpec,
    data: Dataset,
    view: Dataset,
    folder: Path,
    force: bool = False,
):
    """Retrain the chosen recipe on the whole training split (as scikit-learn's ``refit``),
    save it as ``out/chosen`` (a normal run folder) and measure it on the test split.

    If the retrained network diverges or no longer fits the budgets (an input whose weights
    all rounded to 0 in the trial may not in the refit), the trial's own model is kept.
    ``out/chosen`` is written as one transaction: it is wholly the previous chosen model or
    wholly this one, and a ``chosen/`` holding files denselab did not write is refused unless
    ``force`` (they are then kept).
    """
    from ..engine import generate_c
    from ..model import load_model

    target = folder / "chosen"
    folders.output_folder(target, "run", force)  # before the retraining, not after it
    used = trial.used_inputs(view.x_train, float(chosen["params"].get("input_use", 0.0)))
    with report.progress("retraining the chosen on the whole training split", 1) as bar:
        trained = trial.train_candidate(chosen["params"], data, used, spec)
        bar.advance(1)
    with folders.folder_transaction(target, "run", force=force) as staging:
        if trained is not None:
            model, config, history = trained
            int8_tflite, engine = trial.ship(model, data)
            tested = _test(chosen, model, int8_tflite, engine, data)
            if not spec.over_budget(tested["flash_bytes"], tested["ram_bytes"]):
                measurements = {**tested, "int8_val_accuracy": chosen["int8_val_accuracy"]}
                trial.write_trial(staging, model, config, history, data, measurements, int8_tflite)
                note = (
                    f"retrained on the whole training split ({len(data.x_train):,}) after the "
                    f"search; val_* metrics are on the test split ({len(data.x_test):,})"
                )
                test_split = f"the test split ({len(data.x_test):,} samples)"
                return _install(chosen, staging, target, tested, note, validation=test_split)
        report.warn(
            f"trial {chosen['trial']}'s recipe "
            + ("diverged" if trained is None else "went over the budget")
            + " when retrained on the whole training split; keeping the trial's own model"
        )
        ignore = shutil.ignore_patterns(folders.MANIFEST)
        shutil.copytree(chosen["run"], staging, dirs_exist_ok=True, ignore=ignore)
        int8_tflite = (staging / "model_int8.tflite").read_bytes()
        tested = _test(chosen, load_model(staging), int8_tflite, generate_c(int8_tflite), data)
        return _install(chosen, staging, target, tested, "the search trial's model, not retrained")


def _test(chosen: dict, model, int8_tflite: bytes, engine: dict, data: Dataset) -> dict:
    """The C engine's int8 and Keras's float accuracy on the test split; flash and RAM."""
    from ..verify import measure

    with trial.quietly():
        measured = measure(int8_tflite, engine, data, model=model, oracle=False)
    return {
        "int8_test_accuracy": measured["c_int8_accuracy"],
        "keras_test_accuracy": measured["keras_accuracy"],
        "test_samples": measured["test_samples"],
        "flash_bytes": measured["flash_bytes"],
        "ram_bytes": measured["ram_bytes"],
        "trial_flash_bytes": chosen["flash_bytes"],
    }


def _install(
    chosen: dict, staging: Path, target: Path, tested: dict, note: str, validation: str = ""
) -> dict:
    """Add ``tested`` to the run folder ``staging``'s metrics (it becomes ``target``,
    ``out/chosen``, when its transaction ends)."""
    tested = {**tested, "chosen_model": note}
    metrics = json.loads((staging / "metrics.json").read_text())
    metrics.update(tested, search_trial=chosen["trial"])
    if validation:  # what Keras's validation data was, when it was not the trial's
        metrics["validation"] = validation
    fileio.write_json(staging / "metrics.json", metrics)
    return {**tested, "run": str(target), "trial_run": chosen["run"]}
