"""One trial of the search: sample a network, train it, ship it to int8 C, score it.

A trial is the whole pipeline on one candidate, through the pipeline's public functions:
:func:`denselab.train.fit` on the fit part of the training split -> an int8 ``.tflite``
(:func:`denselab.int8.convert.to_tflite`, calibrated as deploy calibrates) -> the generated
C engine -> :func:`denselab.verify.measure`: the C engine's int8 accuracy on the validation
part held out of the training split, and its flash / RAM (``size`` on a Cortex-M4 object).
Both runners call :func:`run_trial`: Optuna in local processes (:mod:`.runners`) and Ray
Tune on a cluster (:mod:`.ray`).

The score, minimized, is one number for "small, and accurate enough"::

    score = log2(flash_bytes) + SHORTFALL_DOUBLINGS * max(0, target - accuracy) * 100
          (+ OVER_BUDGET when flash or RAM is over its budget: infeasible)

so one accuracy point short of the target costs as much as SHORTFALL_DOUBLINGS doublings of
flash, and above the target only size counts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import fileio, folders, report
from ..data import Dataset

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

    ``view``'s test split is the validation part held out of the training split.
    ``on_epoch(epoch, intermediate_score)`` is called after every epoch with the score the
    float validation accuracy and the estimated flash give; it may raise to stop the trial
    (a pruner's decision). Returns None when training diverged (loss NaN).
    """
    units, activations = architecture(params, view.n_classes)
    n_inputs = int(np.prod(view.input_shape))
    used = used_inputs(view.x_train, float(params.get("input_use", 0.0)))
    lower_bound, estimate = flash_estimate(int(used.sum()), units)
    measurements = {
        "layers": "-".join(str(n) for n in [n_inputs, *units]),
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
    int8_tflite, engine = ship(model, view)
    measured = measure_candidate(int8_tflite, engine, view)
    within = not spec.over_budget(measured["flash_bytes"], measured["ram_bytes"])
    measurements.update(
        within_budget=within,
        flash_lower_bound=lower_bound,
        float_val_accuracy=history["val_accuracy"][-1],
        params=int(model.count_params()),
        epochs_done=len(history["loss"]),
        **measured,
    )
    folder = Path(spec.trials_folder) / f"{number:04d}"
    save_trial(folder, model, config, history, view, measurements, int8_tflite)
    return score(spec, measured["int8_val_accuracy"], measured["flash_bytes"], within), measurements


def train_candidate(
    params: dict,
    part: Dataset,
    used: np.ndarray,
    spec: SearchSpec,
    on_epoch: Callable[[int, float], None] | None = None,
):
    """``(model, config, history)`` of the network ``params`` describes, trained by
    :func:`denselab.train.fit` on ``part``'s training split (its test split scores each
    epoch), reading only the ``used`` inputs; None if it diverged.

    ``on_epoch(epoch, val_accuracy)`` may raise to stop. Ctrl-C raises KeyboardInterrupt
    (a trial cut short is not a result: Optuna records it as FAIL and a rerun repeats it).
    """
    from ..backend import set_seed
    from ..model import build_model
    from ..runs import TrainConfig
    from ..train import compile_model, fit

    units, activations = architecture(params, part.n_classes)
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
    model = build_model(part.input_shape, units, activations, seed=config.seed)
    _ignore_inputs(model, ~used)
    compile_model(model, config, part)
    x_fit = None  # every input used: fit on the training split as it is
    if not used.all():  # the unused inputs set to 0
        x_fit = part.x_train * used.reshape(part.input_shape).astype(part.x_train.dtype)
    report_epoch = None
    if on_epoch is not None:
        report_epoch = lambda epoch, logs: on_epoch(epoch, float(logs["val_accuracy"]))  # noqa: E731
    fitted = fit(model, config, part, x_train=x_fit, on_epoch=report_epoch)
    if fitted.interrupted:
        raise KeyboardInterrupt
    if fitted.diverged_at:
        return None
    _ignore_inputs(model, ~used)  # a no-op (their gradient was 0): says what the model is
    return model, config, fitted.history


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


def ship(model, part: Dataset) -> tuple[bytes, dict[str, str]]:
    """The int8 ``.tflite`` (calibrated on ``part``'s training split, as deploy calibrates)
    and its C engine."""
    from ..engine import generate_c
    from ..int8.convert import calibration_samples, to_tflite
    from ..model import dense_network

    _, int8_tflite = to_tflite(dense_network(model), calibration_samples(part.x_train))
    return int8_tflite, generate_c(int8_tflite)


def measure_candidate(int8_tflite: bytes, engine: dict[str, str], part: Dataset) -> dict:
    """The C engine's int8 accuracy on ``part``'s test split (in a trial: the validation part
    held out of the training split), its flash and RAM: :func:`denselab.verify.measure`
    without the TFLite Micro oracle, under the search's names."""
    from ..verify import measure

    with quietly():
        measured = measure(int8_tflite, engine, part, oracle=False)
    return {
        "int8_val_accuracy": measured["c_int8_accuracy"],
        "flash_bytes": measured["flash_bytes"],
        "ram_bytes": measured["ram_bytes"],
        "toolchain": measured["size_toolchain"],
    }


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Nothing said within: the search shows its progress bars, not each measurement."""
    was_quiet = report.is_quiet()
    report.quiet(True)
    try:
        yield
    finally:
        report.quiet(was_quiet)


def save_trial(
    folder: Path, model, config, history: dict, part: Dataset, measurements: dict, int8_tflite
) -> None:
    """A normal run folder (``denselab deploy`` works on it) plus the int8 ``.tflite``, written
    as one transaction (see :func:`denselab.folders.folder_transaction`)."""
    with folders.folder_transaction(folder, "run") as staging:
        write_trial(staging, model, config, history, part, measurements, int8_tflite)


def write_trial(
    folder: Path, model, config, history: dict, part: Dataset, measurements: dict, int8_tflite
) -> None:
    """:func:`save_trial`'s files, into ``folder`` (a transaction's staging folder)."""
    from ..runs import final_metrics, write_run

    metrics = final_metrics(history, part.name, len(history["loss"]), interrupted=False)
    metrics.update({k: measurements[k] for k in ("int8_val_accuracy", "flash_bytes", "ram_bytes")})
    metrics["validation"] = f"{len(part.x_test):,} samples held out of the training split"
    write_run(folder, model, config, history, metrics)
    fileio.write_bytes(folder / "model_int8.tflite", int8_tflite)
