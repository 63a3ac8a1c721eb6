"""The generated C engine on emulated Cortex-M cores: the same bytes as TFLite Micro, and its cost.

``denselab.target`` cross-compiles the engine with arm-none-eabi-gcc into a bare-metal image
and runs it in unicorn. The outputs must equal the TFLM interpreter's and the host-compiled
engine's byte for byte; the instruction counts must be exact (checked here against a
per-instruction trace and against hand-written assembly whose count is known).
"""

from __future__ import annotations

import collections
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")
pytest.importorskip("unicorn")

from denselab.target import TARGETS, available, build_image, run_on_target  # noqa: E402

if not available()[0]:
    pytest.skip(available()[1], allow_module_level=True)
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to build the generated C on the host", allow_module_level=True)

# The pipeline steps these tests use; the modules moved once already, so they are named here only.
from random_models import random_dense_model, random_int8_inputs  # noqa: E402

from denselab.backend import keras as _keras  # noqa: E402
from denselab.engine import c_engine_invoke, c_engine_size, generate_c  # noqa: E402
from denselab.errors import DenselabError  # noqa: E402
from denselab.int8.convert import to_tflite  # noqa: E402
from denselab.int8.tflm import tflm_invoke  # noqa: E402
from denselab.model import build_model, dense_network  # noqa: E402
from denselab.target.emulate import emulator, harness_c, host_io, run  # noqa: E402
from denselab.target.timing import decode_block, instruction_width  # noqa: E402

N_RANDOM_MODELS = 20
ALL_ACTIVATIONS = dict(
    hidden=("relu", "linear", "sigmoid", "tanh"), outputs=("softmax", "linear", "sigmoid", "tanh")
)

keras = _keras()

# A hand-written engine whose cost is known: 25 instructions, output = input + 1.
PROBE_H = """\
#ifndef PROBE_H
#define PROBE_H
#include <stdint.h>
#define PROBE_INPUT_SIZE 1
#define PROBE_OUTPUT_SIZE 1
void probe_invoke(const int8_t *input, int8_t *output);
#endif
"""
PROBE_C = """\
#include "probe.h"
/* ldrb, adds, strb, movs; 10 x (subs, bne); bx lr: 4 + 20 + 1 = 25 instructions. */
#define UNUSED __attribute__((unused)) /* read by the assembly, not by C */
__attribute__((naked)) void probe_invoke(const int8_t *input UNUSED, int8_t *output UNUSED)
{
    __asm__ volatile(
        ".syntax unified\\n"
        "ldrb r2, [r0]\\n"
        "adds r2, r2, #1\\n"
        "strb r2, [r1]\\n"
        "movs r3, #10\\n"
        "1: subs r3, r3, #1\\n"
        "bne 1b\\n"
        "bx lr\\n");
}
"""
# Cycles by the documented model: base 2+1+2+1 + 10*(1+1) + 1 = 27 on M0+/M4 (M7: loads 1,
# so 25), plus a refill P for each of the 9 taken branches and the return: P = 1, 2, 1.
PROBE_CYCLES = {"cortex-m0plus": 27 + 10 * 1, "cortex-m4": 27 + 10 * 2, "cortex-m7": 25 + 10 * 1}


def lesson_engine(name: str = "lesson") -> dict:
    """The lesson's 784-20-10 classifier (relu, softmax) with random weights, as int8 C."""
    model = build_model((28, 28), [20, 10], ["relu", "softmax"], seed=0)
    representative = np.random.default_rng(0).random((100, 28, 28), dtype=np.float32)
    _, int8_tflite = to_tflite(dense_network(model), representative)
    return {"int8_tflite": int8_tflite, "sources": generate_c(int8_tflite, name), "name": name}


def random_dense_engine(seed: int) -> dict:
    """A random Keras MLP (1-4 Dense layers, widths 1-128, 1-784 inputs, every activation) as
    int8 C, with 1,000 random int8 inputs (the first two all -128 and all 127)."""
    model, representative = random_dense_model(seed, **ALL_ACTIVATIONS)
    _, int8_tflite = to_tflite(dense_network(model), representative)
    network = dense_network(model)
    return {
        "int8_tflite": int8_tflite,
        "sources": generate_c(int8_tflite, "model"),
        "name": "model",
        "network": network,
        "inputs": random_int8_inputs(network.n_inputs, seed),
    }


