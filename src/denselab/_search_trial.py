"""One trial of :func:`denselab.search.search`: sample a network, train it, ship it, score it.

A trial is the whole pipeline on one candidate: Keras training (JAX) on the fit part of the
training split -> int8 ``.tflite`` -> generated C engine -> int8 accuracy on the held-out
validation part (the C engine itself) and flash / RAM (``size`` on a Cortex-M4 object).
Both runners call :func:`run_trial`: Optuna in local processes (:func:`optuna_worker`) and
Ray Tune on a cluster (:func:`ray_trainable`).

The score, minimized, is one number for "small, and accurate enough"::

    score = log2(flash_bytes) + SHORTFALL_DOUBLINGS * max(0, target - accuracy) * 100
          (+ OVER_BUDGET when flash or RAM is over its budget: infeasible)

so one accuracy point short of the target costs as much as SHORTFALL_DOUBLINGS doublings of
flash, and above the target only size counts.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _io, report
from .data import Dataset

HIDDEN_ACTIVATIONS = ("relu", "linear", "sigmoid", "tanh")  # what the int8 C engine runs
WIDTHS = (4, 64)  # neurons per hidden layer, sampled on a log scale
LEARNING_RATES = (1e-3, 3e-2)
BATCH_SIZES = (16, 32, 64, 128)
# Inputs kept: those non-zero in more than this fraction of the training samples. A dropped
# input (a pixel at the border, rarely lit) gets weight 0 in every neuron, and the C engine
# does not store inputs no neuron reads: on MNIST, 0.05 keeps ~400 of the 784 pixels.
INPUT_USE = (0.0, 0.01, 0.05, 0.1, 0.2)
EPOCHS_MIN = 3
SHORTFALL_DOUBLINGS = 2.0  # score cost of one accuracy point below the target
OVER_BUDGET = 100.0  # score added to an infeasible trial: worse than any feasible one
PRUNE_AFTER_TRIALS, PRUNE_AFTER_EPOCHS = 4, 2  # the median rule needs some trials and epochs
CALIBRATION_SAMPLES = 500  # as deploy: training samples the converter measures ranges on
MEASUREMENTS = (  # what a finished trial records (Optuna user attributes, Ray results)
    "layers",
    "activations",
    "inputs_used",
    "within_budget",
    "flash_bytes",
    "ram_bytes",
    "flash_lower_bound",
    "int8_val_accuracy",
    "float_val_accuracy",
    "params",
    "epochs_done",
    "toolchain",
)


@dataclass(frozen=True)
class SearchSpec:
    """What every trial needs to know, identical on every worker."""

    dataset: str
    target_accuracy: float
    max_flash: int | None
    max_ram: int | None
    epochs_max: int
    seed: int
    trials_folder: str  # one run folder per trial, ``{trials_folder}/{number:04d}``
    max_width: int = WIDTHS[1]  # widest first hidden layer the flash budget leaves room for

    def over_budget(self, flash_bytes: int, ram_bytes: int) -> bool:
        return (self.max_flash is not None and flash_bytes > self.max_flash) or (
            self.max_ram is not None and ram_bytes > self.max_ram
        )


def suggest(trial, epochs_max: int, max_width: int = WIDTHS[1]) -> dict:
    """Sample one candidate from an Optuna trial (define-by-run: deeper nets add parameters).

    Returns the constants a Ray trial needs besides the sampled values: the trial number.
    """
    n_hidden = trial.suggest_int("n_hidden", 1, 3)
    for index in range(1, n_hidden + 1):
        widest = max_width if index == 1 else WIDTHS[1]  # the first layer holds most weights
        trial.suggest_int(f"units_{index}", WIDTHS[0], widest, log=True)
        trial.suggest_categorical(f"activation_{index}", HIDDEN_ACTIVATIONS)
    trial.suggest_categorical("input_use", INPUT_USE)
    trial.suggest_float("learning_rate", *LEARNING_RATES, log=True)
    trial.suggest_categorical("batch_size", BATCH_SIZES)
    trial.suggest_int("epochs", min(EPOCHS_MIN, epochs_max), epochs_max)
    return {"number": trial.number}


def architecture(params: dict, n_classes: int) -> tuple[list[int], list[str]]:
    """``units`` and ``activations`` for :func:`denselab.model.build_model`: hidden + softmax."""
    hidden = range(1, int(params["n_hidden"]) + 1)
    units = [int(params[f"units_{i}"]) for i in hidden] + [n_classes]
    activations = [str(params[f"activation_{i}"]) for i in hidden] + ["softmax"]
    return units, activations


def score(spec: SearchSpec, accuracy: float, flash_bytes: float, within_budget: bool) -> float:
    """The number the search minimizes (see the module docstring)."""
    shortfall_points = max(0.0, spec.target_accuracy - accuracy) * 100
    penalty = 0.0 if within_budget else OVER_BUDGET
    return math.log2(flash_bytes) + SHORTFALL_DOUBLINGS * shortfall_points + penalty


def used_inputs(x_train: np.ndarray, input_use: float) -> np.ndarray:
    """A boolean mask over the flattened inputs: non-zero in more than ``input_use`` of the
    training samples (0.0 keeps every input that is ever non-zero)."""
    lit = np.count_nonzero(x_train.reshape(len(x_train), -1), axis=0) / max(1, len(x_train))
    return lit > input_use


def widest_layer(n_inputs: int, max_flash: int | None) -> int:
    """The widest first hidden layer whose int8 kernel alone fits ``max_flash``, at most 64."""
    if max_flash is None:
        return WIDTHS[1]
    return min(WIDTHS[1], max_flash // n_inputs)


def flash_estimate(n_inputs: int, units: list[int]) -> tuple[int, int]:
    """(lower bound, estimate) of the engine's flash before training, in bytes.

    The lower bound is the int8 kernels alone; the estimate adds an int32 bias and an int32
    multiplier and shift per neuron and about 1.3 kB of code and input runs (within ~1% of
    ``size`` for one hidden layer).
    """
    widths = [n_inputs, *units]
    kernels = sum(a * b for a, b in zip(widths, widths[1:], strict=False))
    return kernels, kernels + 9 * sum(units) + 1330


def run_trial(
    number: int,
    params: dict,
    view: Dataset,
    spec: SearchSpec,
    on_epoch: Callable[[int, float], None],
) -> tuple[float, dict] | None:
    """Train, quantize, compile and measure one candidate; ``(score, measurements)``.

    ``on_epoch(epoch, intermediate_score)`` is called after every epoch with the score the
    float validation accuracy and the estimated flash give; it may raise to stop the trial
    (a pruner's decision). Returns None when training diverged (loss NaN).
    """
    units, activations = architecture(params, view.n_classes)
    n_inputs = int(np.prod(view.input_shape))
    used = used_inputs(view.x_train, float(params.get("input_use", 0.0)))
    lower_bound, estimate = flash_estimate(int(used.sum()), units)
    layers = "-".join(str(n) for n in [n_inputs, *units])
    measurements = {
        "layers": layers,
        "activations": ",".join(activations),
        "inputs_used": int(used.sum()),
    }
    if spec.over_budget(lower_bound, max(units[:-1])):  # certainly over: do not train
        measurements.update(within_budget=False, flash_lower_bound=lower_bound)
        return score(spec, 0.0, lower_bound, within_budget=False), measurements

    trained = train_candidate(
        params, view, used, spec, lambda e, acc: on_epoch(e, score(spec, acc, estimate, True))
    )
    if trained is None:
        return None
    model, config, history = trained

    folder = Path(spec.trials_folder) / f"{number:04d}"
    int8_tflite, engine = _ship(model, view)
    measured = _measure(int8_tflite, engine, view)
    within = not spec.over_budget(measured["flash_bytes"], measured["ram_bytes"])
    measurements.update(
        within_budget=within,
        flash_lower_bound=lower_bound,
        float_val_accuracy=history["val_accuracy"][-1],
        params=int(model.count_params()),
        epochs_done=len(history["loss"]),
        **measured,
    )
    _save(folder, model, config, history, view, measurements, int8_tflite)
    return score(spec, measured["int8_val_accuracy"], measured["flash_bytes"], within), measurements


def train_candidate(
    params: dict,
    view: Dataset,
    used: np.ndarray,
    spec: SearchSpec,
    on_epoch: Callable[[int, float], None] = lambda epoch, accuracy: None,
):
    """``(model, config, history)`` of the network ``params`` describes, trained with Keras
    on ``view``'s training part, reading only the ``used`` inputs; None if it diverged."""
    from ._backend import set_seed
    from .model import build_model
    from .train import TrainConfig, _compile

    units, activations = architecture(params, view.n_classes)
    config = TrainConfig(
        dataset=spec.dataset,
        units=units,
        activations=activations,
        epochs=int(params["epochs"]),
        batch_size=int(params["batch_size"]),
        learning_rate=float(params["learning_rate"]),
        seed=spec.seed,
    )
    set_seed(config.seed)
    model = build_model(view.input_shape, units, activations, seed=config.seed)
    _ignore_inputs(model, ~used)
    _compile(model, config, view)
    history = _fit(model, config, view, used, on_epoch)
    if history is None:
        return None
    _ignore_inputs(model, ~used)  # a no-op (their gradient was 0): says what the model is
    return model, config, history


def _ignore_inputs(model, unused: np.ndarray) -> None:
    """Weight 0 from every ``unused`` input in the first Dense layer's kernel.

    Trained on data where those inputs are 0, the weights get a gradient of exactly 0, so
    Adam leaves them at 0: the trained network reads only the used inputs.
    """
    if not unused.any():
        return
    dense = next(layer for layer in model.layers if layer.get_weights())
    kernel, *rest = dense.get_weights()
    kernel[unused] = 0.0
    dense.set_weights([kernel, *rest])


def _fit(
    model, config, view: Dataset, used: np.ndarray, on_epoch: Callable[[int, float], None]
) -> dict | None:
    """``model.fit`` (on the used inputs; the others set to 0) with a callback that keeps the
    history and reports each epoch."""
    from ._backend import keras

    history: dict[str, list[float]] = {}

    class Reporter(keras().callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if not np.isfinite(logs.get("loss", 0.0)):
                history.clear()
                self.model.stop_training = True
                return
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            on_epoch(epoch + 1, float(logs["val_accuracy"]))

    x_fit = view.x_train
    if not used.all():
        x_fit = view.x_train * used.reshape(view.x_train.shape[1:]).astype(view.x_train.dtype)
    model.fit(
        x_fit,
        view.y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=(view.x_test, view.y_test),
        callbacks=[Reporter()],
        verbose=0,
    )
    return history or None


def _ship(model, view: Dataset) -> tuple[bytes, dict[str, str]]:
    """The int8 ``.tflite`` (calibrated as deploy calibrates) and its C engine."""
    from .compile import generate_c
    from .model import dense_network
    from .quantize import to_tflite

    rng = np.random.default_rng(0)
    count = min(CALIBRATION_SAMPLES, len(view.x_train))
    calibration = view.x_train[np.sort(rng.choice(len(view.x_train), count, replace=False))]
    _, int8_tflite = to_tflite(dense_network(model), calibration)
    return int8_tflite, generate_c(int8_tflite)


def _measure(int8_tflite: bytes, engine: dict[str, str], view: Dataset) -> dict:
    """int8 accuracy of the C engine on the validation part, and its flash and RAM."""
    from .deploy import quantize_inputs
    from .verify import c_engine_invoke, c_engine_size

    outputs = c_engine_invoke(engine, quantize_inputs(int8_tflite, view.x_test))
    size = c_engine_size(engine)
    return {
        "int8_val_accuracy": float(np.mean(outputs.argmax(axis=1) == view.y_test)),
        "flash_bytes": size["flash_bytes"],
        "ram_bytes": size["ram_bytes"],
        "toolchain": size["toolchain"],
    }


def _save(folder: Path, model, config, history, view, measurements, int8_tflite) -> None:
    """A normal run folder (``denselab deploy`` works on it) plus the int8 ``.tflite``."""
    from .train import _final_metrics, _save_run

    _io.ensure_dir(folder)
    metrics = _final_metrics(history, view, len(history["loss"]), interrupted=False)
    metrics.update({k: measurements[k] for k in ("int8_val_accuracy", "flash_bytes", "ram_bytes")})
    metrics["validation"] = f"{len(view.x_test):,} samples held out of the training split"
    _save_run(folder, model, config, history, metrics)
    _io.write_bytes(folder / "model_int8.tflite", int8_tflite)


# --- the two runners: Optuna in a local process, Ray Tune on a cluster ----------------------


def _quiet_worker() -> None:
    """One single-threaded worker per core; Keras (JAX) before TensorFlow; nothing printed."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
    from ._backend import keras, lean_keras, tensorflow

    lean_keras()
    keras()  # first, so that TensorFlow's import does not make Keras pick its backend
    tensorflow()
    report.quiet(True)


_interrupted = threading.Event()


def _interrupt(signum, frame):
    """Ctrl-C: raise KeyboardInterrupt, and remember it in case something swallows it
    (an exception in a ``__del__`` is only printed), so the worker still stops."""
    _interrupted.set()
    raise KeyboardInterrupt


def optuna_worker(
    storage_url, study_name, spec, view, n_trials, sampler_seed, total_trials, errors
) -> None:
    """A local worker process: ``study.optimize`` for ``n_trials`` on the shared SQLite study.

    Errors go back to the parent through ``errors`` (a queue) as one line; Ctrl-C ends the
    trial in progress as FAIL (Optuna's doing), so a rerun repeats it.
    """
    try:
        import optuna

        _quiet_worker()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(
            study_name=study_name,
            storage=_storage(storage_url),
            sampler=sampler(sampler_seed, total_trials),
            pruner=pruner(),
        )

        def objective(trial):
            if _interrupted.is_set():
                raise KeyboardInterrupt
            params = {**suggest(trial, spec.epochs_max, spec.max_width), **trial.params}

            def on_epoch(epoch: int, intermediate: float) -> None:
                if _interrupted.is_set():
                    raise KeyboardInterrupt
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
            callbacks=[lambda study, trial: _interrupted.is_set() and study.stop()],
        )
    except KeyboardInterrupt:
        pass
    except Exception as error:  # the parent turns it into a DenselabError
        errors.put(f"{type(error).__name__}: {str(error)[:500]}")
        raise SystemExit(1) from None


def ray_trainable(config: dict, spec: SearchSpec, view: Dataset) -> None:
    """The same trial as a Ray Tune function trainable: one ``tune.report`` per epoch."""
    from ray import tune

    _quiet_worker()
    on_epoch = lambda epoch, intermediate: tune.report({"score": intermediate})  # noqa: E731
    result = run_trial(int(config["number"]), config, view, spec, on_epoch)
    if result is not None:
        value, measurements = result
        tune.report({"score": value, "final": True, **measurements})


def sampler(seed: int, n_trials: int):
    """TPE: random for the first few trials, then the density-ratio model of good vs bad."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 3)))


def pruner():
    """Stop a trial whose running score is worse than the median of the others' at that epoch."""
    import optuna

    return optuna.pruners.MedianPruner(PRUNE_AFTER_TRIALS, PRUNE_AFTER_EPOCHS)


def _storage(url: str):
    import optuna

    # two processes write one SQLite file: wait for the lock instead of failing at once
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
