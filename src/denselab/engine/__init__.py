"""Compile to C: an int8 ``.tflite`` becomes a C99 engine, and the engine runs on this computer.

* :mod:`denselab.engine.generate`: the model as C data (``{name}.h``/``{name}.c``) and the
  kernel library every model shares (``denselab_kernels.h``/``.c``), from ``templates/``.
* :mod:`denselab.engine.host`: compile the engine with gcc and run samples through it; its
  flash and RAM.
"""

from .generate import (
    KERNELS,
    check_c_name,
    check_model_name,
    generate_c,
    input_runs,
    kernel_sources,
    samples_header,
    tflite_c_array,
)
from .host import c_engine_invoke, c_engine_size

__all__ = [
    "KERNELS",
    "c_engine_invoke",
    "c_engine_size",
    "check_c_name",
    "check_model_name",
    "generate_c",
    "input_runs",
    "kernel_sources",
    "samples_header",
    "tflite_c_array",
]
