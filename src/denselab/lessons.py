"""Lesson 1 of the course: one neuron learns y = 2x - 1, then two layers do the same.

Everything here is the course's code on Keras 3, plus what the lesson only talks about: the
hand-written training loop, and the two-layer prediction recomputed by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import report
from ._backend import keras as _keras
from ._backend import set_seed
from .data import load_dataset
from .errors import DenselabError


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
    xs: np.ndarray, ys: np.ndarray, epochs: int = 500, learning_rate: float = 0.05, every: int = 50
) -> HandLoop:
    """Fit ``y = w x + b`` by gradient descent, the loop the lesson describes.

    loss = mean((w x + b - y)^2)
    dloss/dw = 2 mean((w x + b - y) x),  dloss/db = 2 mean(w x + b - y)
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


def neuron_lesson(
    hidden: int = 0, epochs: int = 500, x: float = 10.0, seed: int = 0, learning_rate: float = 0.01
) -> dict:
    """Train the lesson's one neuron (``hidden=0``) or its two-layer network (``hidden=2``).

    Returns a dict with the learned weights, ``prediction`` at ``x`` and, for two layers,
    ``hand_prediction``: the same number computed by hand from ``get_weights()``.
    """
    if hidden < 0 or epochs < 1:
        raise DenselabError("--hidden must be 0 or more and --epochs at least 1")
    keras = _keras()
    set_seed(seed)
    line = load_dataset("line")
    xs, ys = line.x_train, line.y_train
    layers = [keras.layers.Dense(units=hidden, name="my_layer_1")] if hidden else []
    layers.append(keras.layers.Dense(units=1, name="my_layer_2" if hidden else "my_layer"))
    model = keras.Sequential([keras.Input(shape=(1,)), *layers])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="mean_squared_error",
        steps_per_execution=epochs,
    )
    report.heading(
        "One neuron learns y = 2x - 1" if not hidden else f"Two layers: {hidden}, then 1"
    )
    report.say(f"xs = {xs.ravel().tolist()}\nys = {ys.tolist()}")
    # All six points are one batch, so 500 epochs are 500 steps: run them in one compiled call.
    repeat_x, repeat_y = np.tile(xs, (epochs, 1)), np.tile(ys, epochs)
    started = time.perf_counter()
    model.fit(repeat_x, repeat_y, batch_size=len(xs), epochs=1, shuffle=False, verbose=0)
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
        _show_hand_loop(loop)
        result["hand_loop"] = {
            "w": float(loop.w_),
            "b": float(loop.b_),
            "loss": float(loop.loss_),
            "learning_rate": 0.05,
        }
    else:
        result.update(_two_layers_by_hand(layers[0], layers[1], x, prediction))
    return result


def _show_hand_loop(loop: HandLoop) -> None:
    report.heading("The same neuron, trained by a hand-written loop (NumPy)")
    report.code(
        "w, b = 0, 0\n"
        "for epoch in range(500):\n"
        "    error = w * xs + b - ys            # prediction minus truth\n"
        "    w -= 0.05 * 2 * mean(error * xs)   # d(loss)/dw\n"
        "    b -= 0.05 * 2 * mean(error)        # d(loss)/db"
    )
    rows = [(epoch, f"{w:.6f}", f"{b:.6f}", f"{loss:.3e}") for epoch, w, b, loss in loop.trace]
    report.table("w and b as they move", ["epoch", "w", "b", "loss"], rows)
    report.say(f"hand loop: w = {loop.w_:.6f}, b = {loop.b_:.6f}  (exact fit: w = 2, b = -1)")


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
    from .train import evaluate

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
        f"true label {label}; neuron {guess} has the largest probability "
        f"({probabilities[guess]:.2%}), so the model says {guess}"
        + (" - right!" if guess == label else " - wrong.")
    )
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
        "every first-layer neuron; the second layer weighs the first layer's 20 outputs."
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


