"""The explorer: one self-contained HTML page to look inside a trained dense network.

The page holds the model's kernels and biases, a few hundred test images and the run's
learning curves, all inline; its JavaScript recomputes ``activation(dot(input, kernel) +
bias)`` layer by layer as the learner draws, so it works from ``file://`` with no network.
Made from a deployed model, it also holds the int8 network, and its int8 mode repeats TFLite
Micro's integer arithmetic (``int8.js``, a port of ``denselab.int8.arithmetic``) to the byte.
"""

from __future__ import annotations

import base64
import html
import re
from importlib import resources
from pathlib import Path

import numpy as np

from . import fileio, folders
from .data import Dataset
from .errors import DenselabError
from .model import DenseNetwork, dense_network, for_pixels_0_1, load_model

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
    "int8.js",
    "formula_int8.js",
    "chip.js",
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
    """Write the explorer page for a model (a ``.keras``/``.h5`` file or a run folder) or for
    a folder ``denselab deploy`` wrote.

    From a deploy folder, or a run folder with one in ``deploy/``, the page also carries the
    int8 network and the deploy report's figures (:func:`int8_data`): its int8 mode runs the
    chip's integer arithmetic. A deploy folder's page goes into that folder.

    ``out`` defaults to ``explorer.html`` in the run folder (the model's folder). The test
    images are the first ``n_test_images`` of the dataset's test split (indices as in the
    dataset); ``data`` defaults to the dataset named in the run's ``run.json``. Without a
    dataset (or with ``n_test_images=0``) the page still shows the network and, for image
    models, the drawing canvas. Returns the path written.

    ``out`` is refused when it is the model itself, not a regular file, or a file denselab
    did not write (unless ``force``); the page is added to its folder's manifest, if any.
    """
    from .deploy import deployed_dataset, deployed_model
    from .runs import check_fits, read_history, resolve

    deploy_folder = find_deploy_folder(Path(model_path_or_run))
    deployed, page_folder = None, None
    if deploy_folder is not None:
        deployed = fileio.read_json(deploy_folder / "report.json")
        if not isinstance(deployed, dict) or not isinstance(deployed.get("name"), str):
            raise DenselabError(f"{deploy_folder} has a damaged report.json; deploy again")
        if Path(model_path_or_run).resolve() == deploy_folder.resolve():
            model_path_or_run = deployed_model(deployed)  # a deploy folder: its float model
            data = data or deployed_dataset(deployed)
            page_folder = deploy_folder  # the page sits in the folder named
    resolved = resolve(model_path_or_run, data)
    folder = resolved.folder
    inputs = [resolved.model_path] + ([data] if isinstance(data, (str, Path)) else [])
    page_path = folders.check_output_file(
        out or (page_folder or folder) / "explorer.html",
        inputs=inputs,
        force=force,
        ours=is_explorer_page,
        recorded=False,
    )
    network = dense_network(load_model(resolved.model_path))
    data = resolved.dataset
    if network.scales_raw_pixels and len(network.input_shape) == 2:
        if deployed is not None:
            raise DenselabError(
                f"the model scales pixels 0-255 itself (layer {network.scales_raw_pixels!r}); "
                "the page's int8 mode takes pixels 0-1: explore the model file instead"
            )
        # the page's pixels are 0-1 (its drawing pad's too): the Dense layer's own kernel
        data = data if data is None or data.file is None else _pixels_0_1(data)
        network = for_pixels_0_1(network)
    if data is not None:
        check_fits(network, data)
    payload = explorer_data(network, data, n_test_images)
    payload["title"] = folder.name if resolved.is_run else resolved.model_path.name
    history = read_history(folder)  # checked: a list of finite numbers per metric
    if history is not None:
        payload["history"] = history
    if (folder / "metrics.json").exists():
        metrics = fileio.read_json(folder / "metrics.json")
        if isinstance(metrics, dict):  # only numbers: the page formats them as numbers
            payload["metrics"] = {
                key: value
                for key, value in metrics.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            }
    if payload.get("history"):
        payload["history"].pop("epoch_end_unix", None)
    if deploy_folder is not None:
        payload.update(int8_data(deploy_folder, deployed, payload["test"]))
    fileio.write_text(page_path, render_page(payload))
    folders.add_to_manifest(page_path.parent, page_path.name)
    return Path(out) if out is not None else page_path


def is_explorer_page(path: Path) -> bool:
    """Whether ``path`` is a page this module wrote (replacing it loses nothing)."""
    with open(path, "rb") as stream:
        return PAGE_MARK in stream.read(2048)


def _pixels_0_1(data: Dataset) -> Dataset:
    """A user's images of pixels 0-255 as 0-1, the page's scale."""
    from dataclasses import replace

    return replace(data, x_test=np.asarray(data.x_test, np.float32) / np.float32(255))


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


def find_deploy_folder(path: Path) -> Path | None:
    """The folder ``denselab deploy`` wrote: ``path`` itself, or a run folder's ``deploy/``."""
    for folder in (path, path / "deploy"):
        if (folder / "report.json").is_file() and not (folder / "run.json").is_file():
            return folder
    return None


def int8_data(deploy_folder: Path, deployed: dict, test: dict | None) -> dict:
    """The int8 network the chip runs and the deploy report's figures, for the page's int8 mode.

    Integers travel as JSON numbers (multipliers, shifts, zero points) or base64 little-endian
    (weights int8 ``(n_neurons, n_inputs)`` as TFLite's filter, biases int32), so the page's
    JavaScript can repeat TFLite Micro's arithmetic to the byte.
    """
    from .int8.tflite import read_int8_tflite

    name = deployed["name"]
    quantized = read_int8_tflite((deploy_folder / f"{name}_int8.tflite").read_bytes())
    layers = []
    for layer in quantized.layers:
        common = {
            "kind": layer.kind,
            "name": layer.name,
            "inputScale": layer.input_scale,
            "inputZeroPoint": layer.input_zero_point,
            "outputScale": layer.output_scale,
            "outputZeroPoint": layer.output_zero_point,
        }
        if layer.kind == "dense":
            common.update(
                nInputs=layer.n_inputs,
                nNeurons=layer.n_outputs,
                weights=_b64(layer.weights.astype(np.int8)),
                bias=None if layer.bias is None else _b64(layer.bias.astype("<i4")),
                outputMultiplier=[int(m) for m in layer.output_multiplier],
                outputShift=[int(s) for s in layer.output_shift],
                activation=layer.activation,
                activationMin=layer.activation_min,
                activationMax=layer.activation_max,
            )
        elif layer.kind == "softmax":
            common.update(
                size=layer.size,
                inputMultiplier=layer.input_multiplier,
                inputLeftShift=layer.input_left_shift,
                diffMin=layer.diff_min,
            )
        else:  # logistic or tanh
            common.update(
                size=layer.size,
                inputMultiplier=layer.input_multiplier,
                inputLeftShift=layer.input_left_shift,
                inputRangeRadius=layer.input_range_radius,
            )
        layers.append(common)
    figures = {
        key: deployed[key]
        for key in (
            "name",
            "test_samples",
            "c_vs_tflm_differing_samples",
            "flash_bytes",
            "ram_bytes",
            "size_toolchain",
            "tflm_arena_bytes",
            "keras_accuracy",
            "tflm_int8_accuracy",
            "c_int8_accuracy",
            "target",
        )
        if key in deployed
    }
    quantization = deployed.get("quantization")
    if isinstance(quantization, dict):
        shown = test["count"] if test else 0
        figures["quantization"] = {
            "layers": quantization.get("layers", []),
            "disagree_total": len(quantization.get("int8_float_disagree", [])),
            # Only the test images the page holds can be shown.
            "disagree": [i for i in quantization.get("int8_float_disagree", []) if i < shown],
        }
    return {
        "int8": {
            "inputScale": quantized.input_scale,
            "inputZeroPoint": quantized.input_zero_point,
            "outputScale": quantized.output_scale,
            "outputZeroPoint": quantized.output_zero_point,
            "layers": layers,
        },
        "deploy": figures,
    }


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
        "data": fileio.to_json(payload, compact=True).replace("<", "\\u003c"),
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
