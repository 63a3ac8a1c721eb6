"""The run folder: what a training leaves behind, and the one place that reads it back.

A run folder holds ``model.keras``, ``history.json`` (per-epoch metrics, as Keras's
``History``), ``metrics.json`` (final numbers) and ``run.json`` (the :class:`TrainConfig`
that repeats it). Every command that takes "a model file or a run folder" goes through
:func:`resolve`, which also finds the dataset that goes with it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import fileio, folders
from .data import Dataset, load_dataset
from .errors import DenselabError

# Chosen by measurement on a 2-core CPU (see BENCHMARKS.md): the JAX backend with many steps per
# compiled call is the big win in time; batch 32 is the course's; Adam from 2e-3 with cosine
# decay to 0 ends about half a point higher on Fashion-MNIST than a constant 1e-3.
DEFAULT_BATCH_SIZE = 32
DEFAULT_STEPS_PER_EXECUTION = 64
DEFAULT_LEARNING_RATE = 2e-3
DEFAULT_SCHEDULE = "cosine"
# Keras's use_ema, the weights replaced by their moving average at each epoch's end (so each
# epoch's validation scores, and the saved model holds, the average): see ema_momentum_for.
DEFAULT_EMA_MOMENTUM = 0.99  # Keras's default, the most denselab chooses
EMA_EPOCH_FRACTION = 0.1  # the average spans about this much of an epoch's steps, at most
EMA_MIN_STEPS = 100  # epochs of fewer steps are not averaged

# The lesson's recipe for its six points, `compile(optimizer='sgd', loss='mean_squared_error')`
# and `fit(xs, ys, epochs=500)`: Keras's SGD at its default rate, constant, 500 epochs (the
# six points are one batch, so 500 steps). Adam's first 20 steps leave the line far off.
LINE_RECIPE = {
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "schedule": "constant",
    "epochs": 500,
    "ema_momentum": 0.0,
}


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
    ema_momentum: float | None = None  # 0: no moving average; None: ema_momentum_for
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
    pictures: list[Path] = field(default_factory=list)  # the PNGs written into ``path``

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k in ("val_accuracy", "val_mae")}
        numbers = "".join(f", {k}={v:.4f}" for k, v in shown.items() if isinstance(v, float))
        return f"Run({str(self.path)!r}{numbers})"

    def _repr_html_(self) -> str:
        """In a notebook: the numbers, the learning curves and the layer table."""
        from .notebook import run_html

        return run_html(self)


@dataclass
class Resolved:
    """What a "model file or run folder" argument names: the model file, the folder beside it
    (where its run's files are), and the dataset (given, or the one the run was trained on)."""

    model_path: Path
    folder: Path
    is_run: bool
    dataset: Dataset | None


def resolve(
    model_or_run: str | Path, data: str | Dataset | None = None, required: bool = False
) -> Resolved:
    """Resolve a ``.keras``/``.h5`` file or a run folder, and the dataset that goes with it.

    ``data`` (a name, a file, or a loaded :class:`Dataset`) wins; otherwise the dataset named
    in the run's ``run.json``. With ``required`` and no dataset, one clear error.
    """
    path = Path(model_or_run)
    is_run = path.is_dir()
    model_path = path / "model.keras" if is_run else path
    folder = path if is_run else path.parent
    if isinstance(data, Dataset):
        dataset = data
    else:
        name = data or run_dataset_name(path)
        if name is None and required:
            raise DenselabError(
                f"which dataset? {model_or_run} is not from a denselab run: add --data NAME"
            )
        dataset = load_dataset(name) if name else None
    return Resolved(model_path, folder, is_run, dataset)


def check_fits(network, dataset: Dataset) -> None:
    """Refuse a dataset whose samples are not the size of the network's input, or whose labels
    or targets the network's outputs cannot mean (labels 0..6 for 3 outputs; 2 targets for 29
    outputs). One sigmoid output is p(class 1) of a two-class dataset."""
    if int(np.prod(dataset.input_shape)) != network.n_inputs:
        raise DenselabError(
            f"dataset {dataset.name} has inputs of shape {tuple(dataset.input_shape)}, "
            f"the model expects {tuple(network.input_shape)}"
        )
    refuse_scaled_twice(network, dataset)
    outputs = network.n_outputs
    if dataset.task == "classification":
        highest = int(max(np.max(dataset.y_train), np.max(dataset.y_test)))
        binary = outputs == 1 and highest <= 1
        if highest >= outputs and not binary:
            raise DenselabError(
                f"dataset {dataset.name} has labels 0..{highest} but the model has {outputs} "
                "outputs, one per class; give the dataset it was trained on"
                + (" (numbers to predict? add --task regression)" if outputs == 1 else "")
            )
    elif outputs != dataset.n_targets:
        raise DenselabError(
            f"dataset {dataset.name} has {dataset.n_targets} number(s) to predict per sample but "
            f"the model has {outputs} outputs"
        )


def as_model_input(model, x: np.ndarray) -> np.ndarray:
    """Samples ``x`` in the model's own input shape: a model declared on 784 numbers takes a
    28x28 image as its 784 pixels, row by row (as Flatten does); one declared on (28, 28, 1)
    takes it with the channel axis. The number of values per sample must already match."""
    try:
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):  # unbuilt, or a free size
        return x
    x = np.asarray(x)
    if x.shape[1:] == shape or int(np.prod(shape)) != int(np.prod(x.shape[1:])):
        return x
    return x.reshape(len(x), *shape)


