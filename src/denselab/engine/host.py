"""Run the generated C on this computer: compile it with gcc, feed it samples, read its size.

* :func:`c_engine_invoke` compiles the engine with a tiny harness and runs every sample
  through it in one process, optionally under AddressSanitizer/UBSan.
* :func:`c_engine_size` reports flash and RAM of the engine, from ``arm-none-eabi-size``
  on a Cortex-M4 object when that toolchain is installed, else from the host's ``size``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DenselabError
from ..int8.tflm import check_inputs

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


def c_engine_invoke(
    sources: dict[str, str], inputs_int8: np.ndarray, sanitize: bool = False
) -> np.ndarray:
    """Compile the generated C with gcc and run every sample through ``{name}_invoke``.

    sources : file name -> text, as :func:`denselab.engine.generate_c` returns them (the
        model's ``{name}.h``/``{name}.c`` and the kernel library); every ``.c`` is compiled.
    inputs_int8 : ndarray of shape (n_samples, n_inputs), int8.
    sanitize : build with AddressSanitizer and UBSan; any report fails the run.
    Returns the int8 outputs, shape (n_samples, n_outputs).
    """
    name = _engine_name(sources)
    n_inputs = header_define(sources[f"{name}.h"], f"{name.upper()}_INPUT_SIZE")
    n_outputs = header_define(sources[f"{name}.h"], f"{name.upper()}_OUTPUT_SIZE")
    inputs_int8 = check_inputs(inputs_int8, n_inputs)
    compiler = require_tool("gcc")
    with tempfile.TemporaryDirectory(prefix="denselab-c-") as folder:
        folder = Path(folder)
        _write_sources(folder, sources)
        (folder / "harness.c").write_text(_HARNESS.format(name=name, NAME=name.upper()))
        program = folder / "harness"
        flags = SANITIZE_FLAGS if sanitize else ["-O2"]
        units = ["harness.c", *sorted(f for f in sources if f.endswith(".c"))]
        run_tool([compiler, *C_FLAGS, *flags, *units, "-o", str(program)], folder)
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
    """Flash and RAM of the engine (``{name}_invoke``, the kernels it calls, weights, buffers).

    The sources are compiled with ``-Os -ffunction-sections -fdata-sections`` and linked with
    ``--gc-sections`` from ``{name}_invoke`` alone, so only what an inference needs counts:
    ``flash_bytes = text + data`` (const tables are in text), ``ram_bytes = data + bss``
    (activation buffers and sums; the stack is not counted). Built for a Cortex-M4 with
    ``arm-none-eabi-gcc`` when it is installed, else with the host's gcc.
    """
    if f"{name}.c" not in sources:
        raise DenselabError(f"no {name}.c among the sources ({', '.join(sorted(sources))})")
    if shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        compiler, size_tool, flags = "arm-none-eabi-gcc", "arm-none-eabi-size", CORTEX_M4_FLAGS
        toolchain = "arm-none-eabi-gcc cortex-m4 -Os"
    else:
        compiler, size_tool = require_tool("gcc"), require_tool("size")
        flags, toolchain = [*C_FLAGS, "-Os"], "host gcc -Os"
    units = sorted(f for f in sources if f.endswith(".c"))
    with tempfile.TemporaryDirectory(prefix="denselab-size-") as folder:
        folder = Path(folder)
        _write_sources(folder, sources)
        run_tool(
            [compiler, *flags, "-ffunction-sections", "-fdata-sections", *units]
            + ["-nostdlib", "-nostartfiles", "-static", "-Wl,--gc-sections"]
            + [f"-Wl,-e,{name}_invoke", "-o", "engine.elf"],
            folder,
        )
        report = run_tool([size_tool, "engine.elf"], folder)
    text, data, bss = (int(v) for v in report.splitlines()[1].split()[:3])
    return {
        "flash_bytes": text + data,
        "ram_bytes": data + bss,
        "text": text,
        "data": data,
        "bss": bss,
        "toolchain": toolchain,
    }


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


def header_define(header: str, macro: str) -> int:
    """The value of ``#define macro N`` in a generated header."""
    match = re.search(rf"^#define {macro} (\d+)$", header, flags=re.MULTILINE)
    if match is None:
        raise DenselabError(f"the header does not define {macro}")
    return int(match.group(1))


def _write_sources(folder: Path, sources: dict[str, str]) -> None:
    for file, text in sources.items():
        if Path(file).name != file:
            raise DenselabError(f"source name {file!r} must be a plain file name")
        (folder / file).write_text(text)


def require_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DenselabError(f"{tool} is not installed; it is needed to build the C engine")
    return path


def run_tool(command: list[str], folder: Path) -> str:
    """Run a compiler or binutils step in ``folder``; a failure is a bug in the generated C
    (or in denselab), never the user's, so RuntimeError."""
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout
