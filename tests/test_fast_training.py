"""The speed-ups keep the course's numbers: a compiled epoch is Keras's ``fit``, bit for bit,
and the pictures drawn as pixels have matplotlib's colours."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from denselab.backend import keras, set_seed
from denselab.data import load_dataset
from denselab.epochs import CompiledEpochs
from denselab.model import build_model, dense_network
from denselab.plots import WEIGHT_CMAP, _weights_figure, plot_first_layer_weights, weight_tiles
from denselab.raster import colourize, nice_ticks
from denselab.train import compile_model, config_for


@pytest.fixture(scope="module")
def digits():
    """mnist-5k cut to 1,000 training images: 31 batches of 32 and a last batch of 8."""
    data = load_dataset("mnist-5k")
    data.x_train, data.y_train = data.x_train[:1000], data.y_train[:1000]
    return data


def _model(data, **options):
    config = config_for(data, "mnist-5k", epochs=2, **options)
    set_seed(0)
    model = build_model(data.input_shape, config.units, config.activations, seed=0)
    compile_model(model, config, data)
    return model


@pytest.mark.parametrize(
    "options",
    [{}, {"optimizer": "sgd", "schedule": "constant", "learning_rate": 0.05}],
    ids=["adam-cosine", "sgd"],
)
def test_compiled_epochs_compute_exactly_what_keras_fit_computes(digits, monkeypatch, options):
    keras()
    monkeypatch.setattr(np.random, "permutation", np.arange)  # the same order on both sides
    reference, compiled = _model(digits, **options), _model(digits, **options)
    history = reference.fit(
        digits.x_train,
        digits.y_train,
        epochs=2,
        batch_size=32,
        shuffle=False,
        validation_data=(digits.x_test, digits.y_test),
        verbose=0,
    ).history
    # 31 steps of 32 (a prime): calls of 8, 8, 8 and 7 steps, then the short batch of 8
    epochs = CompiledEpochs(
        compiled, digits.x_train, digits.y_train, (digits.x_test, digits.y_test), 32, 8
    )
    first = epochs.start_epoch()
    second = epochs.start_epoch(after=first)  # queued before the first is finished, as fit does
    logs = [epochs.finish_epoch(first), epochs.finish_epoch(second)]
    for ours, theirs in zip(compiled.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(ours.value), np.asarray(theirs.value))
    ours_state, their_state = compiled.optimizer.variables, reference.optimizer.variables
    for ours, theirs in zip(ours_state, their_state, strict=True):
        np.testing.assert_array_equal(np.asarray(ours.value), np.asarray(theirs.value))
    for key in ("loss", "accuracy", "val_accuracy"):
        assert logs[-1][key] == pytest.approx(history[key][-1], abs=1e-6)


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
