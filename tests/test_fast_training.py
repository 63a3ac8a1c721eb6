"""The speed-ups keep the course's numbers: the compiled training loop computes what Keras's
``fit`` computes, bit for bit, and the pictures drawn as pixels have matplotlib's colours."""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import run_denselab
from denselab import epochs as compiled
from denselab import fitting
from denselab.backend import keras, set_seed
from denselab.data import Dataset, load_dataset
from denselab.epochs import CompiledEpochs, State, initial_weights, uniform
from denselab.fitting import (
    KerasModel,
    fit_from,
    fit_keras,
    is_dense_chain,
    put_state,
    recipe_for,
    state_of,
)
from denselab.model import build_model, dense_network
from denselab.plots import WEIGHT_CMAP, _weights_figure, plot_first_layer_weights, weight_tiles
from denselab.raster import colourize, nice_ticks
from denselab.train import compile_model, config_for, fit, train


@pytest.fixture(scope="module")
def digits():
    """mnist-5k cut to 1,000 training images: 31 batches of 32 and a last batch of 8."""
    data = load_dataset("mnist-5k")
    data.x_train, data.y_train = data.x_train[:1000], data.y_train[:1000]
    return data


@pytest.fixture(scope="module")
def curve():
    """A regression with two targets, 200 samples of 3 inputs (6 batches of 32, one of 8)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(250, 3)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] ** 2], axis=1).astype(np.float32)
    return Dataset("curve", x[:200], y[:200], x[200:], y[200:], "regression", "test")


def _model(data, name, **options):
    config = config_for(data, name, epochs=2, **options)
    set_seed(0)
    model = build_model(data.input_shape, config.units, config.activations, seed=0)
    compile_model(model, config, data)
    return model, config


def _keras_and_compiled(data, name, transposed=False, **options):
    """Two epochs of Keras's ``fit`` and two of :class:`CompiledEpochs` (queued before the
    first is finished, as training does) from the same model: both models, and the logs.
    ``transposed=False``: the compiled loop in Keras's layout, where it is bit-exact. The
    loop takes the inputs as bytes when the dataset has them (``data.pixels``)."""
    reference, config = _model(data, name, **options)
    ours, _ = _model(data, name, **options)
    history = reference.fit(
        data.x_train,
        data.y_train,
        epochs=2,
        batch_size=32,
        shuffle=False,
        validation_data=(data.x_test, data.y_test),
        verbose=0,
    ).history
    classify = data.task == "classification"
    n_inputs = int(np.prod(data.input_shape))
    recipe = fitting.recipe_for(config, n_inputs, len(data.x_train), classify)
    validation = (data.x_test, data.y_test)
    pixels = data.pixels_of(data.x_train)
    epochs = CompiledEpochs(
        recipe, state_of(ours), data.x_train, data.y_train, validation, 32, transposed, pixels
    )
    first = epochs.start_epoch()
    second = epochs.start_epoch(after=first)
    (_, _), (logs, state) = epochs.finish_epoch(first), epochs.finish_epoch(second)
    put_state(ours, state)
    return reference, ours, history, logs


def _same_numbers(ours, reference) -> bool:
    pairs = [
        *zip(ours.weights, reference.weights, strict=True),
        *zip(ours.optimizer.variables, reference.optimizer.variables, strict=True),
    ]
    return all(np.array_equal(np.asarray(a.value), np.asarray(b.value)) for a, b in pairs)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"schedule": "constant", "learning_rate": 1e-3},
        {"optimizer": "sgd", "schedule": "constant", "learning_rate": 0.05},
        {"layers": [16, 12, 10], "activations": ["tanh", "sigmoid", "softmax"]},
        {"ema_momentum": 0.9},
        {"optimizer": "sgd", "schedule": "constant", "learning_rate": 0.05, "ema_momentum": 0.8},
    ],
    ids=["adam-cosine", "adam-constant", "sgd", "tanh-sigmoid", "adam-average", "sgd-average"],
)
def test_compiled_epochs_compute_exactly_what_keras_fit_computes(digits, monkeypatch, options):
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)  # the same order on both sides
    options = dict(options)
    if "layers" in options:
        options["units"] = options.pop("layers")
    reference, ours, history, logs = _keras_and_compiled(digits, "mnist-5k", **options)
    assert _same_numbers(ours, reference)  # weights, Adam's moments, the step count
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert logs[key] == pytest.approx(history[key][-1], abs=1e-6)


def test_compiled_epochs_compute_what_keras_computes_for_a_regression(curve, monkeypatch):
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)
    reference, ours, history, logs = _keras_and_compiled(
        curve, "curve", units=[8, 2], activations=["relu", "linear"]
    )
    assert _same_numbers(ours, reference)
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert logs[key] == pytest.approx(history[key][-1], rel=1e-6)


def test_inputs_as_bytes_train_exactly_as_keras_fit(monkeypatch):
    """mnist-5k's images travel to the compiled loop as bytes and are looked up as the floats
    Keras is given: still bit-exact (4,000 images: a whole number of batches)."""
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)
    data = load_dataset("mnist-5k")
    pixels = data.pixels
    assert pixels.codes.dtype == np.uint8 and data.pixels_of(data.x_train) is pixels
    np.testing.assert_array_equal(pixels.values[pixels.codes], data.x_train)
    reference, ours, _, _ = _keras_and_compiled(data, "mnist-5k")
    assert _same_numbers(ours, reference)


def test_bytes_left_behind_by_a_replaced_x_train_are_not_used(digits):
    """Negative control: the digits fixture replaced x_train with its first 1,000 rows, so
    its pixels no longer match; nor do they match other inputs of the same length."""
    assert digits.pixels is not None and digits.pixels_of(digits.x_train) is None
    data = load_dataset("mnist-5k")
    assert data.pixels_of(data.x_train.copy()) is None  # not the dataset's own inputs
    data.x_train = data.x_train[::-1]
    assert data.pixels_of(data.x_train) is None  # same length, other rows


@pytest.mark.parametrize("constant,value", [("EPSILON", 1e-8), ("BETA_2", 0.99)])
def test_a_changed_constant_would_show(digits, monkeypatch, constant, value):
    """Negative control: Adam's epsilon at 1e-8 (Keras: 1e-7), or beta_2 at 0.99 (0.999),
    changes the weights."""
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)
    monkeypatch.setattr(compiled, constant, value)
    reference, ours, _, _ = _keras_and_compiled(digits, "mnist-5k")
    assert not _same_numbers(ours, reference)


def test_an_average_put_in_place_at_another_step_would_show(digits, monkeypatch):
    """Negative control: the compiled loop overwriting the weights one step later than
    Keras's ``ema_overwrite_frequency`` says gives other weights (and averages that do
    change the weights: 0.9 against no average)."""
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)
    recipe_for = fitting.recipe_for

    def off_by_one(*args):
        recipe = recipe_for(*args)
        return dataclasses.replace(
            recipe, ema_overwrite_frequency=recipe.ema_overwrite_frequency + 1
        )

    monkeypatch.setattr(fitting, "recipe_for", off_by_one)
    reference, ours, _, _ = _keras_and_compiled(digits, "mnist-5k", ema_momentum=0.9)
    assert not _same_numbers(ours, reference)
    plain, config = _model(digits, "mnist-5k", ema_momentum=0.0)
    fit(plain, config, digits)
    assert not np.array_equal(plain.get_weights()[0], reference.get_weights()[0])


@pytest.mark.parametrize(
    "steps,momentum", [(1875, 0.99), (1000, 0.99), (157, 0.936), (100, 0.9), (99, 0.0), (1, 0.0)]
)
def test_the_average_spans_a_tenth_of_an_epoch_at_most(steps, momentum):
    from denselab.runs import ema_momentum_for

    assert ema_momentum_for(steps) == momentum


def test_several_compiled_calls_an_epoch_are_still_keras_fit(digits, monkeypatch):
    """31 steps of 32 in calls of 8, 8, 8 and 7 steps, then the short batch of 8."""
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)
    monkeypatch.setattr(compiled, "BLOCK_BYTES", 8 * 32 * 784 * 4)
    reference, ours, _, _ = _keras_and_compiled(digits, "mnist-5k")
    assert _same_numbers(ours, reference)


def test_fit_stops_cleanly_before_its_first_epoch_ends(digits, monkeypatch):
    """A NaN in the first epoch, Ctrl-C before it ends, or nothing left to do: the model keeps
    its starting weights and a fresh optimizer, and fit says what happened."""
    model, config = _model(digits, "mnist-5k")
    start = model.get_weights()
    wild = dataclasses.replace(config, learning_rate=1e30, schedule="constant")
    compile_model(model, wild, digits)
    assert fit(model, wild, digits).diverged_at == 1
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), start, strict=True))

    model, config = _model(digits, "mnist-5k")

    def stopped(self, started):
        raise KeyboardInterrupt

    monkeypatch.setattr(CompiledEpochs, "finish_epoch", stopped)
    fitted = fit(model, config, digits)
    assert fitted.interrupted and fitted.history == {}
    assert int(model.optimizer.iterations.numpy()) == 0
    monkeypatch.undo()

    done = fit(model, config, digits, initial_epoch=config.epochs)
    assert done.history == {} and not done.interrupted and not done.diverged_at


@pytest.mark.parametrize("lead,epochs,when", [(0.0, 4, 3), (1e9, 4, 1), (0.0, 1, 0)])
def test_keras_builds_the_model_during_the_last_epochs(digits, monkeypatch, lead, epochs, when):
    """The model starts building once the epochs left would take KERAS_LEAD_SECONDS, or one
    epoch is left (with no lead: after the third of four epochs; with plenty: after the
    first; before a single epoch), and it receives the trained weights either way."""
    model, config = _model(digits, "mnist-5k")
    config = dataclasses.replace(config, epochs=epochs)
    recorded, started = [], []
    original = KerasModel.start

    def start(self):
        if self._future is None:
            started.append(len(recorded))
        original(self)

    monkeypatch.setattr(fitting, "KERAS_LEAD_SECONDS", lead)
    monkeypatch.setattr(KerasModel, "start", start)
    fitted = fit_from(
        KerasModel(lambda: model),
        State(model.get_weights()),
        config,
        digits,
        x_train=None,
        history=None,
        initial_epoch=0,
        on_epoch=lambda epoch, logs: recorded.append(epoch),
        history_path=None,
    )
    assert started == [when] and len(fitted.history["loss"]) == epochs
    assert int(model.optimizer.iterations.numpy()) == epochs * 32  # 31 batches of 32, one of 8


def test_a_model_compiled_otherwise_trains_with_keras_fit(digits):
    """The compiled loop computes the config's recipe; a model whose optimizer, layers or
    regularizers differ from it is trained by Keras's own fit."""
    model, config = _model(digits, "mnist-5k")
    recipe = recipe_for(config, 784, len(digits.x_train), True)
    assert is_dense_chain(model, recipe)
    model.compile(optimizer=keras().optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    assert not is_dense_chain(model, recipe)
    model, _ = _model(digits, "mnist-5k")
    next(layer for layer in model.layers if layer.weights).trainable = False
    assert not is_dense_chain(model, recipe)
    model, _ = _model(digits, "mnist-5k")
    model.layers[-1].kernel_regularizer = keras().regularizers.L2(0.01)
    assert not is_dense_chain(model, recipe)


def test_transposed_kernels_agree_with_keras_to_float32_rounding(digits, monkeypatch):
    """The default layout adds the products' sums in another order: after 62 steps the
    weights agree with Keras's to a few float32 roundings, not bit for bit."""
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)
    reference, ours, history, logs = _keras_and_compiled(digits, "mnist-5k", transposed=True)
    for a, b in zip(ours.weights, reference.weights, strict=True):
        a, b = np.asarray(a.value), np.asarray(b.value)
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert logs[key] == pytest.approx(history[key][-1], abs=1e-5)