def tour(seed: int = 0, epochs: int = 20, out: str | Path | None = None) -> dict:
    """Lessons 1, 1b and 2 end to end, offline: full MNIST if Keras's cache has it, else mnist-5k.

    Writes the classifier's run folder (default ``runs/tour-<dataset>``) with its pictures
    and explorer page, and returns every number the lessons show.
    """
    from .data import available
    from .explore import write_explorer
    from .plots import write_run_plots
    from .train import TrainConfig, train

    lesson_1 = neuron_lesson(seed=seed)
    lesson_1b = neuron_lesson(hidden=2, seed=seed)
    dataset = "mnist" if available("mnist")[0] else "mnist-5k"
    report.heading("Lesson 2: the digit classifier, Flatten -> Dense(20, relu) -> Dense(10)")
    if dataset == "mnist-5k":
        report.say(
            "Full MNIST is not on this machine (~/.keras/datasets/mnist.npz), so this tour uses "
            "mnist-5k: 5,000 real MNIST digits (4,000 train / 1,000 validation). Expect about "
            "98% train / 92% validation instead of the lesson's 98% / 96%."
        )
    else:
        report.say("Using full MNIST from the Keras cache, as the lesson does.")
    data = load_dataset(dataset)
    run = train(
        TrainConfig(dataset=dataset, epochs=epochs, seed=seed),
        out=out or Path("runs") / f"tour-{dataset}",
        data=data,
    )
    lesson_2 = classifier_lesson(run, data)
    report.heading("See inside")
    pictures = write_run_plots(run.path, data=data)
    report.say("pictures: " + ", ".join(str(p) for p in pictures))
    page = write_explorer(run.path, run.path / "explorer.html", data=data)
    report.say(f"explorer page (works offline; draw a digit, watch every neuron): {page}")
    on_chip = _on_the_chip(run.path, data)
    report.heading("Next")
    report.say(
        f"denselab explain {run.path} --index 0     # test image 0, neuron by neuron\n"
        f"denselab inspect {run.path} --layer 1 --neuron 0\n"
        f"denselab verify {run.path}/deploy --target cortex-m0plus   # the same C on a smaller core"
    )
    return {
        "neuron": lesson_1,
        "two_layers": lesson_1b,
        "classifier": {
            "dataset": dataset,
            "model_path": str(run.path / "model.keras"),
            **run.metrics,
            **lesson_2,
        },
        "pictures": [str(p) for p in pictures],
        "explorer": str(page),
        "on_the_chip": on_chip,
    }


def _on_the_chip(run_folder: Path, data) -> dict:
    """The tour's last step: int8 + C (deploy), run on an emulated Cortex-M4 when the tools are
    installed; otherwise what was skipped and how to install it."""
    from importlib.util import find_spec

    from .deploy import deploy
    from .target import available
    from .views import target_line

    report.heading("On the chip: int8, C, and an emulated Cortex-M4")
    if find_spec("tensorflow") is None or find_spec("tflite_micro") is None:
        why = "TensorFlow and TFLite Micro are not installed; pip install 'denselab[deploy]'"
        report.say(f"skipped: {why}")
        return {"skipped": why}
    ready, why = available()
    folder = run_folder / "deploy"
    with report.quieted():
        result = deploy(run_folder, data=data, out=folder, target="cortex-m4" if ready else None)
    if not ready:
        report.say(f"deployed to {folder}; the emulated Cortex-M4 was skipped: {why}")
        return {"deploy": str(folder), "skipped": why}
    chip = result["target"]  # deploy raised CheckFailed had any byte differed
    report.say(
        f"your network on a Cortex-M4: 0 of {chip['inputs']:,} outputs differ from TensorFlow "
        f"Lite Micro; {chip['instructions']['median']:,} instructions ~ "
        f"{chip['ms_at_64_mhz']:.1f} ms at 64 MHz (deployed to {folder})"
    )
    report.say(target_line(chip))
    return {"deploy": str(folder), "target": chip}
