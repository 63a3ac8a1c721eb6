"""The search on a Ray cluster: Ray Tune runs the trials, Optuna (in ``study.db``) proposes them.

``OptunaSearch`` asks the same SQLite study the local runner uses, with the same sampler
and search space; ``MedianStoppingRule`` is the local median pruner in Ray's terms; every
worker runs :func:`ray_trainable` (the same :func:`.trial.run_trial`), one trial per CPU.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from ..data import Dataset
from ..errors import DenselabError
from .runners import STUDY_NAME, open_storage, prepare_worker, sampler
from .trial import (
    MEASUREMENTS,
    PRUNE_AFTER_EPOCHS,
    PRUNE_AFTER_TRIALS,
    SearchSpec,
    run_trial,
    suggest,
)


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Refuse, in one line and within ``timeout`` seconds, a ``HOST:PORT`` where nothing
    listens: Ray itself would retry for minutes, printing a warning a second."""
    import socket

    if address in ("local", "auto") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DenselabError(f"--ray {address!r}: give HOST:PORT, 'auto' or 'local'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise DenselabError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def run_on_ray(
    storage_url: str,
    spec: SearchSpec,
    view: Dataset,
    remaining: int,
    total: int,
    workers: int,
    address: str,
    bar,
) -> None:
    """Run ``remaining`` trials of the study on Ray, at most ``workers`` at once.

    address : ``"local"`` starts a Ray instance here with ``workers`` CPUs (and stops it
        after); anything else is passed to ``ray.init(address=...)``, e.g. ``"auto"`` or
        ``"10.0.0.5:6379"``. When Ray is already initialized, that session is used.
    """
    check_ray_address(address)
    try:
        import ray
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
    except ImportError:
        raise DenselabError("--ray needs Ray Tune: pip install 'ray[tune]'") from None

    started = not ray.is_initialized()
    if started:
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        try:
            if address == "local":
                ray.init(num_cpus=workers, **options)
            else:
                ray.init(address=address, **options)
        except ConnectionError as error:
            raise DenselabError(f"cannot reach the Ray cluster at {address}: {error}") from None
    try:
        searcher = _recording_optuna_search(
            space=functools.partial(suggest, epochs_max=spec.epochs_max, max_width=spec.max_width),
            metric="score",
            mode="min",
            sampler=sampler(spec.seed + 1000 * (total - remaining), total),
            study_name=STUDY_NAME,
            storage=open_storage(storage_url),
        )
        scheduler = _median_stopping_rule(
            time_attr="training_iteration",
            metric="score",
            mode="min",
            grace_period=PRUNE_AFTER_EPOCHS + 1,
            min_samples_required=PRUNE_AFTER_TRIALS,
        )
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(ray_trainable, spec=spec, view=view), {"cpu": 1}
            ),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=workers),
                scheduler=scheduler,
                num_samples=remaining,
                reuse_actors=True,  # TensorFlow is imported once per worker, not per trial
            ),
            run_config=tune.RunConfig(
                name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(Path(spec.trials_folder).parent / "ray"),
                verbose=0,
                callbacks=[_progress(bar)],
            ),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()


def ray_trainable(config: dict, spec: SearchSpec, view: Dataset) -> None:
    """One trial as a Ray Tune function trainable: one ``tune.report`` per epoch, then the
    final score with the measurements."""
    from ray import tune

    prepare_worker()
    on_epoch = lambda epoch, intermediate: tune.report({"score": intermediate})  # noqa: E731
    result = run_trial(int(config["number"]), config, view, spec, on_epoch)
    if result is not None:
        value, measurements = result
        tune.report({"score": value, "final": True, **measurements})


def _median_stopping_rule(**options):
    """Ray's ``MedianStoppingRule`` (stop a trial worse than the median of the others, as the
    local runner's Optuna ``MedianPruner``), without its pauses.

    Where it has too few trials to judge one and another trial waits, Ray's rule pauses the
    one it cannot judge, to let the other run. A paused trial of a function (no checkpoint)
    later runs again from its first epoch: twice the work, its epochs reported twice (Optuna
    warns and ignores them), and, paused at its final report, a finished trial trained
    again. Here a trial that cannot be judged yet runs on.
    """
    from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

    class MedianStoppingRuleNoPauses(MedianStoppingRule):
        def _on_insufficient_samples(self, tune_controller, trial, time):
            return TrialScheduler.CONTINUE

    return MedianStoppingRuleNoPauses(**options)


def _recording_optuna_search(**options):
    """Ray's ``OptunaSearch``, recording as the local runner records.

    A finished trial's measurements become the Optuna trial's user attributes; a trial
    stopped before its final report is PRUNED, not COMPLETE with a half-trained score.
    """
    from ray.tune.search.optuna import OptunaSearch

    class RecordingOptunaSearch(OptunaSearch):
        def on_trial_complete(self, trial_id, result=None, error=False):
            if result and result.get("final") and trial_id in self._ot_trials:
                for key in MEASUREMENTS:
                    if key in result:
                        self._ot_trials[trial_id].set_user_attr(key, result[key])
            else:
                result = None
            super().on_trial_complete(trial_id, result=result, error=error)

    return RecordingOptunaSearch(**options)


def _progress(bar):
    """A Ray Tune callback that moves denselab's progress bar once per finished trial."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self, bar):
            self.bar = bar

        def __getstate__(self):  # Ray saves its run config; the bar stays in this process
            return {}

        def __setstate__(self, state):
            self.bar = None

        def on_trial_complete(self, iteration, trials, trial, **info):
            if self.bar is not None:
                self.bar.advance(1)

        on_trial_error = on_trial_complete

    return Progress(bar)
