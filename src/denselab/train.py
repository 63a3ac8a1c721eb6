"""Lesson 2: train a dense classifier (or regressor) with Keras and save the run to a folder.

:func:`train` builds the network a :class:`TrainConfig` describes and fits it; :func:`resume`
continues an interrupted run; :func:`fit` is the one training loop both use (and the search's
trials): ``model.fit``'s epochs (on JAX, many steps per compiled call: :mod:`denselab.epochs`)
with a callback that keeps the history, stops on a NaN loss, and keeps the last good epoch for
Ctrl-C. The run folder itself is :mod:`denselab.runs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import fileio, folders, interrupts, report
from .backend import keras as _keras
from .backend import set_seed
from .data import Dataset, load_dataset, stand_in_note
from .errors import DenselabError
from .model import build_model, check_model_file
from .runs import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS_PER_EXECUTION,
    Run,
    TrainConfig,
    config_for,
    default_folder,
    default_layers,
    final_metrics,
    read_run,
    write_run,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_SCHEDULE",
    "DEFAULT_STEPS_PER_EXECUTION",
    "Fitted",
    "Run",
    "TrainConfig",
    "compile_model",
    "default_layers",
    "fit",
    "resume",
    "train",
]


@dataclass
class Fitted:
    """What :func:`fit` did: the per-epoch ``history`` (as Keras's ``History.history``), the
    epoch whose loss was NaN (0 if none), and whether Ctrl-C stopped it."""

    history: dict = field(default_factory=dict)
    diverged_at: int = 0
    interrupted: bool = False


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    data: Dataset | None = None,
    plots: bool = True,
    force: bool = False,
) -> Run:
    """Build the model ``config`` describes, fit it with Keras, evaluate it and save the run.

    With ``plots`` (as ``denselab train``), the run's pictures are drawn into the run folder
    too (``run.pictures``: curves, weights, confusion, mistakes, or the line).

    The run folder is written as one transaction (see :func:`denselab.folders.folder_transaction`):
    while training, progress goes to ``history.json`` in the staging folder beside it
    (``.<name>.partial``), and ``out`` is replaced only by the whole finished (or stopped) run.
    A second command on the same ``out`` is refused while this one runs; a folder holding
    files denselab did not write is refused unless ``force``.
    """
    _keras()
    data = data or load_dataset(config.dataset, target=config.target, task=config.task)
    _check_config(config, data)
    set_seed(config.seed)
    model = build_model(data.input_shape, config.units, config.activations, seed=config.seed)
    compile_model(model, config, data)
    folder = Path(out or default_folder(config))
    return _fit_and_save(model, config, data, folder, {}, 0, plots=plots, force=force)


def resume(folder: str | Path, plots: bool = True, force: bool = False) -> Run:
    """Continue an interrupted run from its last completed epoch (weights and optimizer state)."""
    keras = _keras()
    folder = Path(folder)
    config, history = read_run(folder)
    done = len(history.get("loss", []))
    if done >= config.epochs:
        raise DenselabError(f"run {folder} already finished its {config.epochs} epochs")
    data = load_dataset(config.dataset, target=config.target, task=config.task)
    set_seed(config.seed + done)
    check_model_file(folder / "model.keras")  # no code layers, no damaged HDF5 part
    try:
        model = keras.saving.load_model(folder / "model.keras", compile=True, safe_mode=True)
    except Exception as error:
        raise DenselabError(f"cannot resume {folder}: {str(error)[:160]}") from None
    return _fit_and_save(model, config, data, folder, history, done, plots=plots, force=force)


def compile_model(model, config: TrainConfig, data: Dataset) -> None:
    """``model.compile`` with the config's optimizer and learning-rate schedule, the loss and
    metric for the dataset's task, and JAX's jit over ``steps_per_execution`` steps."""
    keras = _keras()
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if config.optimizer not in optimizers:
        raise DenselabError(f"unknown optimizer {config.optimizer!r}; use adam or sgd")
    if config.schedule not in ("cosine", "constant"):
        raise DenselabError(f"unknown schedule {config.schedule!r}; use cosine or constant")
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        steps = config.epochs * -(-len(data.x_train) // config.batch_size)
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    classify = data.task == "classification"
    model.compile(
        optimizer=optimizers[config.optimizer](learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy" if classify else "mean_squared_error",
        metrics=["accuracy"] if classify else ["mae"],
        steps_per_execution=config.steps_per_execution,
        jit_compile=True,
    )


def fit(
    model,
    config: TrainConfig,
    data: Dataset,
    *,
    x_train: np.ndarray | None = None,
    history: dict | None = None,
    initial_epoch: int = 0,
    on_epoch: Callable[[int, dict], None] | None = None,
    history_path: Path | None = None,
) -> Fitted:
    """``model.fit`` on ``data`` (training split; the test split scores each epoch).

    ``x_train`` replaces the training inputs (the search masks inputs it ignores);
    ``history`` continues a resumed run's; ``on_epoch(epoch, logs)`` is called after each
    epoch (1-based) and may raise to stop (a pruner's decision); ``history_path`` is
    rewritten after every epoch, so progress is visible while training. A NaN loss stops
    training (``diverged_at``); Ctrl-C or ``kill`` stop it at the last finished epoch.
    """
    tracker = _epoch_tracker(model, history or {}, on_epoch, history_path)
    x_train = data.x_train if x_train is None else x_train
    interrupted = False
    with interrupts.stoppable():
        try:
            if _keras().backend.backend() == "jax":  # many steps per compiled call: epochs.py
                _fit_compiled(model, config, data, x_train, initial_epoch, tracker)
            else:
                model.fit(
                    x_train,
                    data.y_train,
                    epochs=config.epochs,
                    initial_epoch=initial_epoch,
                    batch_size=config.batch_size,
                    validation_data=(data.x_test, data.y_test),
                    callbacks=[tracker],
                    verbose=0,
                )
        except KeyboardInterrupt:
            interrupted = True
            tracker.restore_last_epoch()
    return Fitted(tracker.history, tracker.diverged, interrupted)


# Work to start on another thread once the first epoch is computing, not before: Python work
# beside the model's set-up and tracing competes with them for the interpreter (about 0.4 s).
_WHEN_TRAINING: list[Callable[[], None]] = []


def _fit_compiled(model, config, data, x_train, initial_epoch, tracker) -> None:
    """``model.fit``'s epochs, run by :class:`~denselab.epochs.CompiledEpochs`; ``tracker``
    sees each epoch's logs, as a Keras callback would."""
    from .epochs import CompiledEpochs

    validation = (data.x_test, data.y_test)
    epochs = CompiledEpochs(
        model, x_train, data.y_train, validation, config.batch_size, config.steps_per_execution
    )
    model.stop_training = False
    started = epochs.start_epoch() if initial_epoch < config.epochs else None
    while _WHEN_TRAINING:  # the first epoch computes; the main thread mostly waits for it
        _WHEN_TRAINING.pop()()
    for epoch in range(initial_epoch, config.epochs):
        # the next epoch computes while this one is recorded; a stop drops it unfinished
        upcoming = epochs.start_epoch(after=started) if epoch + 1 < config.epochs else None
        tracker.on_epoch_end(epoch, epochs.finish_epoch(started))
        if model.stop_training:
            break
        started = upcoming


def _fit_and_save(model, config, data, folder, history, initial_epoch, plots, force) -> Run:
    """Fit, then write the run (and its pictures) into ``folder`` as one transaction."""
    with folders.folder_transaction(folder, "run", force=force) as staging:
        run, stopped = _fit_into(
            model, config, data, folder, staging, history, initial_epoch, plots
        )
    if run.metrics["interrupted"]:
        report.warn(
            f"interrupted after epoch {run.metrics['epochs_done']}; saved to "
            f"{report.plain(folder)}. Continue with: denselab train --resume {report.plain(folder)}"
        )
    if stopped:  # Ctrl-C while drawing the pictures: the run is saved, without them
        raise KeyboardInterrupt
    return run


def _fit_into(model, config, data, folder, staging, history, initial_epoch, plots):
    """``(run, stopped)``: fit, writing progress and then the run into ``staging``; ``stopped``
    when Ctrl-C came while the pictures were drawn (they are left out)."""
    if initial_epoch:
        report.say(
            f"resuming {report.plain(folder)} at epoch {initial_epoch + 1} of {config.epochs}"
        )
    report.say(
        f"training {config.units} on {report.plain(data.name)} ({len(data.x_train):,} train / "
        f"{len(data.x_test):,} test split as validation, from {report.plain(data.source)})"
    )
    if stand_in_note(data.name):
        report.say(stand_in_note(data.name))
    shown = ("loss", "accuracy", "val_accuracy", "mae", "val_mae")
    with report.progress("epochs", config.epochs) as bar:
        bar.advance(initial_epoch)

        def on_epoch(epoch: int, logs: dict) -> None:
            status = "  ".join(f"{k} {logs[k]:.4f}" for k in shown if k in logs)
            bar.advance(1, status=status)

        fitted = fit(
            model,
            config,
            data,
            history=history,
            initial_epoch=initial_epoch,
            on_epoch=on_epoch,
            history_path=staging / "history.json",  # progress, while it trains
        )
    if fitted.diverged_at:  # the transaction ends: the folder stays as it was, or absent
        raise DenselabError(
            f"training diverged at epoch {fitted.diverged_at} (loss is NaN); nothing was saved. "
            "Try a lower --learning-rate"
        )
    done = len(fitted.history.get("loss", []))
    metrics = final_metrics(fitted.history, data.name, done, fitted.interrupted)
    write_run(staging, model, config, fitted.history, metrics)
    pictures, stopped = [], False
    if plots and not fitted.interrupted:
        from .pictures import write_run_plots

        try:
            written = write_run_plots(staging, data=data, model=model)
            pictures = [folder / p.name for p in written]
        except KeyboardInterrupt:
            stopped = True
    _warn_if_poor_fit(metrics, data)
    return Run(folder, model, config, fitted.history, metrics, pictures), stopped


def _warn_if_poor_fit(metrics: dict, data: Dataset) -> None:
    """A regression whose training loss is near its targets' variance learned little: say so."""
    loss, spread = metrics.get("train_loss"), float(np.var(data.y_train))
    if data.task != "regression" or loss is None or spread == 0 or loss < 0.1 * spread:
        return
    hint = (
        "; for line the lesson's recipe (SGD at 0.01, 500 epochs) is the default"
        if data.name == "line"
        else ""
    )
    report.warn(
        f"the fit is poor: training loss {loss:.3g} is {loss / spread:.0%} of the targets' "
        f"variance ({spread:.3g}); try more --epochs or another --learning-rate{hint}"
    )


def _epoch_tracker(model, history: dict, on_epoch, history_path: Path | None):
    """A Keras callback: keeps the history and the last good weights, stops on NaN."""
    keras = _keras()

    class EpochTracker(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = {key: list(values) for key, values in history.items()}
            self.diverged = 0
            self.last_good = _snapshot(model)

        def on_epoch_end(self, epoch, logs=None):
            interrupts.check()  # a Ctrl-C that a library caught on its way up
            logs = logs or {}
            if not np.isfinite(logs.get("loss", 0.0)):
                self.diverged = epoch + 1
                model.stop_training = True
                return
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            self.history.setdefault("epoch_end_unix", []).append(time.time())
            self.last_good = _snapshot(model)
            if history_path is not None:
                fileio.write_json(history_path, self.history)
            if on_epoch is not None:
                on_epoch(epoch + 1, logs)

        def restore_last_epoch(self):
            weights, optimizer_state = self.last_good
            for variable, value in zip(model.weights, weights, strict=True):
                variable.assign(value)
            for variable, value in zip(model.optimizer.variables, optimizer_state, strict=True):
                variable.assign(value)

    return EpochTracker()


def _snapshot(model) -> tuple[list, list]:
    optimizer = getattr(model, "optimizer", None)
    variables = optimizer.variables if optimizer is not None else []
    return [v.numpy() for v in model.weights], [v.numpy() for v in variables]


def _check_config(config: TrainConfig, data: Dataset) -> None:
    if config.epochs < 1 or config.batch_size < 1:
        raise DenselabError("--epochs and --batch-size must be at least 1")
    if data.task == "classification":
        n_out = config.units[-1]
        if n_out != data.n_classes:
            raise DenselabError(
                f"the last layer has {n_out} neurons but {data.name} has {data.n_classes} classes"
            )
        if config.activations[-1] != "softmax":
            raise DenselabError("a classifier's last layer needs the softmax activation")
    elif config.units[-1] != data.n_targets:
        raise DenselabError(
            f"a regression model's last layer needs one neuron per number to predict "
            f"({data.n_targets})"
        )


def train_command(
    dataset: str | None,
    resume_run: str | Path | None = None,
    out: str | Path | None = None,
    plots: bool = True,
    layers: list[int] | None = None,
    activations: list[str] | None = None,
    force: bool = False,
    **options,
) -> dict:
    """``denselab train``: a new run (or resume ``resume_run``), then its pictures; the result dict.

    ``options`` are :class:`TrainConfig` fields (None: the lesson's default). A resumed run
    keeps the settings in its run.json: any other setting given with it is refused.
    """
    from .backend import keras_while

    if resume_run:
        given = [
            flag
            for flag, value in (
                ("DATASET", dataset),
                ("--out", out),
                ("--layers", layers),
                ("--activations", activations),
                *((f"--{key.replace('_', '-')}", value) for key, value in options.items()),
            )
            if value is not None
        ]
        if given:
            raise DenselabError(
                f"--resume continues {resume_run} with the settings in its run.json; drop "
                f"{', '.join(given)} (or train a new run without --resume)"
            )
        run = resume(resume_run, plots=plots, force=force)
    else:
        if not dataset:
            raise DenselabError("name a dataset (see `denselab datasets`) or use --resume RUN")
        data = keras_while(
            load_dataset, dataset, target=options.get("target"), task=options.get("task")
        )
        config = config_for(data, dataset, layers, activations, **options)
        if plots:  # matplotlib imports on the other core while the network trains
            from .plots import import_in_background

            _WHEN_TRAINING.append(import_in_background)
        run = train(config, out=out, data=data, plots=plots, force=force)
    result = {**run.metrics, "model_path": str(run.path / "model.keras"), "run": str(run.path)}
    if run.pictures:
        result["pictures"] = [str(p) for p in run.pictures]
    return result