@pytest.mark.parametrize("n_inputs,units,seed", [(784, [20, 10], 0), (3, [5, 4, 2], 12345)])
def test_initial_weights_are_the_ones_keras_draws(n_inputs, units, seed):
    keras()
    model = build_model((n_inputs,), units, ["relu"] * (len(units) - 1) + ["softmax"], seed=seed)
    drawn = initial_weights(n_inputs, units, seed)
    for ours, theirs in zip(drawn, model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(initial_weights(n_inputs, units, seed + 1)[0], drawn[0])


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5, 2**32 - 1])
@pytest.mark.parametrize("shape", [(784, 20), (20, 10), (1, 1), (300, 7)])
def test_the_numpy_draw_is_jax_random_uniform_bit_for_bit(shape, seed):
    import jax

    limit = float(np.sqrt(6.0 / sum(shape)))
    key = np.array([seed, 0], np.uint32)
    theirs = np.asarray(jax.random.uniform(key, shape, "float32", -limit, limit))
    ours = uniform((seed, 0), shape, -limit, limit)
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_with_jax_older_counters_jax_draws_the_weights(monkeypatch):
    """With ``jax_threefry_partitionable`` off, JAX's counters differ: the draw is then left
    to JAX (the NumPy draw, forced, would differ: the negative control)."""
    import jax

    key, shape = np.array([3, 0], np.uint32), (20, 10)
    jax.config.update("jax_threefry_partitionable", False)
    try:
        theirs = np.asarray(jax.random.uniform(key, shape, "float32", -1.0, 1.0))
        np.testing.assert_array_equal(uniform((3, 0), shape, -1.0, 1.0), theirs)
        monkeypatch.setattr(compiled, "_partitionable", lambda: True)
        assert not np.array_equal(uniform((3, 0), shape, -1.0, 1.0), theirs)
    finally:
        jax.config.update("jax_threefry_partitionable", True)


