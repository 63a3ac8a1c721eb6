"""Emulate: run a built image on a Cortex-M core in unicorn and count what each inference costs.

The harness (:func:`harness_c`) reads the samples from HOST_IO, a memory block at
0x60000000 that the emulator fills before it starts: ``n_samples`` as a uint32, then the
int8 inputs of shape (n_samples, n_inputs), then room for the int8 outputs of shape
(n_samples, n_outputs). It calls ``denselab_inference_start()`` and ``{name}_invoke``
once per sample, and returns to the startup code, which stops at ``denselab_halt``.

Counting is exact and cheap: a basic-block hook on the engine's code range (harness and
startup code are linked outside it) adds each block's instruction count, decoded once per
block, and a hook on ``denselab_inference_start`` closes one inference and opens the next.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from string import Template

import numpy as np

from .build import STACK_PAINT, Image
from .timing import CORE_TIMINGS, block_cycles, decode_block

# unicorn has no M0+ model; the M0 runs the same ARMv6-M instructions.
_CPU_MODELS = {
    "cortex-m0plus": "UC_CPU_ARM_CORTEX_M0",
    "cortex-m4": "UC_CPU_ARM_CORTEX_M4",
    "cortex-m7": "UC_CPU_ARM_CORTEX_M7",
}

_HARNESS = Template("""\
/* denselab_harness.c: runs ${name}_invoke on every sample the emulator put in HOST_IO. */
#include <stdint.h>
#include "${name}.h"

/* At 0x60000000 (cortex_m.ld): n_samples, the inputs, then the outputs. */
extern uint32_t denselab_host_io[];

void denselab_inference_start(void);
int main(void);

/* Called before each inference: the emulator closes the previous count here. Naked, so
 * that it touches no stack at any optimization level. */
__attribute__((naked, noinline)) void denselab_inference_start(void)
{
    __asm__ volatile("bx lr");
}

