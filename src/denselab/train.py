"""Lesson 2: train a dense classifier (or regressor) with Keras and save the run to a folder.

A run folder holds ``model.keras``, ``history.json`` (per-epoch metrics, as Keras's
``History``), ``metrics.json`` (final numbers) and ``run.json`` (how to repeat it).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import _io, report
from ._backend import keras as _keras
from ._backend import set_seed, tensorflow_unprobed
from .data import Dataset, load_dataset
from .errors import DenselabError
from .model import build_model, check_model_file

# Chosen by measurement on a 2-core CPU (see BENCHMARKS.md): the JAX backend with many steps per
# compiled call is the big win in time; batch 32 is the course's; Adam from 2e-3 with cosine
# decay to 0 ends about half a point higher on Fashion-MNIST than a constant 1e-3.
DEFAULT_BATCH_SIZE = 32
DEFAULT_STEPS_PER_EXECUTION = 64
DEFAULT_LEARNING_RATE = 2e-3
DEFAULT_SCHEDULE = "cosine"


@dataclass
class TrainConfig:
    """Everything needed to repeat a run exactly (on the same machine and versions)."""

    dataset: str = "mnist-5k"
    units: list[int] = field(default_factory=lambda: [20, 10])
    activations: list[str] = field(default_factory=lambda: ["relu", "softmax"])
    epochs: int = 20
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE  # the peak, when schedule is "cosine"
    schedule: str = DEFAULT_SCHEDULE  # "cosine" (decay to 0 over all steps) or "constant"
    optimizer: str = "adam"
    seed: int = 0
    steps_per_execution: int = DEFAULT_STEPS_PER_EXECUTION
    target: str | None = None
    task: str | None = None


@dataclass
class Run:
    """A finished (or interrupted) training: the model and its numbers, saved at ``path``."""

    path: Path
    model: object
    config: TrainConfig
    history: dict
    metrics: dict

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, val_accuracy={self.metrics.get('val_accuracy')})"


def default_layers(dataset: Dataset, hidden: list[int] | None = None) -> tuple[list, list]:
    """The lesson's stack for this dataset: hidden relu layers, then softmax (or linear)."""
    hidden = [20] if hidden is None else hidden
    if dataset.task == "classification":
        return hidden + [dataset.n_classes], ["relu"] * len(hidden) + ["softmax"]
    return hidden + [1], ["relu"] * len(hidden) + ["linear"]


def train(config: TrainConfig, out: str | Path | None = None, data: Dataset | None = None) -> Run:
    """Build the model ``config`` describes, fit it with Keras, evaluate it and save the run."""
    keras = _keras()
    data = data or load_dataset(config.dataset, target=config.target, task=config.task)
    _check_config(config, data)
    set_seed(config.seed)
    model = build_model(data.input_shape, config.units, config.activations, seed=config.seed)
    _compile(model, config, data)
    folder = _io.ensure_dir(out or _default_folder(config))
    return _fit_and_save(keras, model, config, data, folder, history={}, initial_epoch=0)


def resume(folder: str | Path) -> Run:
    """Continue an interrupted run from its last completed epoch (weights and optimizer state)."""
    keras = _keras()
    folder = Path(folder)
    config, history = _read_run(folder)
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
    return _fit_and_save(keras, model, config, data, folder, history=history, initial_epoch=done)


def _compile(model, config: TrainConfig, data: Dataset) -> None:
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


