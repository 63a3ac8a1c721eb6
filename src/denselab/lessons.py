"""Lesson 1 of the course: one neuron learns y = 2x - 1, then two layers do the same.

Everything here is the course's code on Keras 3, plus what the lesson only talks about: the
hand-written training loop, and the two-layer prediction recomputed by hand.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import report
from .backend import keras as _keras
from .backend import set_seed
from .data import load_dataset
from .errors import DenselabError
from .runs import MAX_EPOCHS

LESSON_LEARNING_RATE = 0.01  # the lesson's optimizer='sgd': Keras's SGD at its default rate
HAND_LEARNING_RATE = 0.05  # the hand-written loop's; why: hand_training_loop's docstring


@dataclass
class HandLoop:
    """The training loop in NumPy: gradient descent on mean squared error.

    w_ and b_ are the learned parameters; ``trace`` holds (epoch, w, b, loss) every so often.
    """

    w_: float
    b_: float
    loss_: float
    trace: list[tuple[int, float, float, float]]


def hand_training_loop(
    xs: np.ndarray,
    ys: np.ndarray,
    epochs: int = 500,
    learning_rate: float = HAND_LEARNING_RATE,
    every: int = 50,
) -> HandLoop:
    """Fit ``y = w x + b`` by gradient descent, the loop the lesson describes.

    loss = mean((w x + b - y)^2)
    dloss/dw = 2 mean((w x + b - y) x),  dloss/db = 2 mean(w x + b - y)

    Why 0.05 and not Keras's SGD default of 0.01: every step multiplies the distance to the
    best (w, b) by at most ``max |1 - learning_rate * h|`` over the loss's two curvatures h
    (:func:`convergence`; 11.3 and 1.03 for the lesson's six points). At 0.01, 500 steps
    leave 0.6% of the starting distance, which is why Keras stops at w = 1.998, b = -0.994;
    at 0.05 they leave 3e-12 (and above 2 / 11.3 = 0.177 the loop would diverge). The six
    points lie exactly on y = 2x - 1, so the best (w, b) is exactly (2, -1): the loop lands on
    it to float64 precision.
    """
    xs, ys = np.ravel(xs).astype(np.float64), np.ravel(ys).astype(np.float64)
    w = b = 0.0
    trace = []
    for epoch in range(epochs + 1):
        error = w * xs + b - ys
        loss = float(np.mean(error**2))
        if epoch % every == 0 or epoch == epochs:
            trace.append((epoch, w, b, loss))
        if epoch == epochs:
            break
        w -= learning_rate * 2 * np.mean(error * xs)
        b -= learning_rate * 2 * np.mean(error)
    return HandLoop(w, b, loss, trace)


def convergence(xs: np.ndarray, learning_rate: float, epochs: int) -> dict:
    """How far gradient descent on ``mean((w x + b - y)^2)`` gets in ``epochs`` steps.

    The loss is quadratic in (w, b) with Hessian ``H = 2 [[mean x^2, mean x], [mean x, 1]]``;
    a step maps the error e to ``(I - learning_rate H) e``. Returns the curvatures (H's
    eigenvalues), the largest stable learning rate ``2 / max curvature``, and ``remaining``:
    the fraction of the starting distance left after ``epochs`` steps (at most).
    """
    xs = np.ravel(xs).astype(np.float64)
    hessian = 2 * np.array([[np.mean(xs**2), np.mean(xs)], [np.mean(xs), 1.0]])
    curvatures = np.linalg.eigvalsh(hessian)
    shrink = float(np.max(np.abs(1 - learning_rate * curvatures)))
    return {
        "curvatures": curvatures.tolist(),
        "stable_below": float(2 / curvatures.max()),
        "remaining": shrink**epochs,
    }


def fit_line(
    model,
    xs: np.ndarray,
    ys: np.ndarray,
    epochs: int = 500,
    learning_rate: float = LESSON_LEARNING_RATE,
    record: bool = False,
) -> list[float]:
    """The lesson's training: ``compile(optimizer='sgd', loss='mean_squared_error')`` and
    ``fit(xs, ys, epochs=500)``, the six points one batch, so one epoch is one SGD step.

    The epochs run as one compiled call (``steps_per_execution=epochs``). With ``record`` they
    run one ``train_on_batch`` each, to keep every epoch's loss (what ``fit`` records): the
    same steps and, bit for bit, the same weights. Returns those losses (empty without
    ``record``).
    """
    keras = _keras()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="mean_squared_error",
        steps_per_execution=epochs,
    )
    if record:
        return [float(model.train_on_batch(xs, ys)) for _ in range(epochs)]
    repeat_x, repeat_y = np.tile(xs, (epochs, 1)), np.tile(ys, epochs)
    model.fit(repeat_x, repeat_y, batch_size=len(xs), epochs=1, shuffle=False, verbose=0)
    return []


def predict(model, x) -> np.ndarray:
    """``model.predict`` that also takes what the course passes: a number or a list of numbers.

    Keras 3 refuses ``model.predict([10.0])``; here a plain number or list becomes an array
    of shape (n_samples, *input_shape).
    """
    array = np.asarray(x, dtype=np.float32)
    input_shape = tuple(model.inputs[0].shape[1:])
    if array.shape == input_shape:
        array = array[None]
    elif array.ndim <= 1 and input_shape == (1,):
        array = array.reshape(-1, 1)
    return np.asarray(model(array, training=False))


# Lesson 1 on six points: bounds checked before Keras builds or trains anything.
MAX_HIDDEN = 10_000
MAX_X = 1e6  # float32 squares it in the loss and stays finite


def check_seed(seed) -> None:
    """A seed NumPy, Keras and JAX all take: a whole number from 0 to 2**32 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise DenselabError(f"--seed must be a whole number from 0 to 2**32 - 1, not {seed}")


def neuron_lesson(
    hidden: int = 0,
    epochs: int = 500,
    x: float = 10.0,
    seed: int = 0,
    learning_rate: float = LESSON_LEARNING_RATE,
    out: str | Path | None = None,
    show: bool = True,
) -> dict:
    """Teach lesson 1: the one neuron (``hidden=0``) or the two-layer network (``hidden=2``).

    Shows the lesson as the command line does (the weights, the prediction, the arithmetic)
    and returns its numbers: a dict with the learned weights, ``prediction`` at ``x`` and, for
    two layers, ``hand_prediction`` (the same number computed by hand from ``get_weights()``).
    ``show=False`` returns the numbers and shows nothing. ``out`` also saves the model as a
    run folder (``model.keras``, ``history.json`` with every epoch's loss, ``run.json``, the
    pictures) that ``denselab explore`` opens; its path is ``result["run"]``.
    """
    if not 0 <= hidden <= MAX_HIDDEN or not 1 <= epochs <= MAX_EPOCHS:
        raise DenselabError(
            f"--hidden must be from 0 to {MAX_HIDDEN:,} and --epochs from 1 to {MAX_EPOCHS:,}"
        )
    if not (math.isfinite(x) and abs(x) <= MAX_X):
        raise DenselabError(f"--x must be a number from -{MAX_X:g} to {MAX_X:g}, not {x}")
    check_seed(seed)
    with contextlib.nullcontext() if show else report.quieted():
        return _neuron_lesson(hidden, epochs, x, seed, learning_rate, out)


def _neuron_lesson(hidden, epochs, x, seed, learning_rate, out) -> dict:
    keras = _keras()
    set_seed(seed)
    line = load_dataset("line")
    xs, ys = line.x_train, line.y_train
    layers = [keras.layers.Dense(units=hidden, name="my_layer_1")] if hidden else []
    layers.append(keras.layers.Dense(units=1, name="my_layer_2" if hidden else "my_layer"))
    model = keras.Sequential([keras.Input(shape=(1,)), *layers])
    report.heading(
        "One neuron learns y = 2x - 1" if not hidden else f"Two layers: {hidden}, then 1"
    )
    report.say(f"xs = {xs.ravel().tolist()}\nys = {ys.tolist()}")
    started = time.perf_counter()
    losses = fit_line(model, xs, ys, epochs, learning_rate, record=out is not None)
    train_seconds = time.perf_counter() - started
    loss = float(np.mean((predict(model, xs)[:, 0] - ys) ** 2))
    prediction = float(predict(model, [x])[0, 0])
    result: dict = {
        "epochs": epochs,
        "loss": loss,
        "x": x,
        "prediction": prediction,
        "train_seconds": train_seconds,
    }
    if not hidden:
        (w,), (b,) = (np.ravel(a) for a in layers[0].get_weights())
        result.update(w=float(w), b=float(b))
        report.say(
            f"trained {epochs} epochs of SGD (learning rate {learning_rate}), loss {loss:.2e}"
        )
        report.say(f"my_layer.get_weights() = {_weights_repr(layers[0])}")
        report.say(f"w = {w:.7f} (close to 2), b = {b:.7f} (close to -1)")
        report.say(
            f"model.predict([{x}]) = {prediction:.6f} (close to 2 * {x:g} - 1 = {2 * x - 1:g})"
        )
        loop = hand_training_loop(xs, ys, epochs=epochs)
        _show_hand_loop(loop, xs, epochs, learning_rate)
        result["hand_loop"] = {
            "w": float(loop.w_),
            "b": float(loop.b_),
            "loss": float(loop.loss_),
            "learning_rate": HAND_LEARNING_RATE,
        }
    else:
        result.update(_two_layers_by_hand(layers[0], layers[1], x, prediction))
    if out is not None:
        result["run"] = str(_save_line_run(model, losses, hidden, epochs, learning_rate, seed, out))
    return result


def _save_line_run(model, losses, hidden, epochs, learning_rate, seed, out) -> Path:
    """The lesson's model as a run folder, with the recipe that repeats it in ``run.json``."""
    from . import fileio
    from .pictures import write_run_plots
    from .runs import LINE_RECIPE, TrainConfig, final_metrics, save_run

    units = [hidden, 1] if hidden else [1]
    recipe = {**LINE_RECIPE, "epochs": epochs, "learning_rate": learning_rate}
    config = TrainConfig(
        dataset="line", units=units, activations=["linear"] * len(units), seed=seed, **recipe
    )
    history = {"loss": losses}
    folder = fileio.ensure_dir(out)
    save_run(folder, model, config, history, final_metrics(history, "line", epochs, False))
    pictures = write_run_plots(folder)
    report.say(f"saved the run to {folder} (pictures: {', '.join(p.name for p in pictures)})")
    report.say(f"see it: denselab explore {folder}")
    return folder


def _show_hand_loop(loop: HandLoop, xs: np.ndarray, epochs: int, keras_rate: float) -> None:
    report.heading("The same neuron, trained by a hand-written loop (NumPy)")
    report.code(
        "w, b = 0, 0\n"
        f"for epoch in range({epochs}):\n"
        "    error = w * xs + b - ys            # prediction minus truth\n"
        f"    w -= {HAND_LEARNING_RATE} * 2 * mean(error * xs)   # d(loss)/dw\n"
        f"    b -= {HAND_LEARNING_RATE} * 2 * mean(error)        # d(loss)/db"
    )
    rows = [(epoch, f"{w:.6f}", f"{b:.6f}", f"{loss:.3e}") for epoch, w, b, loss in loop.trace]
    report.table("w and b as they move", ["epoch", "w", "b", "loss"], rows)
    report.say(f"hand loop: w = {loop.w_:.6f}, b = {loop.b_:.6f}  (exact fit: w = 2, b = -1)")
    hand = convergence(xs, HAND_LEARNING_RATE, epochs)
    keras_way = convergence(xs, keras_rate, epochs)
    report.say(
        f"Why learning rate {HAND_LEARNING_RATE} here and {keras_rate} in Keras (SGD's default): "
        f"each step shrinks the distance to the best (w, b) by a fixed factor, so after {epochs} "
        f"steps {keras_way['remaining']:.1%} of it is left at {keras_rate} (Keras's w and b are "
        f"close to 2 and -1, not on them) and {hand['remaining']:.0e} at {HAND_LEARNING_RATE}. "
        f"Rates above {hand['stable_below']:.3f} would diverge for these six points.\n"
        "Why exactly 2 and -1: the six points lie on y = 2x - 1, so that line has zero loss "
        "and is the best (w, b); the loop converges to it."
    )


def _two_layers_by_hand(layer_1, layer_2, x: float, prediction: float) -> dict:
    """The lesson's arithmetic, in float32 like ``get_weights()``, neuron by neuron."""
    kernel_1, bias_1 = layer_1.get_weights()
    kernel_2, bias_2 = layer_2.get_weights()
    report.say(f"my_layer_1.get_weights() = {_weights_repr(layer_1)}")
    report.say(
        "  kernel has shape (1, 2): row 0 is the one input x, column j is neuron j's weight;\n"
        "  it is not 'weight and bias of neuron 1, then neuron 2': the biases are a second\n"
        "  array, one bias per neuron."
    )
    report.say(f"my_layer_2.get_weights() = {_weights_repr(layer_2)}")
    report.say(
        "  kernel has shape (2, 1): row i is the output of layer-1 neuron i, one column for\n"
        "  the single neuron; then its one bias."
    )
    value = np.float32(x)
    neuron_1 = kernel_1[0][0] * value + bias_1[0]
    neuron_2 = kernel_1[0][1] * value + bias_1[1]
    neuron_3 = kernel_2[0][0] * neuron_1 + kernel_2[1][0] * neuron_2 + bias_2[0]
    report.heading(f"The prediction for x = {x:g}, by hand")
    report.code(
        f"neuron1 = w1*x + b1 = {kernel_1[0][0]:.7f} * {x:g} + ({bias_1[0]:.7f}) = {neuron_1:.7f}\n"
        f"neuron2 = w2*x + b2 = {kernel_1[0][1]:.7f} * {x:g} + ({bias_1[1]:.7f}) = {neuron_2:.7f}\n"
        f"neuron3 = w1*neuron1 + w2*neuron2 + b\n"
        f"        = {kernel_2[0][0]:.7f} * {neuron_1:.7f} + ({kernel_2[1][0]:.7f}) * {neuron_2:.7f}"
        f" + ({bias_2[0]:.7f})\n"
        f"        = {neuron_3:.7f}"
    )
    report.say(f"model.predict([{x:g}]) = {prediction:.7f}; by hand = {float(neuron_3):.7f}")
    return {
        "hand_prediction": float(neuron_3),
        "layer_1": {"kernel": kernel_1.tolist(), "bias": bias_1.tolist()},
        "layer_2": {"kernel": kernel_2.tolist(), "bias": bias_2.tolist()},
    }


def _weights_repr(layer) -> str:
    return "[" + ", ".join(repr(w) for w in layer.get_weights()) + "]"


def classifier_lesson(run, data) -> dict:
    """Lesson 2 after ``fit``: evaluate, predict test image 0, and count the weights."""
    from .evaluate import evaluate
    from .explain import neuron_name

    model = run.model
    report.heading("model.evaluate(val_images, val_labels)")
    scores = evaluate(model, data)
    report.say(
        f"loss {scores['loss']:.4f}, accuracy {scores['accuracy']:.4f} on {len(data.x_test):,}"
    )
    report.heading("classifications = model.predict(val_images); classifications[0]")
    probabilities = np.asarray(model.predict(data.x_test[:1], verbose=0))[0]
    with np.printoptions(precision=7):
        report.say(f"{probabilities}")
    label = int(data.y_test[0])
    guess = int(np.argmax(probabilities))
    report.say(
        f"true label {label}; the output neuron of class {guess} ({neuron_name(2, guess)}, "
        f"index {guess} of the 10 probabilities) is the largest ({probabilities[guess]:.2%}), "
        f"so the model says {guess}" + (" - right!" if guess == label else " - wrong.")
    )
    if data.name == "mnist-5k":
        report.say(f"(mnist-5k's test image 0 is a {label}; the lesson's, from full MNIST, is a 7)")
    report.heading("Inspect weights")
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    sizes = []
    previous = int(np.prod(data.input_shape))
    for number, layer in enumerate(dense, start=1):
        kernel, bias = layer.get_weights()
        sizes.append({"layer": number, "kernel": int(kernel.size), "bias": int(bias.size)})
        report.say(
            f"layer_{number}.get_weights()[0].size = {kernel.size:,}: {previous} inputs x "
            f"{kernel.shape[1]} neurons, one weight per input in every neuron\n"
            f"layer_{number}.get_weights()[1].size = {bias.size}: one bias per neuron"
        )
        previous = kernel.shape[1]
    report.say(
        "Each neuron computes y = w1*x1 + w2*x2 + ... + wn*xn + b: every pixel has a weight in\n"
        "every first-layer neuron; the second layer weighs the first layer's outputs. Neurons\n"
        f"are numbered from 1, as the lesson's N11 ... N120: {neuron_name(2, 0)} (layer 2, "
        f"neuron 1) = W1*{neuron_name(1, 0)} + W2*{neuron_name(1, 1)} + ... + "
        f"W{sizes[0]['bias']}*{neuron_name(1, sizes[0]['bias'] - 1)} + bias."
    )
    return {
        "evaluate": scores,
        "test_image_0": {
            "probabilities": probabilities.tolist(),
            "label": label,
            "predicted": guess,
        },
        "weight_sizes": sizes,
    }
