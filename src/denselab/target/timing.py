"""Timing: how many instructions a block of Thumb code holds, and about how many cycles it takes.

Instruction counts are exact: a Thumb instruction is 32 bits wide when its first halfword
starts with 0b11101, 0b11110 or 0b11111, else 16 bits, so a basic block's bytes split into
instructions without a disassembler. An instruction in an IT block whose condition fails
still counts: the core issues it, as a no-op that takes its slot.

Cycles are an **estimate, not silicon**: each instruction is charged its cycles from the
core's Technical Reference Manual table for zero-wait-state memory, and every change of
control flow a pipeline refill (see :class:`CoreTiming`). Wait states, bus contention,
caches, the M7's dual issue and the M4's operand-dependent stalls are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreTiming:
    """Cycles per instruction class on one core, from its TRM (zero wait states).

    Attributes
    ----------
    load_store : LDR/STR of one register (byte, halfword or word).
    pipelined_load_store : the same right after another single load or store (M4: they
        overlap address and data phases, TRM note "neighboring load and store ... pipeline").
    multiply : MUL/MLA/MLS and the DSP multiplies (SMLAD, SMULBB, ...).
    long_multiply : SMULL/UMULL/SMLAL/UMLAL.
    divide : SDIV/UDIV, 2 to 12 cycles by operand; charged the middle of the range.
    branch_with_link : BL (M0+: 3 cycles in all, i.e. 2 + the refill).
    refill : P, the pipeline refill after a taken branch or any write to the PC (1 to 3).
    Multiple loads/stores (LDM, STM, PUSH, POP, LDRD, STRD) take 1 + N for N registers.
    """

    name: str
    load_store: int
    pipelined_load_store: int
    multiply: int
    long_multiply: int
    divide: int
    branch_with_link: int
    refill: int


CORE_TIMINGS = {
    # Cortex-M0+ TRM (ARMv6-M): two-stage pipeline, single-cycle multiplier option assumed.
    "cortex-m0plus": CoreTiming("cortex-m0plus", 2, 2, 1, 1, 1, 2, 1),
    # Cortex-M4 TRM table 3-1: loads 2 (1 when pipelined), single-cycle MAC, refill P = 2.
    "cortex-m4": CoreTiming("cortex-m4", 2, 1, 1, 1, 7, 1, 2),
    # Cortex-M7: no public table; single-cycle TCM loads and a predicted branch, no dual
    # issue credited, so this is coarser than the others and likely high.
    "cortex-m7": CoreTiming("cortex-m7", 1, 1, 1, 1, 7, 1, 1),
}

# Instruction classes
ALU, MULTIPLY, LONG_MULTIPLY, DIVIDE, LOAD_STORE, MULTIPLE, BRANCH_WITH_LINK, IT = range(8)


def instruction_width(halfword: int) -> int:
    """2 or 4: the width in bytes of the Thumb instruction whose first halfword this is."""
    return 4 if halfword >> 11 >= 0b11101 else 2


def decode_block(code: bytes, address: int, size: int) -> list[tuple[int, int, int]]:
    """The instructions in ``code[address:address + size]`` as ``(address, class, n_registers)``.

    ``n_registers`` is the register count of a load/store multiple (PC and LR included), else 0.
    """
    instructions = []
    end = address + size
    while address < end:
        first = code[address] | code[address + 1] << 8
        if instruction_width(first) == 4:
            second = code[address + 2] | code[address + 3] << 8
            kind, n_registers = _classify_32(first, second)
            instructions.append((address, kind, n_registers))
            address += 4
        else:
            kind, n_registers = _classify_16(first)
            instructions.append((address, kind, n_registers))
            address += 2
    if address != end:
        raise RuntimeError(f"block ending at 0x{end:x} splits an instruction")
    return instructions


def block_cycles(instructions: list[tuple[int, int, int]], timing: CoreTiming) -> int:
    """Estimated cycles of a straight run of instructions, not counting the final refill."""
    cycles = 0
    after_load_store = False
    for _, kind, n_registers in instructions:
        if kind == LOAD_STORE:
            cycles += timing.pipelined_load_store if after_load_store else timing.load_store
        elif kind == MULTIPLE:
            cycles += 1 + n_registers
        elif kind == MULTIPLY:
            cycles += timing.multiply
        elif kind == LONG_MULTIPLY:
            cycles += timing.long_multiply
        elif kind == DIVIDE:
            cycles += timing.divide
        elif kind == BRANCH_WITH_LINK:
            cycles += timing.branch_with_link
        else:
            cycles += 1
        after_load_store = kind == LOAD_STORE
    return cycles


def _classify_16(halfword: int) -> tuple[int, int]:
    """The class of a 16-bit Thumb instruction (ARMv7-M ARM, A5.2)."""
    if halfword >> 11 == 0b01001 or halfword >> 12 == 0b0101:  # LDR literal; register offset
        return LOAD_STORE, 0
    if halfword >> 13 == 0b011 or halfword >> 12 in (0b1000, 0b1001):  # immediate offset; SP
        return LOAD_STORE, 0
    if halfword >> 12 == 0b1100:  # STM, LDM
        return MULTIPLE, bin(halfword & 0xFF).count("1")
    if halfword >> 9 in (0b1011010, 0b1011110):  # PUSH (bit 8: LR), POP (bit 8: PC)
        return MULTIPLE, bin(halfword & 0x1FF).count("1")
    if halfword >> 6 == 0b0100001101:  # MULS
        return MULTIPLY, 0
    if halfword >> 8 == 0b10111111 and halfword & 0xF:  # IT (mask 0 is a hint: NOP, WFI, ...)
        return IT, 0
    return ALU, 0


def _classify_32(first: int, second: int) -> tuple[int, int]:
    """The class of a 32-bit Thumb-2 instruction (ARMv7-M ARM, A5.3)."""
    if first >> 11 == 0b11110:
        if second & 0x8000 and second & 0xD000 == 0xD000:  # BL
            return BRANCH_WITH_LINK, 0
        return ALU, 0  # data processing (immediate), B, B<c>, MSR, MRS, barriers
    if first >> 11 == 0b11101:
        if (first >> 9) & 0b11 == 0b00:
            if not first & 0x40:  # LDM, STM, PUSH.W, POP.W
                return MULTIPLE, bin(second).count("1")
            if first & 0xFFF0 == 0xE8D0 and second & 0xFFE0 == 0xF000:  # TBB, TBH
                return LOAD_STORE, 0
            if first & 0xFFE0 == 0xE840 or first & 0xFFF0 in (0xE8C0, 0xE8D0):  # exclusives
                return LOAD_STORE, 0
            return MULTIPLE, 2  # LDRD, STRD
        return ALU, 0  # data processing (shifted register), coprocessor
    operation = (first >> 4) & 0x7F  # 0b11111: loads, stores, register ops, multiplies
    if operation & 0x71 == 0x00 or operation & 0x61 == 0x01:  # store single; load single
        return LOAD_STORE, 0
    if operation & 0x78 == 0x30:  # MUL, MLA, MLS, SMLAD, SMULxy, ...
        return MULTIPLY, 0
    if operation & 0x78 == 0x38:  # SMULL, UMULL, SMLAL, UMLAL; SDIV, UDIV
        return (DIVIDE, 0) if first & 0xFFD0 == 0xFB90 else (LONG_MULTIPLY, 0)
    return ALU, 0  # data processing (register), coprocessor
