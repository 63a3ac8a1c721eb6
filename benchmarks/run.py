"""denselab against the course's code, side by side in one run; writes BENCHMARKS.md.

    python benchmarks/run.py                 # the full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick --out /tmp/B.md   # tiny settings, for the smoke test

Every row is a ratio against its baseline measured in the same run (median of repeats).
Time to accuracy is wall time from process start to the end of the first epoch whose
validation accuracy is at least the course code's final validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
DENSELAB = [PYTHON, "-m", "denselab.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--repeats", type=int, help="repeats per row (default 3; quick 1)")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    from denselab.data import available

    dataset = "fashion-mnist" if available("fashion-mnist")[0] and not args.quick else "mnist-5k"
    epochs = 2 if args.quick else 20
    work = Path(tempfile.mkdtemp(prefix="denselab-bench-"))
    rows: list[dict] = []
    try:
        tta, run_folder = time_to_accuracy(dataset, epochs, repeats, work)
        rows += tta
        rows += one_neuron(50 if args.quick else 500, repeats)
        rows += inference(run_folder, dataset, work, quick=args.quick)
        rows += startup(run_folder, 1 if args.quick else max(3, repeats))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_markdown(Path(args.out), rows, dataset, epochs, repeats, args.quick)
    print(f"wrote {args.out}")


# --- time to accuracy ---------------------------------------------------------------------


def _timed(command: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.time()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return started, result.stdout


def _course(lesson: str, *extra: str) -> tuple[float, dict]:
    started, stdout = _timed([PYTHON, str(HERE / "course_code.py"), lesson, *extra])
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return started, json.loads(line[len("RESULT ") :])


def _first_reach(started: float, ends: list, accuracies: list, target: float) -> float | None:
    for end, accuracy in zip(ends, accuracies, strict=True):
        if accuracy >= target - 1e-9:
            return end - started
    return None


def time_to_accuracy(dataset: str, epochs: int, repeats: int, work: Path):
    course_times, course_finals, ours_times, ours_finals, run_folder = [], [], [], [], None
    for repeat in range(repeats):
        started, course = _course("classifier", "--dataset", dataset, "--epochs", str(epochs))
        target = course["val_accuracy"][-1]
        course_finals.append(target)
        course_times.append(
            _first_reach(started, course["epoch_end_unix"], course["val_accuracy"], target)
        )
        folder = work / f"run{repeat}"
        started, stdout = _timed(
            [
                *DENSELAB,
                "train",
                dataset,
                "--epochs",
                str(epochs),
                "--seed",
                str(repeat),
                "--out",
                str(folder),
                "--no-plots",
                "--json",
            ]
        )
        history = json.loads((folder / "history.json").read_text())
        ours_finals.append(json.loads(stdout)["val_accuracy"])
        reach = _first_reach(started, history["epoch_end_unix"], history["val_accuracy"], target)
        ours_times.append(reach if reach is not None else float("inf"))
        run_folder = run_folder or folder
        print(
            f"time to accuracy {repeat}: course {course_times[-1]:.1f}s (val {target:.4f}); "
            f"denselab {ours_times[-1]:.1f}s (final val {ours_finals[-1]:.4f})",
            flush=True,
        )
    course_s, ours_s = statistics.median(course_times), statistics.median(ours_times)
    return [
        {
            "group": "Training",
            "what": f"time to the course's validation accuracy, {dataset}, process start included",
            "baseline": f"course code (Keras 3, TensorFlow, fit defaults): {course_s:.1f} s",
            "denselab": f"`denselab train {dataset}`: {ours_s:.1f} s",
            "ratio": course_s / ours_s,
            "note": f"final val accuracy: course {statistics.median(course_finals):.4f}, "
            f"denselab {statistics.median(ours_finals):.4f}",
        }
    ], run_folder


def one_neuron(epochs: int, repeats: int) -> list[dict]:
    course_fit, course_wall, ours_fit, ours_wall, course_wb, ours_wb = [], [], [], [], [], []
    for _ in range(repeats):
        started, course = _course("neuron", "--epochs", str(epochs))
        course_wall.append(time.time() - started)
        course_fit.append(course["fit_seconds"])
        course_wb.append((course["w"], course["b"]))
        started, stdout = _timed([*DENSELAB, "neuron", "--epochs", str(epochs), "--json"])
        ours_wall.append(time.time() - started)
        ours = json.loads(stdout)
        ours_fit.append(ours["train_seconds"])
        ours_wb.append((ours["w"], ours["b"]))
    fit_c, fit_o = statistics.median(course_fit), statistics.median(ours_fit)
    wall_c, wall_o = statistics.median(course_wall), statistics.median(ours_wall)
    w_c, b_c = np.median(course_wb, axis=0)
    w_o, b_o = np.median(ours_wb, axis=0)
    note = f"course w {w_c:.4f}, b {b_c:.4f}; denselab w {w_o:.4f}, b {b_o:.4f}"
    return [
        {
            "group": "Training",
            "what": f"one neuron, {epochs} epochs of SGD on six points: the training",
            "baseline": f"course `model.fit(xs, ys, epochs={epochs})`: {fit_c:.2f} s",
            "denselab": f"`denselab neuron` training (compile included): {fit_o:.2f} s",
            "ratio": fit_c / fit_o,
            "note": note,
        },
        {
            "group": "Training",
            "what": "one neuron, whole process (imports, training, printing)",
            "baseline": f"course script: {wall_c:.2f} s",
            "denselab": f"`denselab neuron`: {wall_o:.2f} s",
            "ratio": wall_c / wall_o,
            "note": "the hand-written NumPy loop is included in denselab's time",
        },
    ]


# --- inference ----------------------------------------------------------------------------

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


def inference(run_folder: Path, dataset: str, work: Path, quick: bool) -> list[dict]:
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
    keras_one = _median_time(lambda: model.predict(single, verbose=0), 20 if quick else 200)
    keras_all = _median_time(lambda: model.predict(x, verbose=0, batch_size=1024), 3)

    import tensorflow as tf

    litert = tf.lite.Interpreter(model_content=int8_tflite)
    litert.allocate_tensors()
    index_in = litert.get_input_details()[0]["index"]
    index_out = litert.get_output_details()[0]["index"]

    def litert_one(sample):
        litert.set_tensor(index_in, sample[None])
        litert.invoke()
        return litert.get_tensor(index_out)

    litert_single = _median_time(lambda: litert_one(x_int8[0]), 2000)
    litert_all = _median_time(lambda: [litert_one(s) for s in x_int8], 3)

    from tflite_micro.python.tflite_micro import runtime

    tflm = runtime.Interpreter.from_bytes(int8_tflite)
    tflm.set_input(x_int8[:1], 0)
    tflm_single = _median_time(tflm.invoke, 2000)
    tflm_all = _median_time(lambda: tflm_invoke(int8_tflite, x_int8), 3)

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
    parts = [f"{name}: {_seconds(t)} ({_times(baseline / t)})" for name, t in others.items()]
    fastest = min(others, key=others.get)
    return {
        "group": "Inference",
        "what": what,
        "baseline": f"{baseline_name}: {_seconds(baseline)}",
        "denselab": "; ".join(parts),
        "ratio": baseline / others[fastest],
        "note": f"ratio: Keras against the fastest of these ({fastest.split(' (')[0]})",
    }


def _times(ratio: float) -> str:
    """2.0x, 360x, 0.37x: two significant figures at most below 10."""
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


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


def _median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _seconds(t: float) -> str:
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


# --- start-up -----------------------------------------------------------------------------


def startup(run_folder: Path, repeats: int) -> list[dict]:
    def wall(command):
        times = []
        for _ in range(repeats):
            started = time.time()
            subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
            times.append(time.time() - started)
        return statistics.median(times)

    baseline = wall([PYTHON, "-c", "import tensorflow"])
    denselab_bin = str(Path(PYTHON).with_name("denselab"))
    rows = []
    for label, command in (
        ("`denselab --help`", [denselab_bin, "--help"]),
        ("`denselab datasets`", [denselab_bin, "datasets"]),
        ("`denselab inspect RUN`", [denselab_bin, "inspect", str(run_folder)]),
        ("`denselab explain RUN --index 0`", [denselab_bin, "explain", str(run_folder)]),
    ):
        seconds = wall(command)
        rows.append(
            {
                "group": "Start-up",
                "what": label,
                "baseline": f"`python -c 'import tensorflow'`: {baseline:.2f} s",
                "denselab": f"{seconds:.2f} s",
                "ratio": baseline / seconds,
                "note": "under 0.5 s" if seconds < 0.5 else "",
            }
        )
    return rows


# --- the report ---------------------------------------------------------------------------


def write_markdown(path: Path, rows, dataset, epochs, repeats, quick) -> None:
    versions = _versions()
    lines = [
        "# Benchmarks",
        "",
        "denselab against the course's code, measured side by side in one run of "
        "`python benchmarks/run.py` (this file is its output; rerun it to reproduce).",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {_memory()}, no GPU",
        f"- versions: {versions}",
        f"- settings: {dataset}, {epochs} epochs, median of {repeats} repeat(s)"
        + (" (QUICK smoke-test settings: not representative)" if quick else ""),
        "",
        "| | what | baseline | denselab | ratio | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['group']} | {row['what']} | {row['baseline']} | {row['denselab']} | "
            f"**{row['ratio']:.1f}x** | {row['note']} |"
        )
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/run.py` (about 10 minutes).", ""]
    path.write_text("\n".join(lines))


def _versions() -> str:
    from importlib.metadata import version

    names = ("keras", "jax", "tensorflow-cpu", "tflite-micro", "numpy")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except Exception:
            continue
    return f"Python {platform.python_version()}, " + ", ".join(found)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown memory"


if __name__ == "__main__":
    main()
