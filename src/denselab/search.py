"""Search: the smallest dense network that reaches a target accuracy and fits the budgets.

Optuna's TPE sampler proposes networks (1-3 hidden layers, widths, activations the C engine
runs, which rarely non-zero inputs to ignore, learning rate, batch size, epochs); each trial
trains with Keras, ships to int8 C and is scored on a validation part held out of the
*training* split (see :mod:`denselab._search_trial` for the score). Hopeless trials are
pruned from their learning curves (median rule). Trials run in local worker processes sharing
one SQLite study, or on a Ray cluster with Ray Tune; the study lives in ``out/study.db``, so
rerunning the same command after Ctrl-C continues where it stopped.

The answer is the Pareto front of int8 accuracy vs flash (``search.json``, a table and
``search_pareto.png``) and the chosen model, a normal run folder ``out/chosen`` that
``denselab deploy`` takes: the smallest flash that meets the target within the budgets, else
the most accurate within them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from . import _io, report
from ._search_result import pareto_front, summarize
from ._search_trial import (
    INPUT_USE,
    WIDTHS,
    SearchSpec,
    _storage,
    flash_estimate,
    optuna_worker,
    used_inputs,
    widest_layer,
)
from .data import Dataset, load_dataset
from .errors import DenselabError

__all__ = ["search", "validation_view", "pareto_front"]

STUDY_NAME = "denselab-search"
VALIDATION_FRACTION = 0.2  # of the training split, held out to score trials
EPOCHS_MAX = 30
LESSON_WIDTH = 20  # the lesson's hidden layer: the starting width when there is no budget
STARTING_INPUT_USE = (0.0, 0.05, 0.1, 0.2)  # one starting trial per level of input pruning
_SETTINGS = ("dataset", "target_accuracy", "max_flash", "max_ram", "epochs_max", "seed")


def search(
    dataset: str,
    target_accuracy: float,
    max_flash: int | None = None,
    max_ram: int | None = None,
    trials: int = 30,
    out: str | Path = "search",
    ray_address: str | None = None,
    workers: int = 2,
    seed: int = 0,
    epochs_max: int = EPOCHS_MAX,
) -> dict:
    """Search for the smallest network with int8 validation accuracy >= ``target_accuracy``.

    Parameters
    ----------
    dataset : a classification dataset name or file, as :func:`denselab.data.load_dataset`.
    target_accuracy : in (0, 1], of the int8 C engine on the validation part.
    max_flash, max_ram : budgets in bytes of the C engine (Cortex-M4 ``size``); None: none.
    trials : the study's total; a rerun on the same ``out`` only runs the ones missing.
    out : folder for ``study.db``, ``trials/NNNN`` run folders, ``chosen/``, ``search.json``
        and ``search_pareto.png``.
    ray_address : None runs ``workers`` local processes; ``"local"`` starts a Ray instance on
        this machine with ``workers`` CPUs; ``"HOST:PORT"`` (or ``"auto"``) joins a cluster.
    workers : trials run at once (local processes, or Ray's concurrency limit).

    Returns the content of ``search.json``: ``pareto_front``, ``chosen``, ``trials`` ...
    """
    _check_arguments(target_accuracy, max_flash, max_ram, trials, workers, epochs_max)
    data = load_dataset(dataset)
    if data.task != "classification":
        raise DenselabError(f"search needs a classification dataset; {data.name} is regression")
    view = validation_view(data, VALIDATION_FRACTION, seed)
    folder = _io.ensure_dir(out).resolve()
    # the fewest inputs a trial may read: the widest first layer the flash leaves room for
    n_inputs = int(used_inputs(view.x_train, max(INPUT_USE)).sum()) or 1
    max_width = widest_layer(n_inputs, max_flash)
    if max_width < WIDTHS[0]:
        raise DenselabError(
            f"--max-flash {max_flash:,} bytes cannot hold even {WIDTHS[0]} neurons on "
            f"{n_inputs} inputs ({WIDTHS[0] * n_inputs:,} bytes of int8 weights)"
        )
    spec = SearchSpec(
        data.name,
        target_accuracy,
        max_flash,
        max_ram,
        epochs_max,
        seed,
        str(folder / "trials"),
        max_width,
    )
    storage_url = f"sqlite:///{folder / 'study.db'}"
    study = _open_study(storage_url, spec, starting_points(spec, view))
    done = _n_finished(study)
    remaining = max(0, trials - done)
    budgets = ", ".join(
        f"{name} <= {value:,} bytes"
        for name, value in (("flash", max_flash), ("RAM", max_ram))
        if value is not None
    )
    report.say(
        f"searching {data.name} for int8 accuracy >= {target_accuracy:.3f}"
        f"{' with ' + budgets if budgets else ''}: {remaining} of {trials} trials to run "
        f"({done} already in {folder / 'study.db'}); {len(view.x_train):,} samples to fit, "
        f"{len(view.x_test):,} held out of the training split to score"
    )
    if remaining:
        with report.progress("trials", trials) as bar:
            bar.advance(done)
            try:
                if ray_address:
                    from ._search_ray import run_on_ray

                    run_on_ray(
                        storage_url,
                        STUDY_NAME,
                        spec,
                        view,
                        remaining,
                        trials,
                        workers,
                        ray_address,
                        bar,
                    )
                else:
                    _run_locally(study, storage_url, spec, view, remaining, workers, bar)
            except KeyboardInterrupt:
                report.warn(
                    f"interrupted after {_n_finished(study)} of {trials} trials; rerun the "
                    "same command to continue"
                )
                raise
            finally:
                _fail_unfinished(study, _storage(storage_url))
    return summarize(study, spec, data, view, folder, trials)


def validation_view(data: Dataset, fraction: float, seed: int) -> Dataset:
    """The training split cut in two: ``x_train`` to fit, ``x_test`` a held-out part to score.

    The dataset's test split is not touched, so the chosen model's test accuracy is honest.
    """
    order = np.random.default_rng(seed).permutation(len(data.x_train))
    n_validation = max(1, round(len(order) * fraction))
    held_out, fit = order[:n_validation], order[n_validation:]
    return Dataset(
        data.name,
        data.x_train[fit],
        data.y_train[fit],
        data.x_train[held_out],
        data.y_train[held_out],
        data.task,
        f"{data.source}; {n_validation:,} training samples held out for validation",
        data.class_names,
    )


# --- the study -----------------------------------------------------------------------------


def starting_points(spec: SearchSpec, view: Dataset) -> list[dict]:
    """The first trials: the lesson's recipe (one relu layer, Adam 2e-3, batch 32) at each
    level of input pruning, as wide as the flash budget allows (else the lesson's 20).

    A known-good start that TPE then shrinks from, instead of 10 random guesses alone.
    """
    from .train import DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE

    points = []
    for input_use in STARTING_INPUT_USE:
        n_used = int(used_inputs(view.x_train, input_use).sum())
        width = LESSON_WIDTH
        if spec.max_flash is not None:
            fits = (
                w
                for w in range(spec.max_width, WIDTHS[0] - 1, -1)
                if flash_estimate(n_used, [w, view.n_classes])[1] <= spec.max_flash
            )
            width = next(fits, WIDTHS[0])
        points.append(
            {
                "n_hidden": 1,
                "units_1": min(width, spec.max_width),
                "activation_1": "relu",
                "input_use": input_use,
                "learning_rate": DEFAULT_LEARNING_RATE,
                "batch_size": DEFAULT_BATCH_SIZE,
                "epochs": spec.epochs_max,
            }
        )
    return points


def _open_study(storage_url: str, spec: SearchSpec, first_trials: list[dict] = ()):
    """Create ``study.db`` (with ``first_trials`` queued), or reopen it when its settings are
    these; end stale trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(storage_url)
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="minimize", load_if_exists=True
    )
    settings = {name: getattr(spec, name) for name in _SETTINGS}
    saved = study.user_attrs.get("settings")
    if saved is None:  # queue first: settings saved means the queue is complete
        for params in first_trials:
            study.enqueue_trial(params, skip_if_exists=True)
        study.set_user_attr("settings", settings)
    elif saved != settings:
        changed = ", ".join(
            f"{k} {saved[k]} -> {settings[k]}"
            for k in _SETTINGS
            if k in saved and saved[k] != settings[k]
        )
        raise DenselabError(
            f"{storage_url[10:]} holds a search with other settings ({changed}); "
            "rerun with the same settings to continue it, or choose another --out"
        )
    _fail_unfinished(study, storage)
    return study


def _fail_unfinished(study, storage) -> None:
    """Trials left RUNNING by a killed worker are FAIL, so the rerun samples them again.
    (Queued WAITING trials stay queued: the rerun runs them.)"""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _n_finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


# --- runner 1: local worker processes sharing the SQLite study ------------------------------


def _run_locally(study, storage_url, spec, view, remaining, workers, bar) -> None:
    """``workers`` spawned processes, each ``study.optimize`` on its share of the trials.

    Each process imports TensorFlow once (about 7 s) and then runs many trials.
    """
    from .verify import _require

    _require("gcc")  # every trial compiles the C engine; fail before starting anything
    context = multiprocessing.get_context("spawn")  # fork after JAX starts its threads is unsafe
    errors = context.SimpleQueue()
    done = _n_finished(study)
    total = done + remaining
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    processes = [
        context.Process(
            target=optuna_worker,
            args=(storage_url, STUDY_NAME, spec, view, share, spec.seed + 1000 * done + i, total),
            kwargs={"errors": errors},
            name=f"denselab-search-{i}",
            daemon=True,  # never outlive the search
        )
        for i, share in enumerate(shares)
        if share
    ]
    for process in processes:
        process.start()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` stops the workers too, as Ctrl-C does
        previous = {
            signum: signal.signal(signum, _raise_keyboard_interrupt)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
    _interrupted.clear()
    try:
        while any(process.is_alive() for process in processes):
            time.sleep(1.0)
            if _interrupted.is_set():  # raised inside a library that swallowed it
                raise KeyboardInterrupt
            finished = _n_finished(study)
            bar.advance(finished - done, status=_best_status(study))
            done = finished
        if _interrupted.is_set():  # the workers stopped on the same Ctrl-C: so do we
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        _stop(processes)
        raise
    finally:
        if main_thread:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if not errors.empty():
        raise DenselabError(f"a search worker failed: {errors.get()}")


_interrupted = threading.Event()


def _raise_keyboard_interrupt(signum, frame):
    """Ctrl-C or `kill`: raise KeyboardInterrupt, and remember it, because a library in the
    middle of a database call may catch it; the loop above then raises it again."""
    _interrupted.set()
    raise KeyboardInterrupt


def _stop(processes) -> None:
    """Ctrl-C each worker (its trial ends as FAIL), then SIGTERM any that do not stop."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.terminate()
            process.join()


def _best_status(study) -> str:
    from optuna.trial import TrialState

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "int8_val_accuracy" in t.user_attrs
    ]
    if not done:
        return ""
    best = min(done, key=lambda t: t.value)
    return (
        f"best {best.user_attrs['layers']}: {best.user_attrs['int8_val_accuracy']:.3f}, "
        f"{best.user_attrs['flash_bytes']:,} B"
    )


def _check_arguments(target_accuracy, max_flash, max_ram, trials, workers, epochs_max) -> None:
    if not 0.0 < target_accuracy <= 1.0:
        raise DenselabError(f"--target-accuracy must be in (0, 1], not {target_accuracy}")
    for name, value in (("--max-flash", max_flash), ("--max-ram", max_ram)):
        if value is not None and value < 1:
            raise DenselabError(f"{name} must be a positive number of bytes")
    if trials < 1 or workers < 1 or epochs_max < 1:
        raise DenselabError("--trials, --workers and the maximum epochs must be at least 1")
