"""Build: cross-compile the generated C engine and a harness into a bare-metal Cortex-M image.

The image has no C library: ``startup.S`` (vector table, ``.data``/``.bss`` set-up, stack
painting), ``runtime.c`` (``memcpy``/``memset``, which gcc may call) and ``libgcc`` (64-bit
and soft-float helpers) are all it links besides the engine and the harness. ``cortex_m.ld``
puts flash at 0x00000000 and RAM at 0x20000000, as on most Cortex-M parts.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..engine.host import run_tool
from ..errors import DenselabError

TARGETS = ("cortex-m0plus", "cortex-m4", "cortex-m7")
C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
# Soft float: the int8 path has no float; only quantize_input divides, through libgcc.
_CORE_FLAGS = ["-mthumb", "-mfloat-abi=soft", "-ffreestanding"]
_SECTION_FLAGS = ["-ffunction-sections", "-fdata-sections"]  # so the linker drops what is unused
_LINK_FLAGS = ["-nostdlib", "-Wl,--gc-sections"]
_OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz", "-Og")
_HARNESS_OBJECTS = ("denselab_startup.o", "denselab_harness.o")  # named in cortex_m.ld
_PACKAGE_FILES = {  # package data -> its name in the build folder, clear of the engine's files
    "startup.S": "denselab_startup.S",
    "runtime.c": "denselab_runtime.c",
    "cortex_m.ld": "denselab_cortex_m.ld",
}
_RESERVED = {"denselab_harness.c", *_PACKAGE_FILES.values()}
STACK_PAINT = 0x5AC4ED0F  # what startup.S writes over the stack before main
INSTALL_HINT = "apt-get install gcc-arm-none-eabi binutils-arm-none-eabi"


@dataclass
class Image:
    """A linked image: the flash contents and where things are in it.

    Attributes
    ----------
    target, opt : the core (one of ``TARGETS``) and gcc optimization level it was built for.
    flash : bytes
        The flash contents from address 0 (vector table, code, constants, ``.data`` image).
    symbols : dict
        Symbol name -> address, as ``arm-none-eabi-nm`` prints it (bit 0 set on Thumb code).
    engine_text : tuple of int
        ``(start, end)`` of the engine's code and the libgcc/runtime code it calls.
    flash_bytes : int
        What the engine adds to flash as linked, unused functions dropped: its code with
        the libgcc and ``memcpy`` helpers it calls, its constants, its ``.data`` image.
    ram_bytes : int
        Its static RAM as linked, ``.data + .bss`` (the stack is measured by running it).
    object_sizes : dict
        Per engine object file as compiled, ``{"text": .., "data": .., "bss": ..}`` in bytes
        from ``arm-none-eabi-size`` (before the linker drops unused functions).
    """

    target: str
    opt: str
    flash: bytes
    symbols: dict[str, int]
    engine_text: tuple[int, int]
    flash_bytes: int
    ram_bytes: int
    object_sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    def address(self, symbol: str) -> int:
        """The address of ``symbol``, with the Thumb bit cleared."""
        if symbol not in self.symbols:
            raise DenselabError(f"the image has no symbol {symbol!r}")
        return self.symbols[symbol] & ~1

    def __repr__(self) -> str:
        return (
            f"Image({self.target} {self.opt}, {len(self.flash):,} bytes of flash, "
            f"engine {self.flash_bytes:,} B flash / {self.ram_bytes:,} B RAM)"
        )


def toolchain_missing() -> str | None:
    """The first cross tool that is not installed, or None when all are."""
    tools = ("arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size", "arm-none-eabi-objcopy")
    return next((tool for tool in tools if shutil.which(tool) is None), None)


def build_image(
    sources: dict[str, str],
    harness_c: str,
    target: str = "cortex-m4",
    opt: str = "-O2",
    defines: tuple[str, ...] | list[str] = (),
) -> Image:
    """Compile every ``.c`` in ``sources`` plus ``harness_c`` for ``target`` and link them.

    Parameters
    ----------
    sources : dict
        File name -> text: the generated engine (``{name}.h``, ``{name}.c``, and any shared
        kernel files); every ``.c`` is compiled, every ``.h`` is on the include path.
    harness_c : str
        The C file with ``main`` that drives the engine.
    target : one of ``TARGETS``.
    opt : gcc optimization level, e.g. ``"-O2"`` or ``"-Os"``.
    defines : preprocessor flags such as ``-DDENSELAB_PORTABLE`` (the benchmark's baseline).
    """
    _check(sources, target, opt)
    for define in defines:
        if not re.fullmatch(r"-D[A-Za-z_][A-Za-z0-9_]*(=[A-Za-z0-9_]+)?", define):
            raise DenselabError(f"{define!r} is not a -DNAME or -DNAME=VALUE flag")
    flags = [f"-mcpu={target}", *_CORE_FLAGS, *_SECTION_FLAGS, *C_FLAGS, *defines, opt]
    data = resources.files("denselab").joinpath("target")
    with tempfile.TemporaryDirectory(prefix="denselab-target-") as folder:
        folder = Path(folder)
        for file, text in sources.items():
            (folder / file).write_text(text)
        (folder / "denselab_harness.c").write_text(harness_c)
        for file, copy in _PACKAGE_FILES.items():
            (folder / copy).write_text(data.joinpath(file).read_text(encoding="utf-8"))
        engine_objects = []
        for file in sorted(f for f in sources if f.endswith(".c")):
            engine_objects.append(f"{file[:-2]}.o")
            run_tool(["arm-none-eabi-gcc", *flags, "-c", file, "-o", engine_objects[-1]], folder)
        run_tool(["arm-none-eabi-gcc", *flags, "-c", "denselab_harness.c"], folder)
        # Copy loops in memcpy must not become calls to memcpy.
        no_memcpy_calls = "-fno-tree-loop-distribute-patterns"
        run_tool(["arm-none-eabi-gcc", *flags, no_memcpy_calls, "-c", "denselab_runtime.c"], folder)
        paint = f"-DDENSELAB_STACK_PAINT=0x{STACK_PAINT:08X}"
        run_tool(["arm-none-eabi-gcc", *flags, paint, "-c", "denselab_startup.S"], folder)
        objects = [*_HARNESS_OBJECTS, *engine_objects, "denselab_runtime.o"]
        link = ["-T", "denselab_cortex_m.ld", *_LINK_FLAGS, "-o", "image.elf", *objects, "-lgcc"]
        run_tool(["arm-none-eabi-gcc", *flags, *link], folder)
        run_tool(["arm-none-eabi-objcopy", "-O", "binary", "image.elf", "image.bin"], folder)
        symbols = _symbols(run_tool(["arm-none-eabi-nm", "--defined-only", "image.elf"], folder))
        object_sizes = _sizes(run_tool(["arm-none-eabi-size", *engine_objects], folder))
        flash = (folder / "image.bin").read_bytes()
    span = {
        section: symbols[f"_{end}"] - symbols[f"_{start}"]
        for section, start, end in [
            ("text", "engine_text_start", "engine_text_end"),
            ("rodata", "engine_rodata_start", "engine_rodata_end"),
            ("data", "sdata", "edata"),
            ("bss", "sbss", "ebss"),
        ]
    }
    return Image(
        target=target,
        opt=opt,
        flash=flash,
        symbols=symbols,
        engine_text=(symbols["_engine_text_start"], symbols["_engine_text_end"]),
        flash_bytes=span["text"] + span["rodata"] + span["data"],
        ram_bytes=span["data"] + span["bss"],
        object_sizes=object_sizes,
    )


def _check(sources: dict[str, str], target: str, opt: str) -> None:
    if target not in TARGETS:
        raise DenselabError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if opt not in _OPT_LEVELS:
        raise DenselabError(f"unknown optimization level {opt!r}; use one of {_OPT_LEVELS}")
    for file in sources:
        if Path(file).name != file or not file.endswith((".c", ".h")):
            raise DenselabError(f"source name {file!r} must be a plain .c or .h file name")
        if file in _RESERVED or f"{file[:-2]}.o" in _HARNESS_OBJECTS:
            raise DenselabError(f"source name {file!r} is reserved for the target harness")
    missing = toolchain_missing()
    if missing is not None:
        raise DenselabError(f"{missing} is not installed; {INSTALL_HINT}")


def _symbols(nm_output: str) -> dict[str, int]:
    symbols = {}
    for line in nm_output.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    return symbols


def _sizes(size_output: str) -> dict[str, dict[str, int]]:
    """``arm-none-eabi-size`` (Berkeley format) -> {object: {text, data, bss}}."""
    sizes = {}
    for line in size_output.splitlines()[1:]:
        match = re.match(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+(\S+)", line)
        if match:
            text, data, bss, name = match.groups()
            sizes[name] = {"text": int(text), "data": int(data), "bss": int(bss)}
    return sizes