def test_the_draw_rounds_once_as_xla_does():
    """Negative control: scaling in float32 (two roundings, no fused multiply-add) gives
    different bits in about half the lesson's kernel, so the bit-for-bit test can fail."""
    import jax

    limit = float(np.sqrt(6.0 / 804))
    theirs = np.asarray(jax.random.uniform(np.array([0, 0], np.uint32), (784, 20), "float32"))
    unit = uniform((0, 0), (784, 20), 0.0, 1.0)
    np.testing.assert_array_equal(unit, theirs)  # [0, 1): no scaling, no rounding
    twice_rounded = unit * np.float32(2 * limit) + np.float32(-limit)
    drawn = uniform((0, 0), (784, 20), -limit, limit)
    assert np.mean(twice_rounded != drawn) > 0.2


@pytest.mark.parametrize("momentum", [None, 0.9], ids=["plain", "averaged"])
def test_a_resumed_fit_continues_exactly_where_it_stopped(digits, monkeypatch, tmp_path, momentum):
    """Stopped after epoch 1 (Ctrl-C), saved, loaded and continued: the same numbers as two
    epochs straight, so the step count, Adam's moments and the weights' moving averages
    travel through model.keras."""
    monkeypatch.setattr(np.random, "permutation", np.arange)
    straight, config = _model(digits, "mnist-5k", ema_momentum=momentum)
    fit(straight, config, digits)

    stopped, _ = _model(digits, "mnist-5k", ema_momentum=momentum)

    def stop_after_first(epoch, logs):
        raise KeyboardInterrupt

    first = fit(stopped, config, digits, on_epoch=stop_after_first)
    assert first.interrupted and len(first.history["loss"]) == 1
    stopped.save(tmp_path / "model.keras")
    loaded = keras().saving.load_model(tmp_path / "model.keras", compile=True, safe_mode=True)
    second = fit(loaded, config, digits, history=first.history, initial_epoch=1)
    assert len(second.history["loss"]) == 2
    assert _same_numbers(loaded, straight)
    first_kernel = build_model(digits.input_shape, config.units, config.activations, seed=0)
    assert not np.array_equal(loaded.get_weights()[0], first_kernel.get_weights()[0])
    assert second.history["val_accuracy"][-1] > 0.5  # it learned, in two short epochs


