"""Inference: the trained lesson model, one sample and the whole test split, in Keras, LiteRT,
TFLite Micro and denselab's C engine; the C engine against TFLite Micro in time and in
instructions (callgrind, where valgrind is installed)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
from common import PYTHON, median_time, seconds, times

_BENCH_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "model.h"

int main(int argc, char **argv) {
    int n = atoi(argv[1]), rounds = atoi(argv[2]);
    static int8_t inputs[20000][MODEL_INPUT_SIZE];
    int8_t output[MODEL_OUTPUT_SIZE];
    long checksum = 0;
    struct timespec t0, t1;
    if (fread(inputs, MODEL_INPUT_SIZE, (size_t)n, stdin) != (size_t)n) return 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) { model_invoke(inputs[i], output); checksum += output[0]; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("%.1f %ld\n", ns / ((double)n * rounds), checksum);
    return 0;
}
"""


def inference_rows(run_folder: Path, dataset: str, work: Path, quick: bool) -> list[dict]:
    """Rows for one sample and the whole test split: Keras, LiteRT, TFLite Micro, the C engine;
    and the C engine against TFLite Micro in time and in instructions."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from denselab.data import load_dataset
    from denselab.deploy import deploy
    from denselab.int8.tflite import read_int8_tflite
    from denselab.int8.tflm import tflm_invoke
    from denselab.model import load_model

    data = load_dataset(dataset)
    fw = work / "fw"
    from denselab import report

    report.quiet()
    deploy(run_folder, data=data, out=fw)
    int8_tflite = (fw / "model_int8.tflite").read_bytes()
    x = data.x_test[: 2000 if quick else len(data.x_test)]
    x_int8 = read_int8_tflite(int8_tflite).quantize_input(x)
    single = x[:1]

    model = load_model(run_folder)
    keras_one = median_time(lambda: model.predict(single, verbose=0), 20 if quick else 200)
    keras_all = median_time(lambda: model.predict(x, verbose=0, batch_size=1024), 3)

    import tensorflow as tf

    litert = tf.lite.Interpreter(model_content=int8_tflite)
    litert.allocate_tensors()
    index_in = litert.get_input_details()[0]["index"]
    index_out = litert.get_output_details()[0]["index"]

    def litert_one(sample):
        litert.set_tensor(index_in, sample[None])
        litert.invoke()
        return litert.get_tensor(index_out)

    litert_single = median_time(lambda: litert_one(x_int8[0]), 2000)
    litert_all = median_time(lambda: [litert_one(s) for s in x_int8], 3)

    from tflite_micro.python.tflite_micro import runtime

    tflm = runtime.Interpreter.from_bytes(int8_tflite)
    tflm.set_input(x_int8[:1], 0)
    tflm_single = median_time(tflm.invoke, 2000)
    tflm_all = median_time(lambda: tflm_invoke(int8_tflite, x_int8), 3)

    c_single, c_native, instructions = _c_engine_time(fw, x_int8, work, count=not quick)
    tflm_instructions = None if quick else _tflm_instructions(int8_tflite, x_int8[:1], work)
    c_all = c_single * len(x_int8)
    n = len(x_int8)
    return [
        _inference_row(
            "one sample",
            "Keras `model.predict` (JAX)",
            keras_one,
            {
                "LiteRT int8 (`tf.lite.Interpreter`)": litert_single,
                "TFLite Micro int8 (`invoke` from Python)": tflm_single,
                "denselab C engine int8 (gcc -O3)": c_single,
            },
        ),
        _inference_row(
            f"whole test split ({n:,})",
            "Keras `model.predict` (batch 1024)",
            keras_all,
            {
                "LiteRT int8, one sample at a time": litert_all,
                "TFLite Micro int8, one sample at a time": tflm_all,
                "denselab C engine int8, one at a time": c_all,
            },
        ),
        {
            "group": "Inference",
            "what": "C engine vs TFLite Micro, time per inference (same int8 model)",
            "baseline": f"TFLite Micro `invoke`: {tflm_single * 1e6:.1f} µs",
            "denselab": f"C engine, gcc -O3: {c_single * 1e6:.2f} µs "
            f"(-O3 -march=native: {c_native * 1e6:.2f} µs)",
            "ratio": tflm_single / c_single,
            "note": "outputs bit-exact; TFLM's time includes the Python call into its runtime",
        },
        {
            "group": "Inference",
            "what": "C engine vs TFLite Micro, instructions per inference (callgrind)",
            "baseline": f"TFLite Micro `invoke`: {tflm_instructions:,}"
            if tflm_instructions
            else "not counted (--quick, or no valgrind)",
            "denselab": f"C engine, gcc -O3: {instructions:,}" if instructions else "-",
            "ratio": tflm_instructions / instructions if instructions and tflm_instructions else 0,
            "note": "counts, not seconds: the same on a busy or an idle machine",
        },
    ]


def _inference_row(what, baseline_name, baseline, others: dict) -> dict:
    parts = [f"{name}: {seconds(t)} ({times(baseline / t)})" for name, t in others.items()]
    fastest = min(others, key=others.get)
    return {
        "group": "Inference",
        "what": what,
        "baseline": f"{baseline_name}: {seconds(baseline)}",
        "denselab": "; ".join(parts),
        "ratio": baseline / others[fastest],
        "note": f"ratio: Keras against the fastest of these ({fastest.split(' (')[0]})",
    }


def _c_engine_time(
    fw: Path, x_int8: np.ndarray, work: Path, count: bool
) -> tuple[float, float, int | None]:
    folder = work / "bench_c"
    folder.mkdir()
    for name in ("model.h", "model.c", "denselab_kernels.h", "denselab_kernels.c"):
        shutil.copy(fw / name, folder / name)
    (folder / "bench.c").write_text(_BENCH_C)
    n = min(len(x_int8), 20000)
    rounds = max(1, 200000 // n)
    medians = []
    for flags in (["-O3"], ["-O3", "-march=native"]):
        subprocess.run(
            ["gcc", "-std=c99", *flags, "-o", "bench", "bench.c", "model.c", "denselab_kernels.c"],
            cwd=folder,
            check=True,
        )
        times = []
        for _ in range(5):
            out = subprocess.run(
                [str(folder / "bench"), str(n), str(rounds)],
                cwd=folder,
                input=x_int8[:n].tobytes(),
                capture_output=True,
                check=True,
            )
            times.append(float(out.stdout.split()[0]) * 1e-9)
        medians.append(statistics.median(times))
    subprocess.run(
        ["gcc", "-std=c99", "-O3", "-o", "bench", "bench.c", "model.c", "denselab_kernels.c"],
        cwd=folder,
        check=True,
    )
    instructions = None
    if count and shutil.which("valgrind"):
        counts = [
            _callgrind([str(folder / "bench"), str(samples), "1"], x_int8[:100].tobytes(), work)
            for samples in (0, 100)
        ]
        instructions = (counts[1] - counts[0]) // 100
    return medians[0], medians[1], instructions


_TFLM_LOOP = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read())
interpreter.set_input(np.load(sys.argv[2]), 0)
for _ in range(int(sys.argv[3])):
    interpreter.invoke()
"""


def _tflm_instructions(int8_tflite: bytes, sample: np.ndarray, work: Path) -> int | None:
    """TFLM's instructions per invoke: the slope between Python loops of 1,000 and 3,000 invokes.

    A slope, not (loop - empty script) / n: the interpreter's own start-up varies by millions
    of instructions from run to run, which one short loop does not outweigh.
    """
    if not shutil.which("valgrind"):
        return None
    (work / "model.tflite").write_bytes(int8_tflite)
    np.save(work / "sample.npy", sample)
    (work / "tflm_loop.py").write_text(_TFLM_LOOP)
    command = [
        PYTHON,
        str(work / "tflm_loop.py"),
        str(work / "model.tflite"),
        str(work / "sample.npy"),
    ]
    counts = [_callgrind([*command, str(n)], b"", work) for n in (1000, 3000)]
    return (counts[1] - counts[0]) // 2000


def _callgrind(command: list[str], stdin: bytes, work: Path) -> int:
    log = work / "callgrind.out"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={log}", *command],
        input=stdin,
        capture_output=True,
        check=True,
        cwd=work,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    summary = next(x for x in log.read_text().splitlines() if x.startswith("summary:"))
    log.unlink()
    return int(summary.split()[1])