def int8_inputs(n_inputs: int, n_samples: int, seed: int) -> np.ndarray:
    """Random int8 inputs of shape (n_samples, n_inputs); the first two are all -128 and all 127."""
    inputs = np.random.default_rng(1000 + seed).integers(-128, 128, (n_samples, n_inputs), np.int8)
    inputs[0], inputs[1] = -128, 127
    return inputs


@pytest.fixture(scope="module")
def lesson() -> dict:
    return lesson_engine() | {"inputs": int8_inputs(784, 200, 0)}


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("target", TARGETS)
def test_lesson_model_gives_tflite_micros_bytes_on_every_core(lesson, target, opt):
    expected = tflm_invoke(lesson["int8_tflite"], lesson["inputs"])
    run_ = run_on_target(lesson["sources"], lesson["inputs"], "lesson", target=target, opt=opt)
    assert run_.outputs.shape == (200, 10) and run_.outputs.dtype == np.int8
    np.testing.assert_array_equal(run_.outputs, expected)
    np.testing.assert_array_equal(
        run_.outputs, c_engine_invoke(lesson["sources"], lesson["inputs"])
    )
    macs = 784 * 20 + 20 * 10
    assert (run_.instructions > macs).all() and (run_.cycles >= run_.instructions).all()
    assert 0 < run_.stack_bytes < 1024 and 0 < run_.ram_bytes < 1024
    assert macs < run_.flash_bytes < macs + 8 * 1024


@pytest.fixture(scope="module")
def random_engines() -> list[dict]:
    return [random_dense_engine(seed) for seed in range(700, 700 + N_RANDOM_MODELS)]


def test_20_random_dense_models_give_tflite_micros_bytes_on_m4_and_m0plus(random_engines):
    differing = {}
    for case in random_engines:
        expected = tflm_invoke(case["int8_tflite"], case["inputs"])
        assert len(case["inputs"]) >= 1000
        for target in ("cortex-m0plus", "cortex-m4"):
            run_ = run_on_target(case["sources"], case["inputs"], target=target, count=False)
            key = f"{case['network']} on {target}"
            differing[key] = int(np.any(run_.outputs != expected, axis=1).sum())
    assert len(differing) == 2 * N_RANDOM_MODELS
    assert sum(differing.values()) == 0, differing


def test_random_models_cover_widths_inputs_depths_and_activations(random_engines):
    networks = [case["network"] for case in random_engines]
    assert {1, 784} <= {network.n_inputs for network in networks}
    assert {len(network.layers) for network in networks} == {1, 2, 3, 4}
    widths = [layer.n_neurons for network in networks for layer in network.layers]
    assert min(widths) < 16 and max(widths) > 100
    activations = {layer.activation for network in networks for layer in network.layers}
    assert {"relu", "linear", "sigmoid", "tanh", "softmax"} <= activations


def test_a_flipped_weight_byte_is_caught(lesson):
    """Negative control: corrupt one weight in the C source; the comparison must fail."""
    sources = dict(lesson["sources"])
    table = sources["lesson.c"].index("dense_2_weights[5][20] DENSELAB_WORD_ALIGNED = {")
    first = re.compile(r"/\* neurons 0 and 1 \*/\s*(-?\d+)").search(sources["lesson.c"], table)
    # Two neurons share an int16 (256 * w_odd + w_even + 128): bit 15 is neuron 1's sign.
    flipped = int(np.int16(np.uint16(int(first.group(1)) & 0xFFFF) ^ 0x8000))
    start, end = first.span(1)
    sources["lesson.c"] = sources["lesson.c"][:start] + str(flipped) + sources["lesson.c"][end:]

    inputs = lesson["inputs"][:50]
    corrupted = run_on_target(sources, inputs, "lesson").outputs
    assert (corrupted != tflm_invoke(lesson["int8_tflite"], inputs)).any()
    np.testing.assert_array_equal(corrupted, c_engine_invoke(sources, inputs))


@pytest.mark.parametrize("target", TARGETS)
def test_probe_costs_exactly_what_its_assembly_says(target):
    inputs = np.array([[0], [-128], [126], [127]], dtype=np.int8)
    probe = run_on_target({"probe.h": PROBE_H, "probe.c": PROBE_C}, inputs, "probe", target)
    np.testing.assert_array_equal(probe.outputs, (inputs.astype(np.int16) + 1).astype(np.int8))
    assert probe.instructions.tolist() == [25] * 4
    assert probe.cycles.tolist() == [PROBE_CYCLES[target]] * 4
    assert probe.stack_bytes == 0