def check_sample_size(model, dataset: Dataset) -> None:
    """Refuse a dataset whose samples hold another number of values than the model takes."""
    try:
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        return
    if int(np.prod(shape)) != int(np.prod(dataset.input_shape)):
        raise DenselabError(
            f"dataset {dataset.name} has inputs of shape {tuple(dataset.input_shape)}, "
            f"the model expects {shape}"
        )


def scaled_twice(network, dataset: Dataset | None) -> bool:
    """Whether the model scales pixels 0-255 itself (a ``Rescaling(1/255)`` before its first
    Dense layer) and ``dataset`` is one of denselab's image sets, already 0-1 (pixel / 255)."""
    return bool(
        network.scales_raw_pixels
        and dataset is not None
        and dataset.file is None
        and dataset.is_image
    )


def refuse_scaled_twice(network, dataset: Dataset | None) -> None:
    """For a step that turns the model into int8 or a page: one line rather than pixels
    scaled twice (a model people save after Keras's tutorial: ``Rescaling(1/255)`` first)."""
    if scaled_twice(network, dataset):
        raise DenselabError(
            f"the model scales pixels 0-255 itself (layer {network.scales_raw_pixels!r}), but "
            f"{dataset.name}'s images are already 0-1 (pixel / 255, as the lesson makes them); "
            "give --data FILE.npz with pixels 0-255"
        )


def run_dataset_name(model_path: str | Path) -> str | None:
    """The dataset a denselab run was trained on, read from the ``run.json`` beside the model.

    None when there is no run.json, or one that is not denselab's (no ``config``); a
    denselab run.json that was edited into nonsense is refused, as :func:`read_run` does.
    """
    path = Path(model_path)
    folder = path if path.is_dir() else path.parent
    try:
        run = fileio.load_json(folder / "run.json")
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict) or "config" not in run:
        return None
    return read_config(folder).dataset


def save_run(
    folder: str | Path, model, config: TrainConfig, history: dict, metrics: dict, force=False
) -> Path:
    """Write a whole run folder (the model, ``history.json``, ``metrics.json``, ``run.json``)
    as one transaction: ``folder`` is wholly the previous run or wholly this one.

    A folder holding files denselab did not write is refused unless ``force``.
    """
    with folders.folder_transaction(folder, "run", force=force) as staging:
        write_run(staging, model, config, history, metrics)
    return Path(folder)


def write_run(folder: Path, model, config: TrainConfig, history: dict, metrics: dict) -> None:
    """Write the model and the run's three JSON files into ``folder``, the staging folder of a
    :func:`denselab.folders.folder_transaction` (see :func:`save_run`)."""
    import keras

    from .backend import tensorflow_unprobed

    with tensorflow_unprobed():
        fileio.write_with(folder / "model.keras", lambda tmp: model.save(tmp))
    fileio.write_json(folder / "history.json", history)
    fileio.write_json(folder / "metrics.json", metrics)
    fileio.write_json(
        folder / "run.json",
        {"config": asdict(config), "keras": keras.__version__, "backend": keras.backend.backend()},
    )


def read_run(folder: Path) -> tuple[TrainConfig, dict]:
    """The config and history of a run folder, checked like any other input."""
    folder = Path(folder)
    config = read_config(folder)
    history = read_history(folder)
    if history is None:
        raise DenselabError(f"{folder} is not a denselab run folder (run.json, history.json)")
    if len(history.get("loss", [])) > config.epochs:
        raise DenselabError(
            f"{folder / 'history.json'} holds more epochs than run.json's {config.epochs}"
        )
    if not (folder / "model.keras").exists():
        raise DenselabError(f"{folder} has no model.keras to resume from")
    return config, history


