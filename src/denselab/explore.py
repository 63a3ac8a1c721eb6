"""The explorer: one self-contained HTML page to look inside a trained dense network.

The page holds the model's kernels and biases, a few hundred test images and the run's
learning curves, all inline; its JavaScript recomputes ``activation(dot(input, kernel) +
bias)`` layer by layer as the learner draws, so it works from ``file://`` with no network.
"""

from __future__ import annotations

import base64
import html
import re
from importlib import resources
from pathlib import Path

import numpy as np

from . import _io
from .data import Dataset
from .model import DenseNetwork, dense_network, load_model

DEFAULT_TEST_IMAGES = 300  # ~240 KB of uint8 pixels for 28x28 images
PAGE_MARK = b"<title>denselab explorer: "  # how a page this module wrote begins

# The page's JavaScript (templates/explorer/), joined in this order into one <script>. Each file
# adds one entry to the `Explorer` namespace that state.js declares and, as it loads, reads only
# the entries before it; main.js, last, wires them together and starts the page.
JS_MODULES = (
    "state.js",
    "math.js",
    "model.js",
    "format.js",
    "draw.js",
    "preprocess.js",
    "canvas.js",
    "inputs.js",
    "panels.js",
    "formula.js",
    "network.js",
    "charts.js",
    "gallery.js",
    "testhook.js",
    "main.js",
)


def write_explorer(
    model_path_or_run: str | Path,
    out: str | Path | None = None,
    data: str | Dataset | None = None,
    n_test_images: int = DEFAULT_TEST_IMAGES,
    force: bool = False,
) -> Path:
    """Write the explorer page for a model (a ``.keras``/``.h5`` file or a run folder).

    ``out`` defaults to ``explorer.html`` in the run folder (the model's folder). The test
    images are the first ``n_test_images`` of the dataset's test split (indices as in the
    dataset); ``data`` defaults to the dataset named in the run's ``run.json``. Without a
    dataset (or with ``n_test_images=0``) the page still shows the network and, for image
    models, the drawing canvas. Returns the path written.

    ``out`` is refused when it is the model itself, not a regular file, or a file denselab
    did not write (unless ``force``); the page is added to its folder's manifest, if any.
    """
    from .runs import check_fits, read_history, resolve

    resolved = resolve(model_path_or_run, data)
    folder = resolved.folder
    inputs = [resolved.model_path] + ([data] if isinstance(data, (str, Path)) else [])
    page_path = _io.check_output_file(
        out or folder / "explorer.html", inputs=inputs, force=force, ours=is_explorer_page
    )
    network = dense_network(load_model(resolved.model_path))
    data = resolved.dataset
    if data is not None:
        check_fits(network, data)
    payload = explorer_data(network, data, n_test_images)
    payload["title"] = folder.name if resolved.is_run else resolved.model_path.name
    history = read_history(folder)  # checked: a list of finite numbers per metric
    if history is not None:
        payload["history"] = history
    if (folder / "metrics.json").exists():
        metrics = _io.read_json(folder / "metrics.json")
        if isinstance(metrics, dict):  # only numbers: the page formats them as numbers
            payload["metrics"] = {
                key: value
                for key, value in metrics.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            }
    if payload.get("history"):
        payload["history"].pop("epoch_end_unix", None)
    _io.write_text(page_path, render_page(payload))
    _io.add_to_manifest(page_path.parent, page_path.name)
    return Path(out) if out is not None else page_path


def is_explorer_page(path: Path) -> bool:
    """Whether ``path`` is a page this module wrote (replacing it loses nothing)."""
    with open(path, "rb") as stream:
        return PAGE_MARK in stream.read(2048)


def explorer_data(network: DenseNetwork, data: Dataset | None, n_test_images: int) -> dict:
    """Everything the page needs, as JSON-ready values (arrays as base64 little-endian)."""
    shape = tuple(network.input_shape)
    classify = network.layers[-1].activation == "softmax"
    if data is not None:
        classify = data.task == "classification"
    payload: dict = {
        "inputShape": list(shape),
        "image": {"height": shape[0], "width": shape[1]} if len(shape) == 2 else None,
        "task": "classification" if classify else "regression",
        "classNames": None,
        "layers": [
            {
                "name": layer.name,
                "activation": layer.activation,
                "nInputs": layer.n_inputs,
                "nNeurons": layer.n_neurons,
                "kernel": _b64(layer.kernel.astype("<f4")),  # row-major (n_inputs, n_neurons)
                "bias": _b64(layer.bias.astype("<f4")),
            }
            for layer in network.layers
        ],
        "test": None,
        "trainPoints": None,
        "dataset": data.name if data is not None else None,
    }
    if classify:
        names = data.class_names if data is not None and data.class_names else None
        payload["classNames"] = names or [str(i) for i in range(network.n_outputs)]
    if data is not None and n_test_images > 0:
        payload["test"] = _test_samples(data, n_test_images)
    if data is not None and shape == (1,):
        payload["trainPoints"] = {
            "x": np.ravel(data.x_train).astype(float).tolist(),
            "y": np.ravel(data.y_train).astype(float).tolist(),
        }
    return payload


def render_page(payload: dict) -> str:
    """Fill the template: CSS, JavaScript and the JSON payload inline (no external file).

    Every placeholder is filled in one pass over the template, so text from a file (a run
    folder named ``{{js}}``) is never searched for placeholders itself.
    """
    folder = resources.files("denselab") / "templates" / "explorer"
    page = (folder / "page.html").read_text(encoding="utf-8")
    parts = {
        "title": html.escape(str(payload.get("title", "model"))),
        "css": (folder / "page.css").read_text(encoding="utf-8"),
        "js": "\n".join((folder / name).read_text(encoding="utf-8") for name in JS_MODULES),
        # "<" escaped so no string in the data can close the <script> element early.
        "data": _io.to_json(payload, compact=True).replace("<", "\\u003c"),
    }
    return re.sub(r"\{\{(title|css|js|data)\}\}", lambda match: parts[match[1]], page)


def _test_samples(data: Dataset, limit: int) -> dict:
    x = np.asarray(data.x_test[:limit], dtype=np.float32)
    as_bytes = np.round(x * 255.0)
    # Images stored as k/255 (as load_dataset makes them) travel as one byte per pixel.
    exact = np.array_equal((as_bytes / 255.0).astype(np.float32), x) and as_bytes.max() <= 255
    encoded = as_bytes.astype(np.uint8) if exact else x.astype("<f4")
    return {
        "count": len(x),
        "total": len(data.x_test),  # the header's accuracy is over all of them
        "encoding": "uint8" if exact else "float32",
        "x": _b64(encoded),
        "y": np.asarray(data.y_test[:limit]).tolist(),
    }


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")
