"""Ship a dense Keras model to a microcontroller, and prove the C is what TFLite Micro computes.

``deploy`` runs the last steps of the pipeline: quantize (TFLiteConverter, int8) -> compile
(a C99 engine generated from the .tflite) -> verify (the whole test split through Keras,
TFLite Micro and the C engine) -> report (flash, RAM, MACs, arena, accuracies).
"""

from __future__ import annotations

from pathlib import Path

from . import fileio, folders, interrupts, report, runs
from .data import Dataset
from .errors import DenselabError
from .int8.convert import CALIBRATION_SAMPLES
from .model import dense_network, load_model
from .verify import check_bit_exact, labels, measure, target_or_skip

EXAMPLE_SAMPLES = 10  # test inputs written into test_samples.h for the C example
ENGINE_MAX_INPUTS = 65_535  # per layer: the engine's input runs count in uint16_t (input_runs)


class DeployReport(dict):
    """The deploy report (``report.json``): a dict that a notebook shows as a table."""

    def _repr_html_(self) -> str:
        from .notebook import deploy_html

        return deploy_html(self)


def deploy(
    model_path: str | Path,
    data: str | Dataset | None = None,
    out: str | Path = "deploy",
    name: str = "model",
    calibration_samples: int = CALIBRATION_SAMPLES,
    target: str | None = "cortex-m4",
    force: bool = False,
) -> dict:
    """Write the int8 and float ``.tflite``, the C engine and ``report.json`` into ``out``.

    ``out`` is written as one transaction (:func:`denselab.folders.folder_transaction`): it is
    wholly the previous deploy or wholly this one, with a manifest (sha256 of every file) that
    ``verify`` checks. A folder holding files denselab did not write is refused unless
    ``force`` (they are then kept).

    With ``target`` (default "cortex-m4"; None skips it) the engine also runs on that
    emulated core when ``arm-none-eabi-gcc`` and ``unicorn`` are installed, and the report
    gains its row (instructions, cycles, stack, flash, RAM); otherwise it says what it skipped.
    Raises :class:`CheckFailed` (exit status 1) if any output differs from TFLite Micro's in
    any byte, here or on the core.
    """
    from .engine import check_model_name, generate_c, samples_header, tflite_c_array
    from .int8.convert import calibration_samples as draw_calibration
    from .int8.convert import to_tflite
    from .int8.tflite import read_int8_tflite

    check_model_name(name)  # before any work: a bad name wastes nothing
    resolved = runs.resolve(model_path, data, required=True)
    model = load_model(resolved.model_path)
    network = dense_network(model)  # refuses Conv2D, LSTM, ... by name
    dataset = resolved.dataset
    runs.check_fits(network, dataset)
    _check_engine_limits(network)
    inputs = [resolved.model_path] + ([data] if isinstance(data, (str, Path)) else [])
    folder = Path(out)

    transaction = folders.folder_transaction(folder, "deploy", force=force, inputs=inputs)
    with interrupts.stoppable(), transaction as staging:
        calibration = draw_calibration(dataset.x_train, calibration_samples)
        report.say(
            f"quantizing to int8 with TFLiteConverter, calibrated on {len(calibration)} "
            "training samples"
        )
        float_tflite, int8_tflite = to_tflite(network, calibration)
        fileio.write_bytes(staging / f"{name}_float.tflite", float_tflite)
        fileio.write_bytes(staging / f"{name}_int8.tflite", int8_tflite)

        quantized = read_int8_tflite(int8_tflite)
        engine = generate_c(quantized, name=name)
        examples = quantized.quantize_input(dataset.x_test[:EXAMPLE_SAMPLES])
        example = samples_header(examples, labels(dataset)[:EXAMPLE_SAMPLES])
        for filename, text in {**engine, **tflite_c_array(int8_tflite, name), **example}.items():
            fileio.write_text(staging / filename, text)

        result = {
            "model": str(model_path),
            "dataset": dataset.name,
            **dataset_file(dataset),
            "name": name,
            "folder": str(folder),
            "calibration_samples": len(calibration),
            "params": network.n_params,
            "macs": network.macs,
            "layers": [repr(layer) for layer in network.layers],
            **measure(int8_tflite, engine, dataset, model=model, name=name),
        }
        on_chip = target_or_skip(int8_tflite, engine, dataset, target, name)
        if on_chip is not None:
            result["target"] = on_chip
        fileio.write_json(staging / "report.json", result)
        interrupts.check()  # a Ctrl-C a library swallowed (XLA's gc callback): no swap
    check_bit_exact(result)  # after the swap: a folder that differs is kept, to be looked at
    return DeployReport(result)


def _check_engine_limits(network) -> None:
    """Refuse, before the minutes of conversion, a model the C engine cannot hold."""
    from .errors import DenselabError

    for layer in network.layers:
        if layer.n_inputs > ENGINE_MAX_INPUTS:
            raise DenselabError(
                f"layer {layer.name!r} has {layer.n_inputs:,} inputs; the C engine takes at "
                f"most {ENGINE_MAX_INPUTS:,} per layer"
            )


def deployed_dataset(deployed: dict):
    """The dataset a deploy folder's ``report.json`` was made with: the user's file, read as
    deploy read it (its name alone would be looked up among the built-in datasets), or the
    built-in dataset's name."""
    path = _text(deployed, "data_file")
    task = _text(deployed, "data_task")
    if path and task in ("classification", "regression"):
        from .data import load_dataset

        return load_dataset(path, task=task)
    return path or _text(deployed, "dataset")


def deployed_model(deployed: dict) -> str:
    """The float model a deploy folder's ``report.json`` was made from."""
    model = _text(deployed, "model")
    if not model:
        raise DenselabError("its report.json names no model; run `denselab deploy` again")
    return model


def _text(deployed: dict, key: str) -> str | None:
    """A name or path in ``report.json``, checked: a hand-edited one may be anything."""
    value = deployed.get(key) if isinstance(deployed, dict) else None
    if value is not None and not isinstance(value, str):
        raise DenselabError(
            f"its report.json has {key!r} = {str(value)[:40]}, not a name or path; "
            "run `denselab deploy` again"
        )
    return value


def dataset_file(dataset: Dataset) -> dict:
    """For a dataset read from the user's file: its absolute path and sha256, so ``verify``
    finds the same file (not a built-in dataset of the same name) and notices a change."""
    if dataset.file is None or not Path(dataset.file).is_file():
        return {}
    path = Path(dataset.file)
    return {
        "data_file": str(path.resolve()),
        "data_sha256": fileio.file_sha256(path),
        "data_task": dataset.task,  # as deploy read it (--task, or guessed)
    }
