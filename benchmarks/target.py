"""On the emulated Cortex-M: the lesson's 784-20-10 engine, instructions per inference.

Every figure here is the *emulated target* (unicorn), not x86 and not silicon: instructions
are exact, cycles an estimate from the cores' timings at zero wait states. The in-run
baseline is denselab's portable kernel (the DSP path switched off with
``-DDENSELAB_PORTABLE``) on the same core; the anchor is CMSIS-NN's figure, measured once
with the same weights (it is not rebuilt here: that needs CMSIS-NN's sources).

    python benchmarks/target.py            # prints the rows as JSON
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

# arm_fully_connected_per_channel_s8 x2 + arm_softmax_s8, the lesson model on mnist-5k,
# arm-none-eabi-gcc 12.2 -mcpu=cortex-m4 -mthumb -O2, unicorn; measured 2026-11 (issue 11).
CMSIS_NN_M4_O2_INSTRUCTIONS = 36_797
LESSON_MACS = 784 * 20 + 20 * 10


def target_rows(work: Path, quick: bool) -> list[dict]:
    """One row per (core, optimization, kernel): median instructions per inference, per MAC,
    estimated cycles, flash, RAM and stack, on the lesson model trained on mnist-5k."""
    from denselab import report
    from denselab.data import load_dataset
    from denselab.engine import generate_c
    from denselab.int8.convert import calibration_samples, to_tflite
    from denselab.int8.tflite import read_int8_tflite
    from denselab.model import dense_network
    from denselab.runs import TrainConfig
    from denselab.target import available, run_on_target
    from denselab.train import train

    ready, why = available()
    if not ready:
        return [{"core": "(skipped)", "note": why}]
    report.quiet()
    data = load_dataset("mnist-5k")
    run = train(TrainConfig(dataset="mnist-5k", epochs=2 if quick else 20), work / "lesson", data)
    _, int8_tflite = to_tflite(dense_network(run.model), calibration_samples(data.x_train))
    engine = generate_c(int8_tflite, "model")
    inputs = read_int8_tflite(int8_tflite).quantize_input(data.x_test[: 20 if quick else 200])
    rows = []
    plan = [
        ("cortex-m4", "-O2", "DSP (SMLAD)"),
        ("cortex-m4", "-O2", "portable"),
        ("cortex-m4", "-Os", "DSP (SMLAD)"),
        ("cortex-m4", "-Os", "portable"),
        ("cortex-m0plus", "-O2", "portable"),
        ("cortex-m0plus", "-Os", "portable"),
    ]
    for core, opt, kernel in plan:
        defines = ["-DDENSELAB_PORTABLE"] if kernel == "portable" else []
        if core == "cortex-m0plus":
            defines = []  # no DSP extension: the portable kernel is the only one
        chip = run_on_target(engine, inputs, target=core, opt=opt, defines=defines)
        median = float(np.median(chip.instructions))
        rows.append(
            {
                "core": core,
                "opt": opt,
                "kernel": kernel,
                "instructions": int(median),
                "per MAC": round(median / LESSON_MACS, 2),
                "cycles (estimate)": int(np.median(chip.cycles)),
                "flash B": chip.flash_bytes,
                "RAM B": chip.ram_bytes,
                "stack B": chip.stack_bytes,
            }
        )
    rows.append(
        {
            "core": "cortex-m4",
            "opt": "-O2",
            "kernel": "CMSIS-NN (anchor, not rerun)",
            "instructions": CMSIS_NN_M4_O2_INSTRUCTIONS,
            "per MAC": round(CMSIS_NN_M4_O2_INSTRUCTIONS / LESSON_MACS, 2),
        }
    )
    return rows


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="denselab-target-bench-") as folder:
        print(json.dumps(target_rows(Path(folder), quick="--quick" in sys.argv), indent=1))