int main(void)
{
    const uint32_t n_samples = denselab_host_io[0];
    const int8_t *input = (const int8_t *)&denselab_host_io[1];
    int8_t *output = (int8_t *)&denselab_host_io[1] + n_samples * ${NAME}_INPUT_SIZE;
    uint32_t k;
    for (k = 0; k < n_samples; k++) {
        denselab_inference_start();
        ${name}_invoke(input + k * ${NAME}_INPUT_SIZE, output + k * ${NAME}_OUTPUT_SIZE);
    }
    return 0;
}
""")


@dataclass
class TargetRun:
    """What the engine computed and cost on an emulated Cortex-M core.

    Attributes
    ----------
    outputs : ndarray of shape (n_samples, n_outputs), int8
        What ``{name}_invoke`` wrote, sample by sample.
    instructions : ndarray of shape (n_samples,), int64
        Instructions the core issued in each ``{name}_invoke`` call, callees included
        (kernels, libgcc helpers). Exact; IT-block instructions whose condition fails count.
    cycles : ndarray of shape (n_samples,), int64
        Estimated core cycles of each call: every instruction charged its cycles from the
        core's TRM table at zero wait states (loads 2, or 1 when they follow another load
        or store on the M4; multiplies 1; LDM/STM/PUSH/POP 1 + N registers), plus a
        pipeline refill (M0+ 1, M4 2, M7 1) at every taken branch, call and return. An
        estimate, not silicon: no wait states, caches or dual issue (see ``timing.py``).
    stack_bytes : int
        Peak stack of ``{name}_invoke`` and its callees, from the painted stack.
    flash_bytes, ram_bytes : int
        The engine as linked into the image (see :class:`~denselab.target.build.Image`):
        code with the libgcc helpers it calls, constants and ``.data``; ``.data + .bss``.
    target, opt : the core and the gcc optimization level.
    """

    outputs: np.ndarray
    instructions: np.ndarray
    cycles: np.ndarray
    stack_bytes: int
    flash_bytes: int
    ram_bytes: int
    target: str
    opt: str

    def __repr__(self) -> str:
        if not len(self.instructions):
            return (
                f"TargetRun({self.target} {self.opt}, {len(self.outputs)} inferences, not counted)"
            )
        return (
            f"TargetRun({self.target} {self.opt}, {len(self.instructions)} inferences, "
            f"{int(np.median(self.instructions)):,} instructions and "
            f"~{int(np.median(self.cycles)):,} cycles each, stack {self.stack_bytes} B, "
            f"flash {self.flash_bytes:,} B, RAM {self.ram_bytes:,} B)"
        )


def harness_c(name: str) -> str:
    """The C ``main`` that drives ``{name}_invoke`` over the samples in HOST_IO."""
    return _HARNESS.substitute(name=name, NAME=name.upper())


def host_io(inputs_int8: np.ndarray, n_outputs: int) -> bytes:
    """The HOST_IO block for these inputs: n_samples, inputs, zeroed room for the outputs."""
    n_samples = len(inputs_int8)
    return struct.pack("<I", n_samples) + inputs_int8.tobytes() + bytes(n_samples * n_outputs)


def emulator(image: Image, io_block: bytes):
    """A unicorn Cortex-M core with the image in flash, ``io_block`` in HOST_IO and SP set.

    Start it with ``run(uc, image)``; hooks added before that see the whole program.
    """
    import unicorn
    from unicorn import arm_const

    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, _CPU_MODELS[image.target]))
    read, write, execute = unicorn.UC_PROT_READ, unicorn.UC_PROT_WRITE, unicorn.UC_PROT_EXEC
    flash, ram = image.address("_flash_origin"), image.address("_ram_origin")
    uc.mem_map(flash, image.address("_flash_length"), read | execute)
    uc.mem_map(ram, image.address("_ram_length"), read | write)
    uc.mem_map(image.address("denselab_host_io"), _pages(len(io_block)), read | write)
    uc.mem_write(flash, image.flash)
    uc.mem_write(image.address("denselab_host_io"), io_block)
    initial_sp = struct.unpack_from("<I", image.flash, 0)[0]  # vector table word 0
    uc.reg_write(arm_const.UC_ARM_REG_SP, initial_sp)
    return uc


def run(uc, image: Image, timeout_seconds: float = 600.0) -> None:
    """Run from the reset vector to ``denselab_halt``; a fault or a hang is a RuntimeError."""
    import unicorn
    from unicorn import arm_const

    reset = struct.unpack_from("<I", image.flash, 4)[0]  # vector table word 1, Thumb bit set
    halt = image.address("denselab_halt")
    try:
        uc.emu_start(reset, halt, timeout=int(timeout_seconds * 1e6))
    except unicorn.UcError as error:
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
        raise RuntimeError(f"the program faulted at pc 0x{pc:08x}: {error}") from None
    pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
    if pc & ~1 != halt:
        raise RuntimeError(f"the program did not finish in {timeout_seconds:g} s (pc 0x{pc:08x})")


def emulate(image: Image, inputs_int8: np.ndarray, n_outputs: int, count: bool = True) -> TargetRun:
    """Run every sample through the image's ``{name}_invoke`` on the emulated core.

    inputs_int8 : ndarray of shape (n_samples, n_inputs), int8, already checked.
    n_outputs : the engine's output size.
    count : count instructions and cycles (a Python hook per basic block, ~10x slower);
        without it ``instructions`` and ``cycles`` are empty and only the bytes are compared.
    """
    from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE

    n_samples, n_inputs = inputs_int8.shape
    uc = emulator(image, host_io(inputs_int8, n_outputs))
    counter = _Counter(image)
    start, end = image.engine_text
    if count:
        uc.hook_add(UC_HOOK_BLOCK, counter.on_block, begin=start, end=end - 1)
    mark = image.address("denselab_inference_start")
    uc.hook_add(UC_HOOK_CODE, counter.on_inference_start, begin=mark, end=mark)
    run(uc, image, timeout_seconds=600.0 + 0.5 * n_samples)
    totals = counter.totals()
    if len(totals) != n_samples + 1:
        raise RuntimeError(f"{len(totals) - 1} inferences counted for {n_samples} samples")

    offset = image.address("denselab_host_io") + 4 + n_samples * n_inputs
    outputs = np.frombuffer(bytes(uc.mem_read(offset, n_samples * n_outputs)), np.int8)
    stack_bytes = counter.stack_pointer - _lowest_stack_write(uc, image) if n_samples else 0
    return TargetRun(
        outputs=outputs.reshape(n_samples, n_outputs).copy(),
        instructions=np.diff(totals[:, 0]) if count else np.zeros(0, np.int64),
        cycles=np.diff(totals[:, 1]) if count else np.zeros(0, np.int64),
        stack_bytes=max(0, stack_bytes),
        flash_bytes=image.flash_bytes,
        ram_bytes=image.ram_bytes,
        target=image.target,
        opt=image.opt,
    )


class _Counter:
    """Adds up the instructions and estimated cycles of the engine's blocks as they run.

    ``on_block`` runs ~20,000 times an inference, so it is a closure over local counters.
    """

    def __init__(self, image: Image):
        from unicorn.arm_const import UC_ARM_REG_SP

        code, timing = image.flash, CORE_TIMINGS[image.target]
        blocks: dict[int, tuple[int, int, int]] = {}  # address -> (instructions, cycles, size)
        instructions = cycles = 0
        fallthrough = -1  # where the last block ended; -1 at the start of an inference
        marks: list[int] = []  # instructions and cycles so far, at each inference start
        self.stack_pointer = 0

        def on_block(uc, address, size, user_data):
            nonlocal instructions, cycles, fallthrough
            block = blocks.get(address)
            if block is None or block[2] != size:
                decoded = decode_block(code, address, size)
                block = blocks[address] = (len(decoded), block_cycles(decoded, timing), size)
            instructions += block[0]
            cycles += block[1]
            if address != fallthrough:
                # A branch landed here: the pipeline refills. At an inference's first block
                # this is the call's refill, standing in for the return's (the same P).
                cycles += timing.refill
            fallthrough = address + size

        def on_inference_start(uc, address, size, user_data):
            nonlocal fallthrough
            if not marks:
                self.stack_pointer = uc.reg_read(UC_ARM_REG_SP)  # as {name}_invoke sees it
            fallthrough = -1
            marks.extend((instructions, cycles))

        def totals() -> np.ndarray:
            """Shape (n_samples + 1, 2): instructions and cycles at each inference boundary."""
            return np.array([*marks, instructions, cycles], dtype=np.int64).reshape(-1, 2)

        self.on_block, self.on_inference_start, self.totals = on_block, on_inference_start, totals


def _lowest_stack_write(uc, image: Image) -> int:
    """The lowest stack address whose paint was overwritten."""
    bottom, top = image.address("_sstack"), image.address("_estack")
    words = np.frombuffer(bytes(uc.mem_read(bottom, top - bottom)), dtype="<u4")
    used = np.flatnonzero(words != STACK_PAINT)
    return top if used.size == 0 else bottom + 4 * int(used[0])


def _pages(n_bytes: int) -> int:
    return max(4096, (n_bytes + 4095) // 4096 * 4096)
