"""The pictures of a run: every picture of :mod:`denselab.plots` that applies to a run folder.

``curves.png`` and ``weights.png`` always (when there is a history and an image input);
with its dataset, ``confusion.png``, ``misclassified.png`` and ``predict.png`` for a
classifier, or ``line.png`` for the one-input line lessons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import fileio
from .data import Dataset
from .errors import DenselabError
from .model import dense_network, load_model
from .plots import (
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
) -> list[Path]:
    """Write every picture that applies to a run folder (or a ``.keras`` file) into ``out``.

    ``out`` defaults to the run folder (the model's folder). The dataset is ``data`` or the one
    named in the folder's ``run.json``; without either, only the curves and weights are drawn.
    ``model`` is the run's model when it is already in memory (training passes it, rather than
    reading it back). ``probabilities``, shape (n_test, n_outputs), are the model's outputs on
    the classification dataset's test split when the caller has them (training's last
    validation pass): the pictures then skip predicting them again. Returns the written paths.
    """
    from .runs import as_model_input, check_fits, read_history, resolve

    resolved = resolve(run_folder, data)
    model = model if model is not None else load_model(resolved.model_path)
    source = resolved.folder
    network = dense_network(model)
    if probabilities is not None:  # checked before any picture is written
        probabilities = _checked(probabilities, network, resolved.dataset)
    folder = fileio.ensure_dir(out) if out is not None else source
    written: list[Path] = []
    history = read_history(source)  # checked: a list of finite numbers per metric
    if history and history.get("loss"):
        written.append(plot_learning_curves(history, folder / "curves.png"))
    if len(network.input_shape) == 2:
        first = network.layers[0]
        written.append(plot_first_layer_weights(first, network.input_shape, folder / "weights.png"))
    data = resolved.dataset
    if data is None:
        return written
    check_fits(network, data)
    if data.task == "classification":
        if probabilities is None:
            x_test = as_model_input(model, data.x_test)
            probabilities = np.asarray(model.predict(x_test, verbose=0, batch_size=256))
        if probabilities.shape[1] == 1:  # one sigmoid unit is p(class 1)
            probabilities = np.hstack([1 - probabilities, probabilities])
        predicted = probabilities.argmax(axis=1)
        names = data.class_names or [str(i) for i in range(probabilities.shape[1])]
        written.append(plot_confusion(data.y_test, predicted, names, folder / "confusion.png"))
        if data.is_image:
            written.append(
                plot_misclassified(
                    data.x_test, data.y_test, probabilities, names, folder / "misclassified.png"
                )
            )
            written.append(
                plot_prediction(
                    data.x_test[0],
                    probabilities[0],
                    names,
                    folder / "predict.png",
                    true_label=int(data.y_test[0]),
                    title="test image 0",
                )
            )
    elif network.input_shape == (1,):

        def predict(x):
            return np.asarray(model.predict(x, verbose=0))

        written.append(plot_line_fit(predict, data.x_train, data.y_train, folder / "line.png"))
    return written


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
