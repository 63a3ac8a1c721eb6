"""Lesson 2: train a dense classifier (or regressor) with Keras and save the run to a folder.

:func:`train` builds the network a :class:`TrainConfig` describes and fits it; :func:`resume`
continues an interrupted run. Both use :func:`fit` (:mod:`denselab.fitting`), the one training
loop (the search's trials too). On the JAX backend a new run starts training from the weights
Keras would draw, before Keras is imported; Keras imports on another thread during the last
epochs (:class:`KerasModel`) and receives the trained weights. The run
folder itself is :mod:`denselab.runs`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from . import folders, report
from .backend import compiled_training, seed_keras, seed_numpy, set_seed
from .backend import keras as _keras
from .data import Dataset, load_dataset, stand_in_note
from .epochs import State, initial_weights
from .errors import DenselabError
from .fitting import Fitted, KerasModel, fit, fit_from, n_inputs
from .model import ACTIVATIONS, MAX_WEIGHTS, build_model, check_model_file
from .model.files import MAX_TOTAL_WEIGHTS
from .runs import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS_PER_EXECUTION,
    Run,
    TrainConfig,
    config_for,
    config_problem,
    default_folder,
    default_layers,
    ema_momentum_of,
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
    data = data or load_dataset(config.dataset, target=config.target, task=config.task)
    _check_config(config, data)
    if config.ema_momentum is None:  # run.json records the momentum chosen
        config = dataclasses.replace(config, ema_momentum=ema_momentum_of(config, data.n_train))
    folder = Path(out or default_folder(config))
    if not compiled_training():  # KERAS_BACKEND=tensorflow: Keras's own fit
        set_seed(config.seed)
        model = KerasModel.ready(_built_model(config, data))
        return _fit_and_save(model, None, config, data, folder, {}, 0, plots=plots, force=force)
    # Training starts from the weights Keras would draw; Keras imports on another thread, late.
    seed_numpy(config.seed)
    start = State(initial_weights(n_inputs(data), config.units, config.seed))
    model = KerasModel(_built_model, config, data, plots)
    run = _fit_and_save(model, start, config, data, folder, {}, 0, plots=plots, force=force)
    seed_keras(config.seed)  # Keras's global seed is per thread: this one's, as set_seed did
    return run


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
    model = KerasModel.ready(model)
    return _fit_and_save(model, None, config, data, folder, history, done, plots=plots, force=force)


def _built_model(config: TrainConfig, data: Dataset, plots: bool = False):
    """The network ``config`` describes, built and compiled; then, for the run's pictures,
    matplotlib starts importing."""
    seed_keras(config.seed)
    model = build_model(data.input_shape, config.units, config.activations, seed=config.seed)
    compile_model(model, config, data)
    if plots:
        from .plots import import_in_background

        import_in_background()
    return model


def compile_model(model, config: TrainConfig, data: Dataset) -> None:
    """``model.compile`` with the config's optimizer, learning-rate schedule and moving
    average of the weights, the loss and metric for the dataset's task, and JAX's jit over
    ``steps_per_execution`` steps."""
    keras = _keras()
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if config.optimizer not in optimizers:
        raise DenselabError(f"unknown optimizer {config.optimizer!r}; use adam or sgd")
    if config.schedule not in ("cosine", "constant"):
        raise DenselabError(f"unknown schedule {config.schedule!r}; use cosine or constant")
    learning_rate = float(config.learning_rate)  # Keras refuses an int
    steps_per_epoch = -(-data.n_train // config.batch_size)
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, config.epochs * steps_per_epoch
        )
    average = {}
    momentum = ema_momentum_of(config, data.n_train)
    if momentum:  # the weights become their moving average at each epoch's end
        average = {
            "use_ema": True,
            "ema_momentum": momentum,
            "ema_overwrite_frequency": steps_per_epoch,
        }
    classify = data.task == "classification"
    model.compile(
        optimizer=optimizers[config.optimizer](learning_rate=learning_rate, **average),
        loss="sparse_categorical_crossentropy" if classify else "mean_squared_error",
        metrics=["accuracy"] if classify else ["mae"],
        steps_per_execution=config.steps_per_execution,
        jit_compile=True,
    )


def _fit_and_save(
    model: KerasModel, start, config, data, folder, history, initial_epoch, plots, force
) -> Run:
    """Fit, then write the run (and its pictures) into ``folder`` as one transaction."""
    with folders.folder_transaction(folder, "run", force=force) as staging:
        run, stopped = _fit_into(
            model, start, config, data, folder, staging, history, initial_epoch, plots
        )
    if run.metrics["interrupted"]:
        report.warn(
            f"interrupted after epoch {run.metrics['epochs_done']}; saved to "
            f"{report.plain(folder)}. Continue with: denselab train --resume {report.plain(folder)}"
        )
    if stopped:  # Ctrl-C while drawing the pictures: the run is saved, without them
        raise KeyboardInterrupt
    return run


def _fit_into(model, start, config, data, folder, staging, history, initial_epoch, plots):
    """``(run, stopped)``: fit, writing progress and then the run into ``staging``; ``stopped``
    when Ctrl-C came while the pictures were drawn (they are left out)."""
    if initial_epoch:
        report.say(
            f"resuming {report.plain(folder)} at epoch {initial_epoch + 1} of {config.epochs}"
        )
    report.say(
        f"training {config.units} on {report.plain(data.name)} ({data.n_train:,} train / "
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

        fitted = fit_from(
            model,
            start,
            config,
            data,
            x_train=None,
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
    model = model.get()
    done = len(fitted.history.get("loss", []))
    metrics = final_metrics(fitted.history, data.name, done, fitted.interrupted)
    write_run(staging, model, config, fitted.history, metrics)
    pictures, stopped = [], False
    if plots and not fitted.interrupted:
        from .pictures import write_run_plots

        try:
            scored = fitted.predictions if data.task == "classification" else None
            written = write_run_plots(staging, data=data, model=model, probabilities=scored)
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


def _check_config(config: TrainConfig, data: Dataset) -> None:
    """Refuse a config that cannot train on ``data``, before any work (the model itself is
    built on another thread while training runs, too late to say so)."""
    if config.epochs < 1 or config.batch_size < 1:
        raise DenselabError("--epochs and --batch-size must be at least 1")
    if len(config.units) != len(config.activations):
        raise DenselabError(
            f"{len(config.units)} layers but {len(config.activations)} activations given"
        )
    unknown = [name for name in config.activations if name not in ACTIVATIONS]
    if unknown:
        raise DenselabError(
            f"unknown activation {unknown[0]!r}; use one of {', '.join(ACTIVATIONS)}"
        )
    if config.optimizer not in ("adam", "sgd"):
        raise DenselabError(f"unknown optimizer {config.optimizer!r}; use adam or sgd")
    if config.schedule not in ("cosine", "constant"):
        raise DenselabError(f"unknown schedule {config.schedule!r}; use cosine or constant")
    problem = config_problem(config)
    if problem:
        raise DenselabError(f"cannot train: {problem}")
    sizes = [n_inputs(data), *config.units]
    weights = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    if max(weights) > MAX_WEIGHTS or sum(weights) > MAX_TOTAL_WEIGHTS:
        raise DenselabError(
            f"layers {sizes} need {sum(weights):,} weights; denselab trains at most "
            f"{MAX_WEIGHTS:,} a layer and {MAX_TOTAL_WEIGHTS:,} in all"
        )
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
    from .backend import pause_collector, resume_collector

    pause_collector()  # until the first epoch computes
    try:
        return _train_command(dataset, resume_run, out, plots, layers, activations, force, options)
    finally:
        resume_collector()


def _train_command(dataset, resume_run, out, plots, layers, activations, force, options) -> dict:
    from .backend import jax, keras, while_importing

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
        data = while_importing(
            jax if compiled_training() else keras,
            load_dataset,
            dataset,
            target=options.get("target"),
            task=options.get("task"),
        )
        config = config_for(data, dataset, layers, activations, **options)
        run = train(config, out=out, data=data, plots=plots, force=force)
    result = {**run.metrics, "model_path": str(run.path / "model.keras"), "run": str(run.path)}
    if run.pictures:
        result["pictures"] = [str(p) for p in run.pictures]
    return result