def test_the_keras_fit_path_records_the_history_and_stops_on_nan(digits):
    """``model.fit`` (the TensorFlow backend's way) keeps the same history, and a NaN loss
    stops it: a learning rate of 1e30 diverges in the first epoch."""

    def keras_fit(model, config):
        options = {"history": None, "initial_epoch": 0, "on_epoch": None, "history_path": None}
        return fit_keras(model, config, digits, x_train=digits.x_train, **options)

    model, config = _model(digits, "mnist-5k")
    fitted = keras_fit(model, config)
    assert len(fitted.history["val_accuracy"]) == 2 and fitted.history["val_accuracy"][-1] > 0.5
    wild = dataclasses.replace(config, learning_rate=1e30, schedule="constant")
    model, _ = _model(digits, "mnist-5k")
    compile_model(model, wild, digits)
    fitted = keras_fit(model, wild)
    assert fitted.diverged_at == 1


def test_pixel_pictures_use_the_colours_matplotlib_draws(lesson_run, tmp_path):
    first = dense_network(lesson_run.model).layers[0]
    tiles, limit = weight_tiles(first, (28, 28))
    figure_tile = _weights_figure(first, (28, 28)).axes[4].get_images()[0]
    matplotlib_rgb = figure_tile.to_rgba(figure_tile.get_array(), bytes=True)[..., :3]
    ours = colourize(tiles[4], WEIGHT_CMAP, -limit, limit)
    np.testing.assert_array_equal(ours, matplotlib_rgb)

    # The PNG holds tile 4 exactly, every weight one square of whole pixels.
    picture = np.asarray(Image.open(plot_first_layer_weights(first, (28, 28), tmp_path / "w.png")))
    scale = 5
    top_row = np.repeat(ours[0], scale, axis=0)  # (140, 3): the tile's first row, scaled
    windows = np.lib.stride_tricks.sliding_window_view(picture, (1, len(top_row), 3))
    hits = np.argwhere((windows == top_row[None, :, :]).all(axis=(-3, -2, -1)))
    assert len(hits) >= 1
    y, x = hits[0][:2]
    block = picture[y : y + 28 * scale, x : x + 28 * scale]
    np.testing.assert_array_equal(block[::scale, ::scale], ours)