def read_config(folder: Path) -> TrainConfig:
    """The :class:`TrainConfig` in a run folder's ``run.json``, every value checked (a
    hand-edited ``"epochs": "5"`` or ``"epochs": 0`` is one clear error, not a traceback)."""
    path = Path(folder) / "run.json"
    try:
        run = fileio.load_json(path)
        settings = run["config"]
        if not isinstance(settings, dict):
            raise TypeError("config is not an object")
    except (OSError, ValueError, KeyError, TypeError):
        raise DenselabError(
            f"{folder} is not a denselab run folder (run.json, history.json)"
        ) from None
    names = {item.name for item in fields(TrainConfig)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise DenselabError(f"{path}: unknown setting {unknown[0]!r}; fix it or train a new run")
    settings.setdefault("ema_momentum", 0.0)  # a run from before denselab averaged: none
    config = TrainConfig(**settings)
    _check_config_types(config, Path(folder))
    _check_config_values(config, path)
    return config


HISTORY_MOST = 1e30


def read_history(folder: Path) -> dict | None:
    """A run folder's ``history.json`` (None if it has none): every entry a list of finite
    numbers, one per epoch."""
    path = Path(folder) / "history.json"
    if not path.exists():
        return None
    history = fileio.read_json(path)
    if not isinstance(history, dict):
        raise DenselabError(f"{path} is not a training history (an object of lists)")
    for key, values in history.items():
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and abs(v) <= HISTORY_MOST  # a loss of 1e308 is an edit: charts cannot hold it
            for v in values
        ):
            raise DenselabError(
                f"{path}: {key!r} is not a list of finite numbers (at most {HISTORY_MOST:g})"
            )
    lengths = {len(values) for values in history.values()}
    if len(lengths) > 1:
        raise DenselabError(f"{path}: its lists have different lengths {sorted(lengths)}")
    return history


def final_metrics(history: dict, dataset_name: str, epochs_done: int, interrupted: bool) -> dict:
    """The last epoch's numbers, named as ``metrics.json`` names them."""
    metrics = {"dataset": dataset_name, "epochs_done": epochs_done, "interrupted": interrupted}
    for key in ("loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"):
        if history.get(key):
            name = key if key.startswith("val_") else f"train_{key}"
            metrics[name] = history[key][-1]
    return metrics


def default_folder(config: TrainConfig) -> Path:
    """``runs/<dataset>-<widths>-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    widths = "-".join(str(u) for u in config.units)
    return Path("runs") / f"{config.dataset.replace('/', '_')}-{widths}-{stamp}"


def _check_config_types(config: TrainConfig, folder: Path) -> None:
    """A hand-edited run.json (``"epochs": "5"``) is bad input, not a TypeError later."""
    expected = {
        "dataset": str,
        "epochs": int,
        "batch_size": int,
        "learning_rate": (int, float),
        "schedule": str,
        "optimizer": str,
        "ema_momentum": (int, float, type(None)),
        "seed": int,
        "steps_per_execution": int,
    }
    for item in fields(config):
        value = getattr(config, item.name)
        kind = expected.get(item.name)
        wrong = kind is not None and (isinstance(value, bool) or not isinstance(value, kind))
        if item.name in ("units", "activations"):
            element = int if item.name == "units" else str
            wrong = not isinstance(value, list) or not all(
                isinstance(v, element) and not isinstance(v, bool) for v in value
            )
        if item.name in ("target", "task"):
            wrong = value is not None and not isinstance(value, str)
        if wrong:
            raise DenselabError(f"{folder / 'run.json'}: {item.name!r} has the wrong type")


def _check_config_values(config: TrainConfig, path: Path) -> None:
    """Values a training can use: positive sizes, known names, layers that match."""
    problem = config_problem(config)
    if problem:
        raise DenselabError(f"{path}: {problem} (fix it or train a new run)")


# Bounds a training's numbers are checked against before anything is allocated or started:
# far beyond any network or run a microcontroller course makes, far below what would take
# the machine's memory (weights are bounded again, with the dataset's inputs, in training).
MAX_UNITS = 1 << 16
MAX_EPOCHS = 1_000_000
MAX_BATCH = 1 << 20
MAX_LEARNING_RATE = 1e30  # float32 holds it (1e308 would be infinity before any step)


def ema_momentum_for(steps_per_epoch: int) -> float:
    """denselab's choice of ``ema_momentum`` for epochs of ``steps_per_epoch`` steps.

    With momentum ``m`` the moving average spans about ``1 / (1 - m)`` steps, and it replaces
    the weights at each epoch's end, so it must not reach back to the epoch's first steps:
    Keras's 0.99 (about 100 steps) where an epoch has 1,000 steps or more, less below that,
    and no average for epochs under 100 steps. Measured on the lesson's network (medians of 8
    seeds): Fashion-MNIST (1,875 steps) reaches the course's validation accuracy in 6 epochs
    rather than 10 and ends as high; mnist-5k (157 steps) ends 0.7 points lower with 0.99,
    as high with 0.936.
    """
    if steps_per_epoch < EMA_MIN_STEPS:
        return 0.0
    return min(DEFAULT_EMA_MOMENTUM, round(1 - 1 / (EMA_EPOCH_FRACTION * steps_per_epoch), 3))


def ema_momentum_of(config: TrainConfig, n_train: int) -> float:
    """The momentum ``config`` trains with on ``n_train`` samples (its own, or denselab's)."""
    if config.ema_momentum is not None:
        return float(config.ema_momentum)
    return ema_momentum_for(-(-n_train // config.batch_size))


def config_problem(config: TrainConfig) -> str | None:
    """The first value of ``config`` a training cannot use, said in one line; None if none."""
    from .model import ACTIVATIONS

    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    rules = (
        ("dataset", bool(config.dataset), "a dataset name"),
        ("units", bool(config.units) and min(config.units) >= 1, "widths of at least 1"),
        (
            "activations",
            len(config.activations) == len(config.units)
            and all(a in ACTIVATIONS for a in config.activations),
            f"one of {', '.join(ACTIVATIONS)} per layer",
        ),
        ("units", max(config.units, default=1) <= MAX_UNITS, f"at most {MAX_UNITS:,} a layer"),
        ("epochs", 1 <= config.epochs <= MAX_EPOCHS, f"from 1 to {MAX_EPOCHS:,}"),
        ("batch_size", 1 <= config.batch_size <= MAX_BATCH, f"from 1 to {MAX_BATCH:,}"),
        ("steps_per_execution", config.steps_per_execution >= 1, "at least 1"),
        (
            "learning_rate",
            number(config.learning_rate)
            and math.isfinite(config.learning_rate)
            and 0 < config.learning_rate <= MAX_LEARNING_RATE,
            f"a positive number up to {MAX_LEARNING_RATE:g}",
        ),
        ("schedule", config.schedule in ("cosine", "constant"), "cosine or constant"),
        ("optimizer", config.optimizer in ("adam", "sgd"), "adam or sgd"),
        (
            "ema_momentum",
            config.ema_momentum is None
            or (number(config.ema_momentum) and 0 <= config.ema_momentum < 1),
            "from 0 (no moving average) to below 1",
        ),
        (  # layer i's initializer is seeded seed + i, a 32-bit number
            "seed",
            number(config.seed) and 0 <= config.seed <= 2**32 - len(config.units),
            f"a whole number from 0 to 2**32 - {len(config.units)} ({len(config.units)} layers "
            "are seeded seed, seed + 1, ...)",
        ),
        ("task", config.task in (None, "classification", "regression"), "a known task"),
    )
    for name, valid, rule in rules:
        if not valid:
            return f"{name!r} is {getattr(config, name)!r}; it must be {rule}"
    return None


def default_layers(dataset: Dataset, hidden: list[int] | None = None) -> tuple[list, list]:
    """The lesson's stack for this dataset: hidden relu layers, then softmax (or linear)."""
    hidden = [20] if hidden is None else hidden
    if dataset.task == "classification":
        return hidden + [dataset.n_classes], ["relu"] * len(hidden) + ["softmax"]
    return hidden + [dataset.n_targets], ["relu"] * len(hidden) + ["linear"]


def config_for(
    dataset: Dataset,
    name: str,
    layers: list[int] | None = None,
    activations: list[str] | None = None,
    **options,
) -> TrainConfig:
    """The lesson's recipe for ``dataset`` (named ``name``), with the layers and options given.

    ``layers`` replaces the widths (hidden layers relu, the output as the lesson's);
    ``options`` set any other :class:`TrainConfig` field; None means "the default". For
    ``line`` the default is lesson 1's: one linear neuron (``--layers 2,1``: the two linear
    layers), trained by :data:`~denselab.runs.LINE_RECIPE`.
    """
    units, default_activations = default_layers(dataset)
    hidden_activation = "relu"
    if dataset.name == "line":
        units, default_activations, hidden_activation = [1], ["linear"], "linear"
        options = {**LINE_RECIPE, **{k: v for k, v in options.items() if v is not None}}
    if layers:
        units = list(layers)
        default_activations = [hidden_activation] * (len(units) - 1) + [default_activations[-1]]
    config = TrainConfig(dataset=name, units=units, activations=activations or default_activations)
    for key, value in options.items():
        if value is not None:
            setattr(config, key, value)
    return config
