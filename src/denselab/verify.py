"""Verify: the oracles the C engine is checked against, and what it costs on a microcontroller.

* :func:`tflm_invoke` runs the int8 ``.tflite`` through the real TensorFlow Lite Micro
  interpreter (the ``tflite-micro`` package), the reference for "bit-exact".
* :func:`c_engine_invoke` compiles the generated C with a tiny harness and runs every
  sample through it in one process, optionally under AddressSanitizer/UBSan.
* :func:`c_engine_size` reports flash and RAM of the engine, from ``arm-none-eabi-size``
  on a Cortex-M4 object when that toolchain is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ._io import captured_stderr
from .errors import DenselabError

C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
CORTEX_M4_FLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror"]

_HARNESS = """\
/* Reads raw int8 samples from stdin, writes the raw int8 outputs to stdout. */
#include <stdio.h>
#include "{name}.h"

int main(void)
{{
    static int8_t input[{NAME}_INPUT_SIZE];
    static int8_t output[{NAME}_OUTPUT_SIZE];
    while (fread(input, 1, sizeof input, stdin) == sizeof input) {{
        {name}_invoke(input, output);
        fwrite(output, 1, sizeof output, stdout);
    }}
    return 0;
}}
"""


def tflm_invoke(int8_tflite: bytes, inputs_int8: np.ndarray) -> np.ndarray:
    """Run each sample through the TFLM interpreter.

    inputs_int8 : ndarray of shape (n_samples, n_inputs), int8.
    Returns the int8 outputs, shape (n_samples, n_outputs).
    """
    interpreter = _tflm_interpreter(int8_tflite)
    details = interpreter.get_input_details(0)
    inputs_int8 = _check_inputs(inputs_int8, int(np.prod(details["shape"])))
    shape = tuple(details["shape"])
    outputs = []
    for sample in inputs_int8:
        interpreter.set_input(sample.reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0), dtype=np.int8).reshape(-1))
    return np.stack(outputs)


def tflm_arena_bytes(int8_tflite: bytes) -> int:
    """The tensor arena TFLM allocated for this model, in bytes, on this (64-bit) host.

    The runtime does not return the number; its ``RecordingMicroAllocator`` prints it
    (``Arena allocation total N bytes``) on the C stderr, which is captured here. On a
    32-bit microcontroller pointers are smaller, so the arena there is a little smaller.
    """
    interpreter = _tflm_interpreter(int8_tflite)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=np.int8), 0)
    interpreter.invoke()
    with captured_stderr() as captured:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", captured["text"])
    if match is None:
        raise RuntimeError("TFLM did not report its arena allocation")
    return int(match.group(1))


def c_engine_invoke(
    sources: dict[str, str], inputs_int8: np.ndarray, sanitize: bool = False
) -> np.ndarray:
    """Compile the generated C with gcc and run every sample through ``{name}_invoke``.

    sources : the ``{name}.h``/``{name}.c`` pair from :func:`denselab.compile.generate_c`.
    inputs_int8 : ndarray of shape (n_samples, n_inputs), int8.
    sanitize : build with AddressSanitizer and UBSan; any report fails the run.
    Returns the int8 outputs, shape (n_samples, n_outputs).
    """
    name = _engine_name(sources)
    n_inputs = _define(sources[f"{name}.h"], f"{name.upper()}_INPUT_SIZE")
    n_outputs = _define(sources[f"{name}.h"], f"{name.upper()}_OUTPUT_SIZE")
    inputs_int8 = _check_inputs(inputs_int8, n_inputs)
    compiler = _require("gcc")
    with tempfile.TemporaryDirectory(prefix="denselab-c-") as folder:
        folder = Path(folder)
        _write_sources(folder, sources)
        (folder / "harness.c").write_text(_HARNESS.format(name=name, NAME=name.upper()))
        program = folder / "harness"
        flags = SANITIZE_FLAGS if sanitize else ["-O2"]
        _run([compiler, *C_FLAGS, *flags, "harness.c", f"{name}.c", "-o", str(program)], folder)
        result = subprocess.run(
            [str(program)], input=inputs_int8.tobytes(), capture_output=True, cwd=folder
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"the C engine failed (exit {result.returncode}):\n{result.stderr.decode()[-4000:]}"
        )
    outputs = np.frombuffer(result.stdout, dtype=np.int8)
    if outputs.size != len(inputs_int8) * n_outputs:
        raise RuntimeError(
            f"the C engine wrote {outputs.size} bytes for {len(inputs_int8)} samples"
        )
    return outputs.reshape(len(inputs_int8), n_outputs)


def c_engine_size(sources: dict[str, str], name: str = "model") -> dict:
    """Flash and RAM of ``{name}.c`` (engine code, weights and buffers), in bytes.

    ``flash_bytes = text + data`` (const tables are in text), ``ram_bytes = data + bss``
    (the ping-pong buffers), read by ``size`` from an object built with
    ``-mcpu=cortex-m4 -mthumb -Os`` when ``arm-none-eabi-gcc`` exists, else with host gcc.
    """
    if f"{name}.c" not in sources:
        raise DenselabError(f"no {name}.c among the sources ({', '.join(sorted(sources))})")
    if shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        compiler, size_tool, flags = "arm-none-eabi-gcc", "arm-none-eabi-size", CORTEX_M4_FLAGS
        toolchain = "arm-none-eabi-gcc cortex-m4"
    else:
        compiler, size_tool = _require("gcc"), _require("size")
        flags, toolchain = [*C_FLAGS, "-Os"], "host gcc"
    with tempfile.TemporaryDirectory(prefix="denselab-size-") as folder:
        folder = Path(folder)
        _write_sources(folder, sources)
        _run([compiler, *flags, "-c", f"{name}.c", "-o", f"{name}.o"], folder)
        report = _run([size_tool, f"{name}.o"], folder)
    text, data, bss = (int(v) for v in report.splitlines()[1].split()[:3])
    return {
        "flash_bytes": text + data,
        "ram_bytes": data + bss,
        "text": text,
        "data": data,
        "bss": bss,
        "toolchain": toolchain,
    }


def _tflm_interpreter(int8_tflite: bytes):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise DenselabError(
            "TFLite Micro is not installed; pip install 'denselab[deploy]'"
        ) from None
    try:
        return runtime.Interpreter.from_bytes(
            bytes(int8_tflite), arena_size=len(int8_tflite) + 65536
        )
    except RuntimeError as error:
        raise DenselabError(f"TFLite Micro cannot load this model: {error}") from None


def _check_inputs(inputs_int8: np.ndarray, n_inputs: int) -> np.ndarray:
    inputs_int8 = np.asarray(inputs_int8)
    if inputs_int8.dtype != np.int8:
        raise DenselabError(f"inputs must be int8 (quantized), not {inputs_int8.dtype}")
    if inputs_int8.ndim != 2 or inputs_int8.shape[1] != n_inputs:
        raise DenselabError(
            f"inputs must have shape (n_samples, {n_inputs}), not {inputs_int8.shape}"
        )
    return np.ascontiguousarray(inputs_int8)


def _engine_name(sources: dict[str, str]) -> str:
    names = [
        file[:-2]
        for file in sources
        if file.endswith(".c")
        and f"{file[:-2]}.h" in sources
        and f"void {file[:-2]}_invoke(" in sources[f"{file[:-2]}.h"]
    ]
    if len(names) != 1:
        raise DenselabError("sources must hold one generated engine ({name}.h and {name}.c)")
    return names[0]


def _define(header: str, macro: str) -> int:
    match = re.search(rf"^#define {macro} (\d+)$", header, flags=re.MULTILINE)
    if match is None:
        raise DenselabError(f"the header does not define {macro}")
    return int(match.group(1))


def _write_sources(folder: Path, sources: dict[str, str]) -> None:
    for file, text in sources.items():
        if Path(file).name != file:
            raise DenselabError(f"source name {file!r} must be a plain file name")
        (folder / file).write_text(text)


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DenselabError(f"{tool} is not installed; it is needed to build the C engine")
    return path


def _run(command: list[str], folder: Path) -> str:
    """Run a compiler step; a failure is a bug in the generated C, so RuntimeError."""
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout
