"""The pictures of a run: every picture of :mod:`denselab.plots` that applies to a run folder.

``curves.png`` and ``weights.png`` always (when there is a history and an image input);
with its dataset, ``confusion.png``, ``misclassified.png`` and ``predict.png`` for a
classifier, or ``line.png`` for the one-input line lessons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import fileio, folders
from .data import Dataset
from .errors import DenselabError
from .explain import gives_logits
from .explain import probabilities as as_probabilities
from .model import dense_network, load_model
from .plots import (
    is_our_png,
    plot_confusion,
    plot_first_layer_weights,
    plot_learning_curves,
    plot_line_fit,
    plot_misclassified,
    plot_prediction,
)


def write_run_plots(
    run_folder: str | Path,
    data: str | Dataset | None = None,
    out: str | Path | None = None,
    model=None,
    probabilities: np.ndarray | None = None,
    force: bool = False,
) -> list[Path]:
    """Write every picture that applies to a run folder (or a ``.keras`` file) into ``out``.

    ``out`` defaults to the run folder (the model's folder). The dataset is ``data`` or the one
    named in the folder's ``run.json``; without either, only the curves and weights are drawn.
    ``model`` is the run's model when it is already in memory (training passes it, rather than
    reading it back). ``probabilities``, shape (n_test, n_outputs), are the model's outputs on
    the classification dataset's test split when the caller has them (training's last
    validation pass): the pictures then skip predicting them again. Returns the written paths.

    Everything is checked before the first picture is written: the dataset against the model,
    and each picture's path: a file there that denselab did not draw is refused unless
    ``force`` (as every command's output is).
    """
    from .runs import as_model_input, check_fits, read_history, resolve

    resolved = resolve(run_folder, data)
    model = model if model is not None else load_model(resolved.model_path)
    source = resolved.folder
    network = dense_network(model)
    data = resolved.dataset
    if probabilities is not None:  # checked before any picture is written
        probabilities = _checked(probabilities, network, data)
    if data is not None:
        check_fits(network, data)
    history = read_history(source)  # checked: a list of finite numbers per metric
    folder = Path(out) if out is not None else source
    if folder.exists() or folder.is_symlink():
        fileio.ensure_dir(folder)  # a file or a device there: one line, before any work
    drawings = []  # (file name, function drawing it to a path)
    if history and history.get("loss"):
        drawings.append(("curves.png", lambda path: plot_learning_curves(history, path)))
    if len(network.input_shape) == 2:
        first = network.layers[0]
        drawings.append(
            ("weights.png", lambda path: plot_first_layer_weights(first, network.input_shape, path))
        )
    if data is not None and data.task == "classification":
        if probabilities is None:
            x_test = as_model_input(model, data.x_test)
            probabilities = np.asarray(model.predict(x_test, verbose=0, batch_size=256))
        probabilities = as_probabilities(probabilities, gives_logits(network))  # (n, classes)
        if probabilities.shape[1] == 1:  # one sigmoid unit is p(class 1)
            probabilities = np.hstack([1 - probabilities, probabilities])
        drawings += _classifier_drawings(data, probabilities)
    elif data is not None and network.input_shape == (1,):

        def predict(x):
            return np.asarray(model.predict(x, verbose=0))

        drawings.append(
            ("line.png", lambda path: plot_line_fit(predict, data.x_train, data.y_train, path))
        )
    inputs = [resolved.model_path] + ([data.file] if data is not None and data.file else [])
    for name, _ in drawings:
        folders.check_output_file(folder / name, inputs=inputs, force=force, ours=is_our_png)
    if drawings:
        fileio.ensure_dir(folder)
    return [draw(folder / name) for name, draw in drawings]


def _classifier_drawings(data: Dataset, probabilities: np.ndarray) -> list:
    predicted = probabilities.argmax(axis=1)
    names = data.class_names or [str(i) for i in range(probabilities.shape[1])]
    drawings = [("confusion.png", lambda path: plot_confusion(data.y_test, predicted, names, path))]
    if data.is_image:
        drawings.append(
            (
                "misclassified.png",
                lambda path: plot_misclassified(
                    data.x_test, data.y_test, probabilities, names, path
                ),
            )
        )
        drawings.append(
            (
                "predict.png",
                lambda path: plot_prediction(
                    data.x_test[0],
                    probabilities[0],
                    names,
                    path,
                    true_label=int(data.y_test[0]),
                    title="test image 0",
                ),
            )
        )
    return drawings


def _checked(probabilities, network, data: Dataset | None) -> np.ndarray:
    """The caller's test-split probabilities as an array, or one line on what they should be."""
    if data is None or data.task != "classification":
        which = "none was given" if data is None else f"{data.name} is a {data.task} dataset"
        raise DenselabError(f"probabilities go with a classification dataset; {which}")
    probabilities = np.asarray(probabilities, dtype=np.float32)  # as Keras predicts them
    wanted = (len(data.x_test), network.n_outputs)
    if probabilities.shape != wanted:
        raise DenselabError(
            f"probabilities have shape {probabilities.shape}, not {wanted}: one row per test "
            f"sample of {data.name}, one column per output of the model"
        )
    if not np.isfinite(probabilities).all():
        raise DenselabError("probabilities hold NaN or infinity; the pictures need numbers")
    return probabilities