def test_colour_bar_ticks_are_round_numbers():
    assert nice_ticks(-1.67, 1.67) == pytest.approx([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    assert nice_ticks(0, 967) == [0, 200, 400, 600, 800]


def test_keras_backend_tensorflow_trains_with_keras_own_fit(tmp_path):
    """``KERAS_BACKEND=tensorflow`` is respected: Keras's ``fit`` trains the run, which is
    saved and scored as any other."""
    out = tmp_path / "run"
    env = {"KERAS_BACKEND": "tensorflow"}
    args = ("train", "digits", "--epochs", "10", "--no-plots", "--json", "--out", out)
    result = run_denselab(*args, env=env)
    assert result.returncode == 0, result.stderr
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_accuracy"]) == 10 and history["val_accuracy"][-1] > 0.7
    assert json.loads(result.stdout)["val_accuracy"] == pytest.approx(history["val_accuracy"][-1])


def test_a_config_that_cannot_train_is_refused_and_nothing_is_saved(tmp_path, monkeypatch):
    """A seed whose layers' seeds overflow 32 bits is refused before training; a Keras model
    that cannot be built (it builds during the last epochs) stops the run with its error, and
    nothing is saved."""
    from denselab.errors import DenselabError
    from denselab.runs import TrainConfig

    line = TrainConfig(dataset="line", units=[2, 1], activations=["relu", "linear"], epochs=3)
    with pytest.raises(DenselabError, match="seed"):
        train(dataclasses.replace(line, seed=2**32 - 1), out=tmp_path / "a")

    def broken(*args):
        raise DenselabError("the model could not be built")

    monkeypatch.setattr(sys.modules["denselab.train"], "_built_model", broken)
    with pytest.raises(DenselabError, match="could not be built"):
        train(line, out=tmp_path / "b", plots=False)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command,enabled", [(True, True), (True, False), (False, True)])
def test_the_collector_pauses_only_until_the_first_epoch(tmp_path, monkeypatch, command, enabled):
    """In a command's own process, `denselab train` turns Python's garbage collector off while
    it starts (dataset, imports, tracing) and on once the first epoch computes, freezing what
    start-up made; it never turns on one that was off, and called from Python code (a
    notebook, this test) it leaves the collector alone."""
    import gc

    from denselab import backend
    from denselab.train import train_command

    starting, recording = [], []
    load, record = sys.modules["denselab.train"].load_dataset, fitting._Recorder.record

    def loaded(*args, **kwargs):
        starting.append(gc.isenabled())
        return load(*args, **kwargs)

    def recorded(self, logs):
        recording.append(gc.isenabled())
        record(self, logs)

    monkeypatch.setattr(sys.modules["denselab.train"], "load_dataset", loaded)
    monkeypatch.setattr(fitting._Recorder, "record", recorded)
    monkeypatch.setattr(backend, "_command_process", command)
    was, frozen = gc.isenabled(), gc.get_freeze_count()
    (gc.enable if enabled else gc.disable)()
    try:
        train_command("line", out=tmp_path / "run", plots=False, epochs=2)
        paused = command and enabled
        assert starting == [enabled and not paused] and recording == [enabled, enabled]
        assert gc.isenabled() == enabled and (gc.get_freeze_count() > frozen) == paused
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def test_a_run_records_the_average_it_trained_with(lesson_run, tmp_path):
    """The lesson's run on mnist-5k (125 steps an epoch): run.json and the saved optimizer
    say the same momentum, a tenth of an epoch's span; a run.json from before denselab
    averaged (no ``ema_momentum``) means no average, and resumes on the compiled loop."""
    from denselab.runs import ema_momentum_for, read_config

    config = read_config(lesson_run.path)
    steps = -(-len(load_dataset("mnist-5k").x_train) // config.batch_size)
    assert config.ema_momentum == ema_momentum_for(steps) == round(1 - 10 / steps, 3)
    optimizer = lesson_run.model.optimizer.get_config()
    assert optimizer["use_ema"] and optimizer["ema_overwrite_frequency"] == steps
    assert optimizer["ema_momentum"] == config.ema_momentum

    old = tmp_path / "old"
    old.mkdir()
    settings = json.loads((lesson_run.path / "run.json").read_text())
    del settings["config"]["ema_momentum"]
    (old / "run.json").write_text(json.dumps(settings))
    assert read_config(old).ema_momentum == 0.0