def _fit_and_save(keras, model, config, data, folder, history, initial_epoch) -> Run:
    tracker = _epoch_tracker(keras, model, history, folder)
    if initial_epoch:
        report.say(f"resuming {folder} at epoch {initial_epoch + 1} of {config.epochs}")
    report.say(
        f"training {config.units} on {data.name} ({len(data.x_train):,} train / "
        f"{len(data.x_test):,} validation, from {data.source})"
    )
    interrupted = False
    _stop_requested.clear()
    previous = {
        signum: signal.signal(signum, _raise_keyboard_interrupt)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with report.progress("epochs", config.epochs) as bar:
            bar.advance(initial_epoch)
            tracker.bar = bar
            model.fit(
                data.x_train,
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
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if tracker.diverged:
        if not initial_epoch:  # a fresh run leaves nothing behind, not even its progress file
            (folder / "history.json").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise DenselabError(
            f"training diverged at epoch {tracker.diverged} (loss is NaN); nothing was saved. "
            "Try a lower --learning-rate"
        )
    history = tracker.history
    metrics = _final_metrics(history, data, len(history.get("loss", [])), interrupted)
    _save_run(folder, model, config, history, metrics)
    if interrupted:
        report.warn(
            f"interrupted after epoch {metrics['epochs_done']}; saved to {folder}. "
            f"Continue with: denselab train --resume {folder}"
        )
    return Run(folder, model, config, history, metrics)


def _epoch_tracker(keras, model, history: dict, folder: Path):
    """A Keras callback: moves the progress bar, keeps the history and the last good weights.

    ``history.json`` is rewritten after every epoch, so progress is visible while training.
    """

    class EpochTracker(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = {key: list(values) for key, values in history.items()}
            self.bar = None
            self.diverged = 0
            self.last_good = _snapshot(model)

        def on_epoch_end(self, epoch, logs=None):
            if _stop_requested.is_set():  # a Ctrl-C that a library caught on its way up
                raise KeyboardInterrupt
            logs = logs or {}
            if not np.isfinite(logs.get("loss", 0.0)):
                self.diverged = epoch + 1
                model.stop_training = True
                return
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            self.history.setdefault("epoch_end_unix", []).append(time.time())
            self.last_good = _snapshot(model)
            _io.write_json(folder / "history.json", self.history)
            if self.bar is not None:
                shown = ("loss", "accuracy", "val_accuracy", "mae", "val_mae")
                status = "  ".join(f"{k} {logs[k]:.4f}" for k in shown if k in logs)
                self.bar.advance(1, status=status)

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


_stop_requested = threading.Event()


def _raise_keyboard_interrupt(signum, frame):
    """Ctrl-C or `kill`: stop training. Also remembered, because C code that checks for
    signals while a step runs may swallow the KeyboardInterrupt; the tracker raises it again."""
    _stop_requested.set()
    raise KeyboardInterrupt


def _final_metrics(history: dict, data: Dataset, epochs_done: int, interrupted: bool) -> dict:
    metrics = {"dataset": data.name, "epochs_done": epochs_done, "interrupted": interrupted}
    for key in ("loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"):
        if history.get(key):
            name = key if key.startswith("val_") else f"train_{key}"
            metrics[name] = history[key][-1]
    return metrics


def _save_run(folder: Path, model, config: TrainConfig, history: dict, metrics: dict) -> None:
    import keras

    with tensorflow_unprobed():
        _io.write_with(folder / "model.keras", lambda tmp: model.save(tmp))
    _io.write_json(folder / "history.json", history)
    _io.write_json(folder / "metrics.json", metrics)
    _io.write_json(
        folder / "run.json",
        {"config": asdict(config), "keras": keras.__version__, "backend": keras.backend.backend()},
    )


def _read_run(folder: Path) -> tuple[TrainConfig, dict]:
    try:
        run = json.loads((folder / "run.json").read_text())
        history = json.loads((folder / "history.json").read_text())
        config = TrainConfig(**run["config"])
        if not isinstance(history, dict):
            raise TypeError("history.json is not an object")
    except (OSError, ValueError, KeyError, TypeError):
        raise DenselabError(
            f"{folder} is not a denselab run folder (run.json, history.json)"
        ) from None
    if not (folder / "model.keras").exists():
        raise DenselabError(f"{folder} has no model.keras to resume from")
    return config, history


def read_run_dataset(model_path: str | Path) -> str | None:
    """The dataset a denselab run was trained on, read from the ``run.json`` beside the model."""
    path = Path(model_path)
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / "run.json").read_text())["config"]["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    elif config.units[-1] != 1:
        raise DenselabError("a regression model's last layer needs exactly 1 neuron")


def _default_folder(config: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    widths = "-".join(str(u) for u in config.units)
    return Path("runs") / f"{config.dataset.replace('/', '_')}-{widths}-{stamp}"


def evaluate(model, data: Dataset) -> dict:
    """``model.evaluate`` on the test split, computed from ``model.predict`` (no compile needed)."""
    predictions = np.asarray(model.predict(data.x_test, verbose=0, batch_size=1024))
    if data.task == "classification":
        if predictions.ndim != 2 or predictions.shape[1] != data.n_classes:
            raise DenselabError(
                f"the model has {predictions.shape[-1]} outputs but {data.name} has "
                f"{data.n_classes} classes"
            )
        picked = predictions[np.arange(len(predictions)), data.y_test]
        loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
        accuracy = float(np.mean(predictions.argmax(axis=1) == data.y_test))
        return {
            "dataset": data.name,
            "n_samples": len(data.y_test),
            "loss": loss,
            "accuracy": accuracy,
        }
    error = predictions.reshape(len(predictions), -1)[:, 0] - data.y_test
    return {
        "dataset": data.name,
        "n_samples": len(data.y_test),
        "loss": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
    }
