"""Lesson 2's ``model.evaluate(val_images, val_labels)``: loss and accuracy on the test split,
computed from ``model.predict`` (no compiled model needed), for any dense model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .data import Dataset
from .errors import DenselabError


def evaluate(model, data: Dataset) -> dict:
    """``model.evaluate`` on the test split, computed from ``model.predict`` (no compile needed)."""
    from .explain import classes, gives_logits, probabilities
    from .runs import as_model_input, check_sample_size

    check_sample_size(model, data)
    x = as_model_input(model, data.x_test)
    predictions = np.asarray(model.predict(x, verbose=0, batch_size=1024))
    predictions = predictions.reshape(len(predictions), -1)  # (n, 1, 10) for a (1, 784) input
    if data.task == "classification":
        logits = gives_logits(_network_or_none(model))
        outputs, predictions = predictions, probabilities(predictions, logits)
        binary = predictions.ndim == 2 and predictions.shape[1] == 1 and data.n_classes == 2
        if not binary and (predictions.ndim != 2 or predictions.shape[1] != data.n_classes):
            raise DenselabError(
                f"the model has {predictions.shape[-1]} outputs but {data.name} has "
                f"{data.n_classes} classes"
                + (
                    " (numbers to predict? add --task regression)"
                    if binary is False and predictions.shape[1] == 1
                    else ""
                )
            )
        if binary:  # one sigmoid unit is p(class 1): binary cross-entropy
            p1 = np.clip(predictions[:, 0], 1e-7, 1 - 1e-7)
            picked = np.where(data.y_test == 1, p1, 1 - p1)
        else:
            picked = np.clip(predictions[np.arange(len(predictions)), data.y_test], 1e-7, 1.0)
        loss = float(-np.mean(np.log(picked)))
        accuracy = float(np.mean(classes(outputs, logits) == data.y_test))
        return {
            "dataset": data.name,
            "n_samples": len(data.y_test),
            "loss": loss,
            "accuracy": accuracy,
        }
    predictions = predictions.reshape(len(predictions), -1)
    if predictions.shape[1] != data.n_targets:
        raise DenselabError(
            f"the model has {predictions.shape[1]} outputs but {data.name} has "
            f"{data.n_targets} number(s) to predict per sample"
        )
    error = predictions - np.reshape(data.y_test, predictions.shape)
    return {
        "dataset": data.name,
        "n_samples": len(data.y_test),
        "loss": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
    }


def evaluate_model(model_or_run: str | Path, data: str | Dataset | None = None) -> dict:
    """:func:`evaluate` for a model file or run folder, on its run's dataset unless ``data``."""
    from .model import load_model
    from .runs import resolve

    model = load_model(model_or_run)
    if not all(np.all(np.isfinite(w)) for w in model.get_weights()):
        raise DenselabError(
            f"{model_or_run} has weights that are NaN or infinite (a training that diverged?)"
        )
    dataset = resolve(model_or_run, data, required=True).dataset
    if _scales_raw_pixels(model, dataset):  # pixels 0-255, as the model's Rescaling expects
        dataset = replace(dataset, x_test=dataset.x_test * np.float32(255))
    return {"model": str(model_or_run), **evaluate(model, dataset)}


def _network_or_none(model):
    """The model as a :class:`~denselab.model.DenseNetwork`, or None if it is not one."""
    from .model import dense_network

    try:
        return dense_network(model, finite=False)
    except DenselabError:
        return None


def _scales_raw_pixels(model, dataset: Dataset) -> bool:
    """:func:`denselab.runs.scaled_twice` for a model that may not be a dense chain (then no)."""
    from .model import dense_network
    from .runs import scaled_twice

    try:
        return scaled_twice(dense_network(model), dataset)
    except DenselabError:
        return False
