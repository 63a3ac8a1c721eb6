"""The study and its local runner: worker processes sharing one SQLite Optuna study.

``study.db`` holds the search (:func:`open_study`): its settings, the queued starting
points and every trial. Both runners ask it for candidates with the same TPE sampler
(:func:`sampler`); here ``workers`` spawned processes each run ``study.optimize`` with the
median pruner (:func:`pruner`), and :mod:`.ray` runs the same trials on Ray Tune.

Ctrl-C and ``kill`` go through :mod:`denselab.interrupts`, as everywhere in denselab: the
parent stops its workers, each worker ends its trial in progress as FAIL (so a rerun of the
same command repeats it) and the parent raises KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time

from .. import interrupts, report
from ..data import Dataset
from ..errors import DenselabError
from .trial import PRUNE_AFTER_EPOCHS, PRUNE_AFTER_TRIALS, SearchSpec, run_trial, suggest

STUDY_NAME = "denselab-search"
SETTINGS = ("dataset", "target_accuracy", "max_flash", "max_ram", "epochs_max", "seed")


# --- the study -----------------------------------------------------------------------------


def open_study(storage_url: str, spec: SearchSpec, first_trials: list[dict] = ()):
    """Create ``study.db`` (with ``first_trials`` queued), or reopen it when its settings are
    these; end stale trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url)
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="minimize", load_if_exists=True
    )
    settings = {name: getattr(spec, name) for name in SETTINGS}
    saved = study.user_attrs.get("settings")
    if saved is None:  # queue first: settings saved means the queue is complete
        for params in first_trials:
            study.enqueue_trial(params, skip_if_exists=True)
        study.set_user_attr("settings", settings)
    elif saved != settings:
        changed = ", ".join(
            f"{k} {saved[k]} -> {settings[k]}"
            for k in SETTINGS
            if k in saved and saved[k] != settings[k]
        )
        raise DenselabError(
            f"{storage_url[10:]} holds a search with other settings ({changed}); "
            "rerun with the same settings to continue it, or choose another --out"
        )
    fail_unfinished(study, storage)
    return study


def fail_unfinished(study, storage) -> None:
    """Trials left RUNNING by a killed worker are FAIL, so the rerun samples them again.
    (Queued WAITING trials stay queued: the rerun runs them.)"""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def n_finished(study) -> int:
    """Trials that count towards ``--trials``: COMPLETE and PRUNED."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def open_storage(url: str):
    """The SQLite study; two processes write one file, so wait for the lock, not fail."""
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def sampler(seed: int, n_trials: int):
    """TPE: random for the first few trials, then the density-ratio model of good vs bad."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 3)))


def pruner():
    """Stop a trial whose running score is worse than the median of the others' at that epoch."""
    import optuna

    return optuna.pruners.MedianPruner(PRUNE_AFTER_TRIALS, PRUNE_AFTER_EPOCHS)


# --- the local runner ----------------------------------------------------------------------


def run_locally(study, storage_url, spec, view, remaining, workers, bar) -> None:
    """``workers`` spawned processes, each ``study.optimize`` on its share of the trials.

    Each process imports TensorFlow once (about 7 s) and then runs many trials.
    """
    from ..engine.host import require_tool

    require_tool("gcc")  # every trial compiles the C engine; fail before starting anything
    context = multiprocessing.get_context("spawn")  # fork after JAX starts its threads is unsafe
    errors = context.SimpleQueue()
    done = n_finished(study)
    total = done + remaining
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    processes = [
        context.Process(
            target=optuna_worker,
            args=(storage_url, spec, view, share, spec.seed + 1000 * done + i, total),
            kwargs={"errors": errors, "parent": os.getpid()},
            name=f"denselab-search-{i}",
            daemon=True,  # never outlive the search (and die_with_parent, even after kill -9)
        )
        for i, share in enumerate(shares)
        if share
    ]
    for process in processes:
        process.start()
    with interrupts.stoppable():  # `kill` stops the workers too, as Ctrl-C does
        try:
            while any(process.is_alive() for process in processes):
                time.sleep(1.0)
                interrupts.check()  # raised inside a library that swallowed it
                finished = n_finished(study)
                bar.advance(finished - done, status=_best_status(study))
                done = finished
            interrupts.check()  # the workers stopped on the same Ctrl-C: so do we
        except KeyboardInterrupt:
            _stop(processes)
            raise
    if not errors.empty():
        raise DenselabError(f"a search worker failed: {errors.get()}")


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


# --- a worker ------------------------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """End this worker when the search process ends, even by ``kill -9`` (which runs no
    cleanup, so daemon processes would live on and run every remaining trial): Linux sends
    it SIGKILL then (``PR_SET_PDEATHSIG``), and a thread checks the parent every second
    where that is not available."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent was gone before the line above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="denselab-parent-watch", daemon=True).start()


def prepare_worker() -> None:
    """A worker process (local or Ray): Ctrl-C stops it (:func:`interrupts.install_for_worker`);
    one single-threaded worker per core; Keras (JAX) before TensorFlow; nothing printed."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    interrupts.install_for_worker()
    from ..backend import keras, lean_keras, tensorflow

    lean_keras()
    keras()  # first, so that TensorFlow's import does not make Keras pick its backend
    tensorflow()
    report.quiet(True)


def optuna_worker(
    storage_url: str,
    spec: SearchSpec,
    view: Dataset,
    n_trials: int,
    sampler_seed: int,
    total_trials: int,
    errors,
    parent: int | None = None,
) -> None:
    """A local worker process: ``study.optimize`` for ``n_trials`` on the shared SQLite study.

    Errors go back to the parent through ``errors`` (a queue) as one line; Ctrl-C ends the
    trial in progress as FAIL (Optuna's doing), so a rerun repeats it.
    """
    if parent is not None:
        die_with_parent(parent)
    try:
        import optuna

        prepare_worker()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(
            study_name=STUDY_NAME,
            storage=open_storage(storage_url),
            sampler=sampler(sampler_seed, total_trials),
            pruner=pruner(),
        )

        def objective(trial):
            interrupts.check()
            params = {**suggest(trial, spec.epochs_max, spec.max_width), **trial.params}

            def on_epoch(epoch: int, intermediate: float) -> None:
                trial.report(intermediate, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            result = run_trial(trial.number, params, view, spec, on_epoch)
            if result is None:
                raise optuna.TrialPruned("training diverged")
            value, measurements = result
            for key, measured in measurements.items():
                trial.set_user_attr(key, measured)
            return value

        study.optimize(
            objective,
            n_trials=n_trials,
            gc_after_trial=True,
            callbacks=[lambda study, trial: interrupts.requested() and study.stop()],
        )
    except KeyboardInterrupt:
        pass
    except Exception as error:  # the parent turns it into a DenselabError
        errors.put(f"{type(error).__name__}: {str(error)[:500]}")
        raise SystemExit(1) from None
