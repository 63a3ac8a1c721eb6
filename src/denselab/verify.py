"""Verify: the C engine against TensorFlow Lite Micro, sample by sample, and what it costs.

:func:`measure` is the one place the engine is measured (``deploy``, ``verify`` and every
search trial call it): the test split through TFLite Micro and the C engine, the bytes
compared, flash and RAM, and the accuracies. :func:`verify_folder` reruns it on a folder
``deploy`` wrote, from the ``.tflite`` (never from the folder's C, which may come from anyone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import fileio, folders, report, runs
from .data import Dataset, load_dataset
from .errors import CheckFailed, DenselabError


def measure(
    int8_tflite: bytes,
    engine: dict[str, str],
    dataset: Dataset,
    model=None,
    name: str = "model",
    oracle: bool = True,
) -> dict:
    """Run ``dataset``'s test split through the C engine (and TFLite Micro) and size it.

    Returns the number of samples whose output differs from TFLM's in any byte
    (``c_vs_tflm_differing_samples``), flash and RAM of the engine, TFLM's arena, and the
    accuracy (or mean absolute error) of Keras's float ``model`` (when given), TFLM and the
    C engine. ``oracle=False`` skips TFLM (the search's trials score the C engine alone).
    """
    from .engine import c_engine_invoke, c_engine_size
    from .int8.tflite import read_int8_tflite
    from .int8.tflm import tflm_arena_bytes, tflm_invoke

    quantized = read_int8_tflite(int8_tflite)
    inputs = quantized.quantize_input(dataset.x_test)
    report.say(
        f"running {len(inputs):,} test samples through the C engine"
        + (" and TFLite Micro" if oracle else "")
    )
    c_out = c_engine_invoke(engine, inputs)
    size = c_engine_size(engine, name)
    result: dict = {
        "test_samples": len(inputs),
        "flash_bytes": size["flash_bytes"],
        "ram_bytes": size["ram_bytes"],
        "size_toolchain": size["toolchain"],
        "tflite_int8_bytes": len(int8_tflite),
    }
    tflm = None
    if oracle:
        tflm = tflm_invoke(int8_tflite, inputs)
        result["c_vs_tflm_differing_samples"] = int(np.any(tflm != c_out, axis=1).sum())
        result["tflm_arena_bytes"] = tflm_arena_bytes(int8_tflite)
    truth = labels(dataset)
    keras_out = None
    last = quantized.layers[-1]  # a FULLY_CONNECTED with no activation: logits
    logits = last.kind == "dense" and last.activation == "none"
    if model is not None:
        x = runs.as_model_input(model, dataset.x_test)
        keras_out = np.asarray(model.predict(x, verbose=0, batch_size=1024))
        keras_out = keras_out.reshape(len(keras_out), -1)  # (n, 1, 10) for a (1, 784) input
        if oracle:  # deploy and verify: where quantization hurts, layer by layer
            from .explain_int8 import quantization_summary
            from .model import dense_network

            result["quantization"] = quantization_summary(
                quantized, dense_network(model), dataset.x_test, c_out
            )
    if dataset.task == "classification":  # one sigmoid unit is p(class 1): class 1 at >= 0.5
        from .explain import classes

        if keras_out is not None:
            result["keras_accuracy"] = float(np.mean(classes(keras_out, logits) == truth))
        if tflm is not None:
            tflm_classes = classes(quantized.dequantize_output(tflm), logits)
            result["tflm_int8_accuracy"] = float(np.mean(tflm_classes == truth))
        c_classes = classes(quantized.dequantize_output(c_out), logits)
        result["c_int8_accuracy"] = float(np.mean(c_classes == truth))
    else:  # every target, not only the first
        truth = np.reshape(dataset.y_test, (len(dataset.y_test), -1)).astype(np.float32)
        if keras_out is not None:
            result["keras_mae"] = float(np.mean(np.abs(keras_out.reshape(truth.shape) - truth)))
        c_real = quantized.dequantize_output(c_out).reshape(truth.shape)
        result["c_int8_mae"] = float(np.mean(np.abs(c_real - truth)))
    return result


TARGET_CLOCK_HZ = 64_000_000  # the nRF52840's Cortex-M4 (Arduino Nano 33 BLE Sense)
EMULATED_NOTE = (
    "emulated, not silicon: instructions are exact; cycles are estimated from the core's "
    "timings with zero wait states, no caches and no interrupts"
)


def extreme_inputs(n_inputs: int, n_random: int = 64, seed: int = 0) -> np.ndarray:
    """Inputs no dataset may hold: all -128, all 127, and ``n_random`` uniform int8 rows."""
    rng = np.random.default_rng(seed)
    rows = [np.full(n_inputs, -128), np.full(n_inputs, 127)]
    rows += list(rng.integers(-128, 128, size=(n_random, n_inputs)))
    return np.asarray(rows, dtype=np.int8)


def measure_on_target(
    int8_tflite: bytes,
    engine: dict[str, str],
    dataset: Dataset,
    target: str = "cortex-m4",
    name: str = "model",
    opt: str = "-O2",
) -> dict:
    """The engine on an emulated Cortex-M core: every test sample plus :func:`extreme_inputs`,
    each output byte compared with TFLite Micro's on this computer, and what it cost there.

    Returns ``differing_inputs`` (0 means bit-exact), instructions and estimated cycles per
    inference (min / median / max), the time at ``TARGET_CLOCK_HZ``, peak stack, and the
    engine's flash and RAM as linked for that core.
    """
    from .int8.tflite import read_int8_tflite
    from .int8.tflm import tflm_invoke
    from .target import run_on_target

    quantized = read_int8_tflite(int8_tflite)
    inputs = np.concatenate(
        [quantized.quantize_input(dataset.x_test), extreme_inputs(quantized.n_inputs)]
    )
    report.say(f"running {len(inputs):,} inputs on an emulated {target} ({opt})")
    run = run_on_target(engine, inputs, name=name, target=target, opt=opt)
    expected = tflm_invoke(int8_tflite, inputs)
    instructions, cycles = run.instructions, run.cycles
    return {
        "core": target,
        "opt": opt,
        "inputs": len(inputs),
        "differing_inputs": int(np.any(run.outputs != expected, axis=1).sum()),
        "instructions": _spread(instructions),
        "cycles_estimate": _spread(cycles),
        "ms_at_64_mhz": float(np.median(cycles)) / TARGET_CLOCK_HZ * 1000,
        "stack_bytes": run.stack_bytes,
        "flash_bytes": run.flash_bytes,
        "ram_bytes": run.ram_bytes,
        "note": EMULATED_NOTE,
    }


def target_or_skip(int8_tflite, engine, dataset, target: str | None, name: str) -> dict | None:
    """:func:`measure_on_target` when the cross compiler and emulator are here; otherwise a
    ``{"skipped": why and how to install}`` note (deploy goes on without the chip)."""
    from .target import available

    if target is None:
        return None
    ready, why = available()
    if not ready:
        return {"core": target, "skipped": why}
    return measure_on_target(int8_tflite, engine, dataset, target=target, name=name)


def _spread(values: np.ndarray) -> dict:
    return {
        "min": int(np.min(values)),
        "median": int(np.median(values)),
        "max": int(np.max(values)),
    }


def verify_folder(folder: str | Path, data: str | None = None, target: str | None = None) -> dict:
    """Rerun deploy's comparisons (Keras, TFLite Micro, C engine) on a folder it wrote; with
    ``target`` (e.g. "cortex-m4"), also on that emulated core (it must be installed).

    First, every file deploy wrote is checked against the folder's manifest (sha256): the C
    array that ships in firmware, ``test_samples.h``, both ``.tflite`` and ``report.json``; a
    difference names the file (exit status 1). The C engine is then regenerated from the
    ``.tflite`` and compared, never compiled from the folder.
    """
    from .engine import check_model_name, generate_c, tflite_c_array
    from .model import load_model

    folder = Path(folder)
    manifest = _deploy_manifest(folder)  # first: a changed report.json is named as such
    try:
        previous = fileio.load_json(folder / "report.json")
        name, dataset_name, model_path = previous["name"], previous["dataset"], previous["model"]
        if not all(isinstance(v, str) for v in (name, dataset_name, model_path)):
            raise ValueError("report.json fields are not text")
        check_model_name(name)
        int8_tflite = (folder / f"{name}_int8.tflite").read_bytes()
    except (OSError, ValueError, KeyError, TypeError, DenselabError):
        raise DenselabError(f"{folder} is not a folder written by `denselab deploy`") from None
    engine = generate_c(int8_tflite, name=name)  # a damaged .tflite says so here
    try:
        written = {f: (folder / f).read_text() for f in engine}
    except (OSError, ValueError):
        raise DenselabError(f"{folder} is not a folder written by `denselab deploy`") from None
    # Never compile C from the folder itself (it may come from anyone): regenerate it from the
    # .tflite, and say so if the folder's copy is not what deploy writes.
    for filename, text in engine.items():
        if written[filename] != text:
            raise CheckFailed(
                f"{folder / filename} is not what deploy generates from {name}_int8.tflite; "
                "run `denselab deploy` again"
            )
    if manifest is None:
        raise CheckFailed(
            f"{folder} has no {folders.MANIFEST}, so its files cannot be checked against what "
            "deploy wrote; run `denselab deploy` again"
        )
    shipped = {f"{name}_float.tflite", f"{name}_int8.tflite", "report.json", "test_samples.h"}
    unrecorded = sorted({*engine, *tflite_c_array(int8_tflite, name), *shipped} - set(manifest))
    if unrecorded:
        raise CheckFailed(
            f"{folder}: {', '.join(unrecorded)} not recorded in {folders.MANIFEST}; run `denselab "
            "deploy` again"
        )
    task = previous.get("data_task") if not data and isinstance(previous, dict) else None
    task = task if task in ("classification", "regression") else None
    dataset = load_dataset(data or _deployed_dataset(previous, dataset_name), task=task)
    model = load_model(model_path) if Path(model_path).exists() else None
    if model is not None:
        try:
            runs.check_sample_size(model, dataset)
        except DenselabError as error:
            if data:  # the dataset the user named is not the model's
                raise DenselabError(f"--data {data}: {error}") from None
            # the dataset is deploy's own: the model was retrained into its run folder since
            raise CheckFailed(
                f"{model_path} changed since deploy ({error}); run `denselab deploy` again"
            ) from None
    result = {
        "folder": str(folder),
        "dataset": dataset.name,
        "name": name,
        **measure(int8_tflite, engine, dataset, model=model, name=name),
    }
    if target is not None:
        from .target import TARGETS, available

        if target not in TARGETS:
            raise DenselabError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        ready, why = available()
        if not ready:
            raise DenselabError(f"cannot run on {target}: {why}")
        result["target"] = measure_on_target(int8_tflite, engine, dataset, target, name=name)
    check_bit_exact(result)
    return result


def _deploy_manifest(folder: Path) -> dict | None:
    """The files deploy recorded (name -> sha256), each checked; None for a folder without a
    manifest. A file that is missing or differs is a failed check that names it."""
    try:
        manifest = folders.read_manifest(folder)
    except DenselabError as error:
        raise CheckFailed(f"{error}; run `denselab deploy` again") from None
    if manifest is None:
        return None
    if manifest["kind"] != "deploy":
        raise DenselabError(f"{folder} is not a folder written by `denselab deploy`")
    missing, changed = folders.manifest_differences(folder, manifest)
    problems = [f"{folder / name} is missing" for name in missing]
    problems += [
        f"{folder / name} is not what deploy generates: its sha256 differs from the one "
        f"deploy recorded in {folders.MANIFEST}"
        for name in changed
    ]
    if problems:
        raise CheckFailed("; ".join(problems) + "; run `denselab deploy` again")
    return manifest["files"]


def _deployed_dataset(report_json: dict, name: str) -> str:
    """The dataset deploy used: a built-in name, or the user's file, which must be unchanged."""
    path, digest = report_json.get("data_file"), report_json.get("data_sha256")
    if not isinstance(path, str) or not isinstance(digest, str):
        return name
    if not Path(path).is_file():
        raise DenselabError(
            f"the dataset file deploy used, {path}, is gone; give --data FILE to verify on another"
        )
    if fileio.file_sha256(path) != digest:
        raise DenselabError(
            f"{path} changed since deploy (its sha256 differs); give --data {path} to verify "
            "against it as it is now"
        )
    return path


def check_bit_exact(result: dict) -> None:
    """Raise :class:`CheckFailed` (exit status 1) if the C engine differed from TFLite Micro
    in any byte, on this computer or on the emulated core."""
    differing = result["c_vs_tflm_differing_samples"]
    on_target = (result.get("target") or {}).get("differing_inputs", 0)
    if differing or on_target:
        where = [f"{differing} test samples on this computer"] if differing else []
        if on_target:
            where.append(f"{on_target} inputs on the emulated {result['target']['core']}")
        raise CheckFailed(
            f"the C engine differs from TFLite Micro on {' and '.join(where)}; "
            f"report in {result.get('folder', '')}"
        )


def labels(dataset: Dataset) -> np.ndarray:
    """The test split's labels (classification) or first target (regression), flat."""
    return np.asarray(dataset.y_test).reshape(len(dataset.y_test), -1)[:, 0]
