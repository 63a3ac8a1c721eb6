"""Run on the target: the generated C engine, cross-compiled and run on an emulated Cortex-M.

:func:`run_on_target` builds the engine with ``arm-none-eabi-gcc`` for a Cortex-M0+, M4 or
M7 into a bare-metal image (no C library), runs every sample through ``{name}_invoke`` in
unicorn, and returns a :class:`TargetRun`: the output bytes, which must equal TFLite
Micro's, and what each inference cost there: exact instruction counts, estimated cycles,
peak stack, and the engine's flash and RAM.

    >>> run = run_on_target(generate_c(int8_tflite, "model"), inputs_int8)
    >>> run.instructions.mean(), run.stack_bytes
"""

from __future__ import annotations

import numpy as np

from ..engine.host import header_define
from ..errors import DenselabError
from ..int8.tflm import check_inputs
from .build import INSTALL_HINT, TARGETS, Image, build_image, toolchain_missing
from .emulate import TargetRun, emulate, harness_c

__all__ = ["TARGETS", "Image", "TargetRun", "available", "build_image", "run_on_target"]


def available() -> tuple[bool, str]:
    """Whether the cross compiler and unicorn are installed, and what to install if not."""
    missing = toolchain_missing()
    if missing is not None:
        return False, f"{missing} is not installed; {INSTALL_HINT}"
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return False, "unicorn is not installed; pip install 'unicorn>=2.1'"
    return True, "arm-none-eabi-gcc and unicorn are installed"


def run_on_target(
    sources: dict[str, str],
    inputs_int8: np.ndarray,
    name: str = "model",
    target: str = "cortex-m4",
    opt: str = "-O2",
    defines: tuple[str, ...] | list[str] = (),
    count: bool = True,
) -> TargetRun:
    """Cross-compile the engine for ``target`` and run each sample through ``{name}_invoke``.

    Parameters
    ----------
    sources : dict
        File name -> text of the generated engine: ``{name}.h``, ``{name}.c`` and any
        shared kernel files (every ``.c`` is compiled).
    inputs_int8 : ndarray of shape (n_samples, n_inputs), int8
    name : the engine's C name, as given to ``generate_c``.
    target : one of ``TARGETS``: "cortex-m0plus", "cortex-m4" or "cortex-m7".
    opt : gcc optimization level, e.g. "-O2" or "-Os".
    defines : extra ``-DNAME`` flags, e.g. ``-DDENSELAB_PORTABLE`` for the portable kernel.
    count : count instructions and cycles per inference; False compares bytes ~10x faster.

    Returns
    -------
    TargetRun with ``outputs`` of shape (n_samples, n_outputs) and per-inference
    ``instructions`` and ``cycles`` of shape (n_samples,).
    """
    header = sources.get(f"{name}.h")
    if header is None or f"{name}.c" not in sources:
        raise DenselabError(f"no {name}.h and {name}.c among the sources ({', '.join(sources)})")
    n_inputs = header_define(header, f"{name.upper()}_INPUT_SIZE")
    n_outputs = header_define(header, f"{name.upper()}_OUTPUT_SIZE")
    inputs_int8 = check_inputs(inputs_int8, n_inputs)
    ready, message = available()
    if not ready:
        raise DenselabError(message)
    image = build_image(sources, harness_c(name), target=target, opt=opt, defines=defines)
    return emulate(image, inputs_int8, n_outputs, count=count)
