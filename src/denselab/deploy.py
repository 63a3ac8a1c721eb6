"""Ship a dense Keras model to a microcontroller, and prove the C is what TFLite Micro computes.

``deploy`` runs the last steps of the pipeline: quantize (TFLiteConverter, int8) -> compile
(a C99 engine generated from the .tflite) -> verify (the whole test split through Keras,
TFLite Micro and the C engine) -> report (flash, RAM, MACs, arena, accuracies).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import _io, report
from .data import Dataset, load_dataset
from .errors import CheckFailed, DenselabError
from .model import dense_network, load_model
from .train import read_run_dataset

CALIBRATION_SAMPLES = 500  # training samples the converter measures ranges on
EXAMPLE_SAMPLES = 10  # test inputs written into test_samples.h for the C example


def deploy(
    model_path: str | Path,
    data: str | Dataset | None = None,
    out: str | Path = "deploy",
    name: str = "model",
    calibration_samples: int = CALIBRATION_SAMPLES,
) -> dict:
    """Write the int8 and float ``.tflite``, the C engine and ``report.json`` into ``out``.

    Raises :class:`CheckFailed` (exit status 1) if any test sample's C output differs from
    TFLite Micro's in any byte.
    """
    from .compile import generate_c, samples_header, tflite_c_array
    from .quantize import to_tflite

    if not name.isidentifier():
        raise DenselabError(f"--name {name!r} must be a C identifier, e.g. model or digits")
    model = load_model(model_path)
    network = dense_network(model)  # refuses Conv2D, LSTM, ... by name
    dataset = _dataset(model_path, data)
    _check_fits(network, dataset)
    folder = _io.ensure_dir(out)

    rng = np.random.default_rng(0)
    count = min(calibration_samples, len(dataset.x_train))
    calibration = dataset.x_train[np.sort(rng.choice(len(dataset.x_train), count, replace=False))]
    report.say(f"quantizing to int8 with TFLiteConverter, calibrated on {count} training samples")
    float_tflite, int8_tflite = to_tflite(network, calibration)
    _io.write_bytes(folder / f"{name}_float.tflite", float_tflite)
    _io.write_bytes(folder / f"{name}_int8.tflite", int8_tflite)

    engine = generate_c(int8_tflite, name=name)
    inputs = quantize_inputs(int8_tflite, dataset.x_test)
    example = samples_header(inputs[:EXAMPLE_SAMPLES], _labels(dataset)[:EXAMPLE_SAMPLES])
    for filename, text in {**engine, **tflite_c_array(int8_tflite, name), **example}.items():
        _io.write_text(folder / filename, text)

    result = {
        "model": str(model_path),
        "dataset": dataset.name,
        "name": name,
        "calibration_samples": count,
        "params": network.n_params,
        "macs": network.macs,
        "layers": [repr(layer) for layer in network.layers],
        **_measure(model, int8_tflite, engine, dataset, inputs, name),
    }
    _io.write_json(folder / "report.json", result)
    _show(result, folder)
    if result["c_vs_tflm_differing_samples"]:
        raise CheckFailed(
            f"{result['c_vs_tflm_differing_samples']} test samples differ between the C engine "
            f"and TFLite Micro; report in {folder / 'report.json'}"
        )
    return result


def verify_folder(folder: str | Path, data: str | None = None) -> dict:
    """Rerun deploy's comparisons (Keras, TFLite Micro, C engine) on a folder it wrote."""
    from .compile import generate_c

    folder = Path(folder)
    try:
        previous = json.loads((folder / "report.json").read_text())
        name, dataset_name, model_path = previous["name"], previous["dataset"], previous["model"]
        if not all(isinstance(v, str) for v in (name, dataset_name, model_path)):
            raise ValueError("report.json fields are not text")
        if not name.isidentifier():
            raise ValueError("not a C name")
        int8_tflite = (folder / f"{name}_int8.tflite").read_bytes()
        written = {f: (folder / f).read_text() for f in (f"{name}.h", f"{name}.c")}
    except (OSError, ValueError, KeyError, TypeError):
        raise DenselabError(f"{folder} is not a folder written by `denselab deploy`") from None
    # Never compile C from the folder itself (it may come from anyone): regenerate it from the
    # .tflite, and say so if the folder's copy is not what deploy writes.
    engine = generate_c(int8_tflite, name=name)
    if engine != written:
        raise CheckFailed(
            f"{folder / (name + '.c')} is not what deploy generates from {name}_int8.tflite; "
            "run `denselab deploy` again"
        )
    dataset = load_dataset(data or dataset_name)
    model = load_model(model_path) if Path(model_path).exists() else None
    inputs = quantize_inputs(int8_tflite, dataset.x_test)
    result = {
        "folder": str(folder),
        "dataset": dataset.name,
        "name": name,
        **_measure(model, int8_tflite, engine, dataset, inputs, name),
    }
    _show(result, folder)
    if result["c_vs_tflm_differing_samples"]:
        raise CheckFailed(f"{result['c_vs_tflm_differing_samples']} test samples differ")
    return result


def quantize_inputs(int8_tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Float inputs (n_samples, ...) -> int8 (n_samples, n_inputs): q = round(x / scale) + zp."""
    from .quantized import read_int8_tflite

    quantized = read_int8_tflite(int8_tflite)
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    q = np.round(flat / quantized.input_scale) + quantized.input_zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_outputs(int8_tflite: bytes, q: np.ndarray) -> np.ndarray:
    from .quantized import read_int8_tflite

    quantized = read_int8_tflite(int8_tflite)
    return (q.astype(np.float32) - quantized.output_zero_point) * quantized.output_scale


def _measure(model, int8_tflite, engine, dataset: Dataset, inputs, name) -> dict:
    from .verify import c_engine_invoke, c_engine_size, tflm_arena_bytes, tflm_invoke

    report.say(f"running {len(inputs):,} test samples through TFLite Micro and the C engine")
    tflm = tflm_invoke(int8_tflite, inputs)
    c_out = c_engine_invoke(engine, inputs)
    differing = int(np.any(tflm != c_out, axis=1).sum())
    size = c_engine_size(engine, name)
    result = {
        "test_samples": len(inputs),
        "c_vs_tflm_differing_samples": differing,
        "flash_bytes": size["flash_bytes"],
        "ram_bytes": size["ram_bytes"],
        "size_toolchain": size["toolchain"],
        "tflm_arena_bytes": tflm_arena_bytes(int8_tflite),
        "tflite_int8_bytes": len(int8_tflite),
    }
    labels = _labels(dataset)
    if dataset.task == "classification":
        if model is not None:
            keras_out = model.predict(dataset.x_test, verbose=0, batch_size=1024)
            result["keras_accuracy"] = float(np.mean(keras_out.argmax(1) == labels))
        result["tflm_int8_accuracy"] = float(np.mean(tflm.argmax(1) == labels))
        result["c_int8_accuracy"] = float(np.mean(c_out.argmax(1) == labels))
    else:
        truth = labels.astype(np.float32)
        if model is not None:
            keras_out = model.predict(dataset.x_test, verbose=0, batch_size=1024)[:, 0]
            result["keras_mae"] = float(np.mean(np.abs(keras_out - truth)))
        c_real = dequantize_outputs(int8_tflite, c_out)[:, 0]
        result["c_int8_mae"] = float(np.mean(np.abs(c_real - truth)))
    return result


def _show(result: dict, folder: Path) -> None:
    rows = []
    labels = {
        "params": "parameters",
        "macs": "MACs per inference",
        "flash_bytes": f"flash, C engine ({result['size_toolchain']})",
        "ram_bytes": "RAM, C engine (static: activation buffers, dense scratch)",
        "tflm_arena_bytes": "TFLite Micro arena (64-bit host)",
        "tflite_int8_bytes": ".tflite int8 file",
        "keras_accuracy": "accuracy, Keras float",
        "tflm_int8_accuracy": "accuracy, TFLM int8",
        "c_int8_accuracy": "accuracy, C engine int8",
        "keras_mae": "MAE, Keras float",
        "c_int8_mae": "MAE, C engine int8",
        "test_samples": "test samples compared",
        "c_vs_tflm_differing_samples": "samples where C differs from TFLM",
    }
    for key, label in labels.items():
        if key in result:
            value = result[key]
            text = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
            rows.append((label, text))
    report.table(f"deploy report: {folder}", ["", "value"], rows)
    verdict = "bit-exact" if result["c_vs_tflm_differing_samples"] == 0 else "DIFFERENT"
    report.say(f"C engine vs TFLite Micro on every test sample: {verdict}")


def _dataset(model_path, data) -> Dataset:
    if isinstance(data, Dataset):
        return data
    name = data or read_run_dataset(model_path)
    if name is None:
        raise DenselabError(
            f"{model_path} is not from a denselab run: add --data NAME (for calibration and checks)"
        )
    return load_dataset(name)


def _check_fits(network, dataset: Dataset) -> None:
    if int(np.prod(dataset.input_shape)) != network.n_inputs:
        raise DenselabError(
            f"{dataset.name} samples have shape {dataset.input_shape} but the model takes "
            f"{network.input_shape}"
        )


def _labels(dataset: Dataset) -> np.ndarray:
    return np.asarray(dataset.y_test).reshape(len(dataset.y_test), -1)[:, 0]
