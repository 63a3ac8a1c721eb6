"""Training's loop: the epochs of a compiled Keras model, and what they leave behind.

:func:`fit` is the one loop :func:`denselab.train.train`, ``--resume`` and the search's
trials use. On the JAX backend it runs :mod:`denselab.epochs` (the loop written out in JAX,
Keras's arithmetic), else Keras's own ``model.fit``. Either way it keeps the history as
Keras's ``History`` does, stops on a NaN loss, and keeps the last good epoch for Ctrl-C.
Between the two, :func:`recipe_for`, :func:`is_dense_chain`, :func:`state_of` and
:func:`put_state` carry a compiled Keras model to the JAX loop and back.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import fileio, interrupts
from .backend import compiled_training, prompt_switching, resume_collector
from .backend import keras as _keras
from .data import Dataset
from .epochs import BETA_1, BETA_2, EPSILON, CompiledEpochs, Recipe, State
from .errors import DenselabError
from .runs import TrainConfig, ema_momentum_of


@dataclass
class Fitted:
    """What :func:`fit` did: the per-epoch ``history`` (as Keras's ``History.history``), the
    epoch whose loss was NaN (0 if none), whether Ctrl-C stopped it, and the model's outputs
    on the test split after the last epoch (when the compiled loop scored them)."""

    history: dict = field(default_factory=dict)
    diverged_at: int = 0
    interrupted: bool = False
    predictions: np.ndarray | None = None


class KerasModel:
    """A run's compiled Keras model, built on another thread while training runs.

    ``import keras`` takes about 0.5 s after JAX, and building and compiling the model 0.1 s;
    the compiled training loop (:mod:`denselab.epochs`) needs neither, so they happen while the
    last epochs compute (see :data:`KERAS_LEAD_SECONDS`), and :meth:`get` waits for the model
    only when the weights go into it.
    The thread runs at a lower priority (nice 10, on Linux), so the training's own work on the
    second core (gathering the next batches) comes first: at nice 0 the epochs beside it ran
    about 1.5x slower, at nice 10 about 1.25x. (At nice 19 they ran faster still, but a
    thread that holds the interpreter and barely gets a core would stall the training on a
    busy machine.)
    """

    def __init__(self, build: Callable, *args):
        self._build, self._args, self._future = build, args, None

    @classmethod
    def ready(cls, model) -> KerasModel:
        """A model already built (nothing runs in the background)."""
        from concurrent.futures import Future

        built = cls(lambda: model)
        built._future = Future()
        built._future.set_result(model)
        return built

    def __repr__(self) -> str:
        state = "not started" if self._future is None else "started"
        return f"KerasModel({getattr(self._build, '__name__', 'model')}, {state})"

    def start(self) -> None:
        """Start building on another thread (once). The thread is a daemon: a process that
        stops before the model is needed does not wait for Keras to finish importing."""
        if self._future is None:
            from concurrent.futures import Future

            self._future = Future()
            threading.Thread(
                target=self._built_politely, name="denselab-keras", daemon=True
            ).start()

    def get(self):
        """The model (waiting for it, or building it here if it was never started)."""
        self.start()
        return self._future.result()

    def raise_if_failed(self) -> None:
        """Raise the build's error now, if it failed (rather than after the training)."""
        if self._future is not None and self._future.done() and self._future.exception():
            raise self._future.exception()

    def _built_politely(self):
        if sys.platform == "linux":  # a thread's own nice value (elsewhere it is the process's)
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            self._future.set_result(self._build(*self._args))
        except BaseException as error:  # noqa: BLE001 (handed to the thread that waits)
            self._future.set_exception(error)


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
    """Train a compiled Keras ``model`` on ``data`` (training split; the test split scores
    each epoch), as ``model.fit`` would; the model holds the new weights afterwards.

    ``x_train`` replaces the training inputs (the search masks inputs it ignores);
    ``history`` continues a resumed run's; ``on_epoch(epoch, logs)`` is called after each
    epoch (1-based) and may raise to stop (a pruner's decision); ``history_path`` is
    rewritten after every epoch, so progress is visible while training. A NaN loss stops
    training (``diverged_at``); Ctrl-C or ``kill`` stop it at the last finished epoch.
    """
    return fit_from(
        KerasModel.ready(model),
        None,
        config,
        data,
        x_train=x_train,
        history=history,
        initial_epoch=initial_epoch,
        on_epoch=on_epoch,
        history_path=history_path,
    )


def fit_from(model: KerasModel, start: State | None, config, data, **options) -> Fitted:
    """:func:`fit` on a model that may still be on its way; ``start`` the weights to train
    from when it is (None: the model's own, and its optimizer's state)."""
    own = options["x_train"] is None  # the dataset's own inputs (perhaps kept as bytes)
    n_train = data.n_train if own else len(options["x_train"])
    classify = data.task == "classification"
    recipe = recipe_for(config, n_inputs(data), n_train, classify)
    if start is None and not (compiled_training() and is_dense_chain(model.get(), recipe)):
        options["x_train"] = data.x_train if own else options["x_train"]
        return fit_keras(model.get(), config, data, **options)
    fitted, end = _fit_compiled(
        recipe, start or state_of(model.get()), config, data, model, **options
    )
    with interrupts.stoppable():  # Ctrl-C or kill while Keras is still importing
        put_state(model.get(), end)
    return fitted


# When the Keras model starts building on its thread: once the epochs left would take about
# this long. Importing Keras and building the model take about 0.5 s of the second core, yet
# the epochs computing beside them ran about a quarter slower on the 2-core machine measured
# (so did they beside a Python busy-loop in another process: its two virtual cores share the
# hardware beneath). So the first epochs, in which a learner watches the accuracy climb, run
# alone, and the model is ready shortly after the training ends.
KERAS_LEAD_SECONDS = 0.5


def _fit_compiled(recipe, start, config, data, model, **options) -> tuple[Fitted, State]:
    """The epochs, run by :class:`~denselab.epochs.CompiledEpochs`; the fit and the state at
    the last good epoch. ``model`` (a :class:`KerasModel`) starts building when the epochs
    left would take :data:`KERAS_LEAD_SECONDS`, or one epoch is left (at once, for a single
    epoch); if the build fails, its error stops the training at the next epoch's end, or
    after the last."""
    x_train = options["x_train"]
    if x_train is None:  # the dataset's own: as bytes, if it keeps them (never as floats)
        pixels = data.training_pixels()
        x_train = data.x_train if pixels is None else None
    else:
        pixels = data.pixels_of(x_train)
    epochs = CompiledEpochs(
        recipe,
        start,
        x_train,
        data.y_train,
        (data.x_test, data.y_test),
        config.batch_size,
        pixels=pixels,
    )
    recorder = _Recorder(options["history"], options["on_epoch"], options["history_path"])
    last_good, fitted = start, Fitted(recorder.history)
    with interrupts.stoppable(), prompt_switching():
        try:
            started = epochs.start_epoch() if options["initial_epoch"] < config.epochs else None
            resume_collector()  # its pauses fall while the first epoch computes
            if config.epochs - options["initial_epoch"] <= 1:
                model.start()
            clock = time.perf_counter()
            for epoch in range(options["initial_epoch"], config.epochs):
                # the next epoch computes while this one is recorded; a stop drops it unfinished
                upcoming = epochs.start_epoch(after=started) if epoch + 1 < config.epochs else None
                logs, state = epochs.finish_epoch(started)
                epoch_seconds, clock = time.perf_counter() - clock, time.perf_counter()
                interrupts.check()  # a Ctrl-C that a library caught on its way up
                model.raise_if_failed()
                if not np.isfinite(logs["loss"]):
                    fitted.diverged_at = epoch + 1
                    break
                last_good = state
                recorder.record(logs)
                left = config.epochs - epoch - 1
                if left <= 1 or left * epoch_seconds <= KERAS_LEAD_SECONDS:
                    model.start()  # Keras builds during the last half second (or epoch)
                started = upcoming
            else:
                fitted.predictions = (
                    None if epochs.predictions is None else np.asarray(epochs.predictions)
                )
        except KeyboardInterrupt:
            fitted.interrupted = True
    return fitted, last_good


def fit_keras(model, config, data, **options) -> Fitted:
    """Keras's own ``model.fit`` (on the TensorFlow backend, or a model that is not a plain
    chain of Dense layers), with a callback that records the history."""
    keras = _keras()
    resume_collector()
    recorder = _Recorder(options["history"], options["on_epoch"], options["history_path"])

    class Tracker(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            if not model.optimizer.built:  # so the snapshot holds every optimizer variable
                model.optimizer.build(model.trainable_variables)
            self.diverged, self.last_good = 0, _snapshot(model)

        def on_epoch_end(self, epoch, logs=None):
            interrupts.check()
            logs = logs or {}
            if not np.isfinite(logs.get("loss", 0.0)):
                self.diverged, model.stop_training = epoch + 1, True
                return
            self.last_good = _snapshot(model)
            recorder.record(logs)

    tracker, interrupted = Tracker(), False
    with interrupts.stoppable():
        try:
            model.fit(
                options["x_train"],
                data.y_train,
                epochs=config.epochs,
                initial_epoch=options["initial_epoch"],
                batch_size=config.batch_size,
                validation_data=(data.x_test, data.y_test),
                callbacks=[tracker],
                verbose=0,
            )
        except KeyboardInterrupt:
            interrupted = True
            weights, optimizer_state = tracker.last_good
            for variable, value in zip(model.weights, weights, strict=True):
                variable.assign(value)
            for variable, value in zip(model.optimizer.variables, optimizer_state, strict=True):
                variable.assign(value)
    return Fitted(recorder.history, tracker.diverged, interrupted)


class _Recorder:
    """The history as Keras's ``History`` keeps it, plus each epoch's end on the wall clock
    (``epoch_end_unix``); written to ``history_path`` and passed to ``on_epoch`` after each
    epoch."""

    def __init__(self, history: dict | None, on_epoch, history_path: Path | None):
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.on_epoch, self.history_path = on_epoch, history_path

    def record(self, logs: dict) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.history.setdefault("epoch_end_unix", []).append(time.time())
        if self.history_path is not None:
            fileio.write_json(self.history_path, self.history)
        if self.on_epoch is not None:
            self.on_epoch(len(self.history["loss"]), logs)


def _snapshot(model) -> tuple[list, list]:
    optimizer = getattr(model, "optimizer", None)
    variables = optimizer.variables if optimizer is not None else []
    return [v.numpy() for v in model.weights], [v.numpy() for v in variables]


def n_inputs(data: Dataset) -> int:
    return int(np.prod(data.input_shape))


# --- the Keras model and the compiled loop's state -------------------------------------


def recipe_for(config, n_inputs: int, n_train: int, classify: bool) -> Recipe:
    """The :class:`Recipe` of a :class:`~denselab.runs.TrainConfig` (as ``compile_model``
    compiles it: the cosine schedule decays over every step of the run)."""
    steps_per_epoch = -(-n_train // config.batch_size)
    ema_momentum = ema_momentum_of(config, n_train)
    return Recipe(
        n_inputs=int(n_inputs),
        units=tuple(int(u) for u in config.units),
        activations=tuple(config.activations),
        classify=classify,
        optimizer=config.optimizer,
        learning_rate=float(config.learning_rate),
        schedule=config.schedule,
        decay_steps=config.epochs * steps_per_epoch,
        ema_momentum=ema_momentum,
        ema_overwrite_frequency=steps_per_epoch if ema_momentum else 0,
    )


def is_dense_chain(model, recipe: Recipe) -> bool:
    """Whether ``model`` trains as ``recipe`` says, so the compiled loop computes what its
    ``fit`` would: trainable ``Dense`` layers with biases in float32 (after an optional
    ``Flatten``), the same widths and activations, no regularizers or constraints, and the
    loss and optimizer ``compile_model`` gives (Adam or plain SGD, Keras's defaults, the
    recipe's learning rate or cosine decay). Anything else trains with ``model.fit``."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "Flatten"]
    plain = all(
        type(layer).__name__ == "Dense"
        and layer.use_bias
        and layer.trainable
        and layer.dtype_policy.name == "float32"
        and not any(
            getattr(layer, name, None) is not None
            for name in (
                "kernel_regularizer",
                "bias_regularizer",
                "activity_regularizer",
                "kernel_constraint",
                "bias_constraint",
                "lora_rank",
            )
        )
        for layer in layers
    )
    found = [(layer.units, getattr(layer.activation, "__name__", "")) for layer in layers]
    shape = found == list(zip(recipe.units, recipe.activations, strict=True))
    return plain and shape and model.trainable and _compiled_as(model, recipe)


def _compiled_as(model, recipe: Recipe) -> bool:
    """The model's loss and optimizer are the ones ``recipe`` computes."""
    loss = "sparse_categorical_crossentropy" if recipe.classify else "mean_squared_error"
    if getattr(model, "loss", None) != loss:
        return False
    optimizer = getattr(model, "optimizer", None)
    name = type(optimizer).__name__
    if (name, recipe.optimizer) not in (("Adam", "adam"), ("SGD", "sgd")):
        return False
    config = optimizer.get_config()
    unchanged = {
        "weight_decay": None,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": bool(recipe.ema_momentum),
        "gradient_accumulation_steps": None,
        "loss_scale_factor": None,
    }
    if name == "Adam":
        unchanged.update(beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON, amsgrad=False)
    else:
        unchanged.update(momentum=0.0, nesterov=False)
    if recipe.ema_momentum:
        unchanged.update(
            ema_momentum=recipe.ema_momentum,
            ema_overwrite_frequency=recipe.ema_overwrite_frequency,
        )
    if any(config.get(key, value) != value for key, value in unchanged.items()):
        return False
    rate = config.get("learning_rate")
    if recipe.schedule == "constant":
        return isinstance(rate, float) and np.float32(rate) == np.float32(recipe.learning_rate)
    if not (isinstance(rate, dict) and rate.get("class_name") == "CosineDecay"):
        return False
    decay = rate.get("config", {})
    return (
        decay.get("initial_learning_rate") == recipe.learning_rate
        and decay.get("decay_steps") == recipe.decay_steps
        and not decay.get("alpha")
        and decay.get("warmup_target") is None
    )


def state_of(model) -> State:
    """A compiled Keras model's weights and optimizer state (Adam's moments and the
    weights' moving averages, by name)."""
    optimizer = model.optimizer
    if not optimizer.built:
        return State([np.asarray(w, np.float32) for w in model.get_weights()])
    by_suffix = {"_momentum": [], "_velocity": [], "_average": []}
    iterations = 0
    for variable in optimizer.variables:
        name = variable.path.rpartition("/")[2]
        if name == "iteration":
            iterations = int(np.asarray(variable.value))
        for suffix, found in by_suffix.items():
            if name.endswith(suffix):
                found.append(np.asarray(variable.value))
    return State(
        [np.asarray(w, np.float32) for w in model.get_weights()],
        iterations,
        by_suffix["_momentum"],
        by_suffix["_velocity"],
        by_suffix["_average"],
    )


def put_state(model, state: State) -> None:
    """Put ``state`` into a compiled Keras model: its weights, and its optimizer's step count
    moments and averages (so ``--resume`` continues where the training stopped). A state
    with no moments (before the first step, or SGD) leaves them at zero."""
    model.set_weights(state.weights)
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    names = [variable.path.rpartition("/")[2] for variable in optimizer.variables]
    for suffix, values in (
        ("_momentum", state.momentums),
        ("_velocity", state.velocities),
        ("_average", state.averages),
    ):
        variables = [
            v for v, n in zip(optimizer.variables, names, strict=True) if n.endswith(suffix)
        ]
        if values and len(values) != len(variables):
            raise DenselabError(
                f"the optimizer has {len(variables)} {suffix[1:]}s, not {len(values)}"
            )
        for variable, value in zip(variables, values, strict=False):
            variable.assign(value)
    for variable, name in zip(optimizer.variables, names, strict=True):
        if name == "iteration":
            variable.assign(state.iterations)