def test_stack_peak_is_read_from_the_painted_stack():
    source = PROBE_C.split("#define UNUSED")[0] + (
        "void probe_invoke(const int8_t *input, int8_t *output)\n{\n"
        "    volatile int32_t scratch[100];\n    int i;\n"
        "    for (i = 0; i < 100; i++) {\n        scratch[i] = input[0] + i;\n    }\n"
        "    output[0] = (int8_t)scratch[99];\n}\n"
    )
    inputs = np.array([[1], [2]], dtype=np.int8)
    probe = run_on_target({"probe.h": PROBE_H, "probe.c": source}, inputs, "probe", opt="-O2")
    assert probe.outputs.tolist() == [[100], [101]]
    assert 400 <= probe.stack_bytes <= 400 + 32  # the array, and at most a few saved registers


@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_block_counts_equal_a_per_instruction_trace(lesson, target):
    """Every instruction a code hook sees is counted; the M4's extra are failed IT slots."""
    from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE

    image = build_image(lesson["sources"], harness_c("lesson"), target=target, opt="-O2")
    inputs = lesson["inputs"][:3]
    uc = emulator(image, host_io(inputs, 10))
    start, end = image.engine_text
    traced, issued = collections.Counter(), collections.Counter()
    uc.hook_add(UC_HOOK_CODE, lambda uc, a, s, _: traced.update([a]), begin=start, end=end - 1)
    uc.hook_add(
        UC_HOOK_BLOCK,
        lambda uc, a, s, _: issued.update(i[0] for i in decode_block(image.flash, a, s)),
        begin=start,
        end=end - 1,
    )
    run(uc, image)

    assert all(issued[address] >= count for address, count in traced.items())
    skipped = {address for address in issued if issued[address] != traced[address]}
    assert skipped <= _in_it_blocks(image.flash, issued)
    if target == "cortex-m0plus":  # ARMv6-M has no IT: the two counts are the same
        assert not skipped
    counted = run_on_target(lesson["sources"], inputs, "lesson", target=target)
    assert counted.instructions.sum() == sum(issued.values())


def test_counts_are_deterministic_and_follow_the_data(lesson):
    inputs = lesson["inputs"][:20]
    first = run_on_target(lesson["sources"], inputs, "lesson", opt="-Os")
    again = run_on_target(lesson["sources"], inputs, "lesson", opt="-Os")
    np.testing.assert_array_equal(first.instructions, again.instructions)
    np.testing.assert_array_equal(first.cycles, again.cycles)
    repeated = run_on_target(lesson["sources"], inputs[[5] * 4], "lesson", opt="-Os")
    assert repeated.instructions.tolist() == [first.instructions[5]] * 4


def test_engine_flash_and_ram_agree_with_c_engine_size(lesson):
    """The same Cortex-M4 -Os engine, linked on its own there and here in a whole image."""
    image = build_image(lesson["sources"], harness_c("lesson"), target="cortex-m4", opt="-Os")
    size = c_engine_size(lesson["sources"], "lesson")
    assert (image.flash_bytes, image.ram_bytes) == (size["flash_bytes"], size["ram_bytes"])
    assert set(image.object_sizes) == {"lesson.o", "denselab_kernels.o"}


def test_user_mistakes_are_reported_as_denselab_errors(lesson):
    inputs = lesson["inputs"][:2]
    with pytest.raises(DenselabError, match="cortex-m0plus"):
        run_on_target(lesson["sources"], inputs, "lesson", target="cortex-m3")
    with pytest.raises(DenselabError, match="optimization level"):
        run_on_target(lesson["sources"], inputs, "lesson", opt="-O9")
    with pytest.raises(DenselabError, match="int8"):
        run_on_target(lesson["sources"], inputs.astype(np.float32), "lesson")
    with pytest.raises(DenselabError, match=r"shape \(n_samples, 784\)"):
        run_on_target(lesson["sources"], inputs[:, :10], "lesson")
    with pytest.raises(DenselabError, match="no model.h"):
        run_on_target(lesson["sources"], inputs)


def _in_it_blocks(code: bytes, addresses) -> set[int]:
    """The instructions that an IT instruction among ``addresses`` makes conditional."""
    covered = set()
    for address in addresses:
        halfword = code[address] | code[address + 1] << 8
        mask = halfword & 0xF
        if halfword >> 8 != 0b10111111 or not mask:
            continue
        following = address + 2
        for _ in range(5 - (mask & -mask).bit_length()):  # IT, ITT, ITTT, ITTTT: the lowest 1
            covered.add(following)
            following += instruction_width(code[following] | code[following + 1] << 8)
    return covered
