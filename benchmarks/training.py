"""Training as a learner measures it: whole processes, side by side, in one run.

Three programs train the lesson's 784-20-10 network on the same split for the same epochs:
the course's code with ``fit(verbose=0)``, the course's code as written (Keras's default
progress output), and ``denselab train DATASET`` as a learner types it (its five pictures
written). They take turns, repeat after repeat, so a drift of the machine's speed falls on
all of them. Two figures come from the same processes:

- the whole job: wall time from the process's start to its exit;
- time to the course's validation accuracy: from the process's start to the end of the
  first epoch whose validation accuracy is at least the course run's final one (the course
  is timed to its own final accuracy, denselab to the accuracy of the course run beside it).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
from common import DENSELAB, course, timed

COURSE_RUNS = {"verbose=0": "0", "as written": "auto"}


def training_section(dataset: str, epochs: int, repeats: int, work: Path) -> tuple[dict, Path]:
    """The side-by-side table (a section for BENCHMARKS.md) and a finished run folder."""
    course_runs = {name: [] for name in COURSE_RUNS}
    ours, ours_bare = [], []
    for repeat in range(repeats):
        for name, verbose in COURSE_RUNS.items():
            started, wall, result = course(
                "classifier", "--dataset", dataset, "--epochs", str(epochs), "--verbose", verbose
            )
            target = result["val_accuracy"][-1]
            reach = _first_reach(started, result["epoch_end_unix"], result["val_accuracy"], target)
            course_runs[name].append({"wall": wall, "val": target, "reach": reach})
        ours.append(_denselab(dataset, epochs, repeat, work / f"run{repeat}", plots=True))
        ours_bare.append(_denselab(dataset, epochs, repeat, work / f"bare{repeat}", plots=False))
        for name, runs in course_runs.items():
            ours[-1][f"reach {name}"] = _first_reach(
                ours[-1]["started"],
                ours[-1]["history"]["epoch_end_unix"],
                ours[-1]["history"]["val_accuracy"],
                runs[-1]["val"],
            )
        print(_progress(repeat, course_runs, ours[-1]), flush=True)
    return _section(dataset, epochs, repeats, course_runs, ours, ours_bare), work / "run0"


def _denselab(dataset: str, epochs: int, seed: int, out: Path, plots: bool) -> dict:
    command = [*DENSELAB, "train", dataset, "--epochs", str(epochs), "--seed", str(seed)]
    started, wall, _ = timed([*command, "--out", str(out), *([] if plots else ["--no-plots"])])
    history = json.loads((out / "history.json").read_text())
    pictures = sorted(p.name for p in out.glob("*.png"))
    return {"started": started, "wall": wall, "history": history, "pictures": pictures}


def _first_reach(started: float, ends: list, accuracies: list, target: float) -> float:
    """Seconds from ``started`` to the first epoch end with accuracy >= target (inf: never)."""
    for end, accuracy in zip(ends, accuracies, strict=True):
        if accuracy >= target - 1e-9:
            return end - started
    return float("inf")


def _progress(repeat: int, course_runs: dict, ours: dict) -> str:
    parts = [
        f"course {name}: {runs[-1]['wall']:.1f} s, to its accuracy {runs[-1]['reach']:.1f} s "
        f"(val {runs[-1]['val']:.4f})"
        for name, runs in course_runs.items()
    ]
    return (
        f"training {repeat}: "
        + "; ".join(parts)
        + f"; denselab {ours['wall']:.2f} s, to course verbose=0's {ours['reach verbose=0']:.2f} s "
        f"(val {ours['history']['val_accuracy'][-1]:.4f}, {len(ours['pictures'])} pictures)"
    )


def _section(dataset, epochs, repeats, course_runs, ours, ours_bare) -> dict:
    def median(values):
        return statistics.median(values)

    quiet, loud = course_runs["verbose=0"], course_runs["as written"]
    wall_quiet, wall_loud = median(r["wall"] for r in quiet), median(r["wall"] for r in loud)
    wall_ours = median(r["wall"] for r in ours)
    wall_bare = median(r["wall"] for r in ours_bare)
    reach_quiet, reach_loud = median(r["reach"] for r in quiet), median(r["reach"] for r in loud)
    ours_quiet = median(r["reach verbose=0"] for r in ours)
    ours_loud = median(r["reach as written"] for r in ours)
    val_ours = median(r["history"]["val_accuracy"][-1] for r in ours)
    first_epoch = median(r["history"]["epoch_end_unix"][0] - r["started"] for r in ours)
    per_epoch = median(float(np.median(np.diff(r["history"]["epoch_end_unix"]))) for r in ours)
    missed = sum(r["reach verbose=0"] == float("inf") for r in ours)
    rows = [
        [
            "**whole job**: process start to exit, pictures included",
            f"{wall_quiet:.1f} s",
            f"{wall_loud:.1f} s",
            f"{wall_ours:.2f} s",
            f"**{wall_quiet / wall_ours:.1f}x**",
            f"{wall_loud / wall_ours:.1f}x",
        ],
        [
            "**time to the course's validation accuracy**, process start included",
            f"{reach_quiet:.1f} s",
            f"{reach_loud:.1f} s",
            f"{ours_quiet:.2f} s / {ours_loud:.2f} s",
            f"**{reach_quiet / ours_quiet:.1f}x**",
            f"{reach_loud / ours_loud:.1f}x",
        ],
        [
            "whole job with `--no-plots`",
            "",
            "",
            f"{wall_bare:.2f} s",
            f"{wall_quiet / wall_bare:.1f}x",
            f"{wall_loud / wall_bare:.1f}x",
        ],
        [
            "final validation accuracy (median)",
            f"{median(r['val'] for r in quiet):.4f}",
            f"{median(r['val'] for r in loud):.4f}",
            f"{val_ours:.4f}",
            "",
            "",
        ],
    ]
    notes = [
        f"{dataset}, {epochs} epochs, the lesson's 784-20-10 network, batch 32; medians of "
        f"{repeats} repeat(s), the programs taking turns in one run. The course's code is Keras "
        "3 on TensorFlow (`benchmarks/course_code.py`); denselab's pictures: "
        + ", ".join(ours[0]["pictures"])
        + ".",
        "Time to accuracy: the course is timed to its own final validation accuracy; denselab "
        "to the final accuracy of the course run beside it (first figure: the `verbose=0` "
        "run's, second: the as-written run's)"
        + (f"; denselab did not reach it in {missed} of {repeats} repeat(s)" if missed else "")
        + ".",
        f"denselab's first epoch ends {first_epoch:.2f} s after its process starts; each "
        f"further epoch takes {per_epoch * 1000:.0f} ms (medians).",
        "Each repeat, the course with `verbose=0` (its final accuracy: its time to it) and "
        "denselab (its final accuracy: its time to the course's): "
        + "; ".join(
            f"{c['val']:.4f}: {c['reach']:.1f} s vs {o['history']['val_accuracy'][-1]:.4f}: "
            + (
                f"{o['reach verbose=0']:.2f} s"
                if o["reach verbose=0"] != float("inf")
                else "not reached"
            )
            for c, o in zip(quiet, ours, strict=True)
        )
        + ".",
    ]
    columns = [
        f"{dataset}, whole processes",
        "course, `fit(verbose=0)`",
        "course as written (`fit` defaults)",
        f"`denselab train {dataset}`",
        "ratio vs `verbose=0`",
        "ratio vs as written",
    ]
    return {
        "title": "Training, as a learner measures it",
        "columns": columns,
        "rows": rows,
        "notes": notes,
    }


def neuron_section(epochs: int, repeats: int) -> dict:
    """Lesson 1: one neuron, ``epochs`` epochs of SGD on six points; course vs ``denselab
    neuron``, the training alone and the whole process."""
    runs = {"course": [], "denselab": []}
    for _ in range(repeats):
        _, wall, result = course("neuron", "--epochs", str(epochs))
        runs["course"].append((result["fit_seconds"], wall, result["w"], result["b"]))
        _, wall, stdout = timed([*DENSELAB, "neuron", "--epochs", str(epochs), "--json"])
        result = json.loads(stdout)
        runs["denselab"].append((result["train_seconds"], wall, result["w"], result["b"]))
    fit_c, wall_c, w_c, b_c = np.median(runs["course"], axis=0)
    fit_o, wall_o, w_o, b_o = np.median(runs["denselab"], axis=0)
    rows = [
        [
            f"one neuron, {epochs} epochs of SGD on six points: the training",
            f"course `model.fit(xs, ys, epochs={epochs})`: {fit_c:.2f} s",
            f"`denselab neuron` training (compile included): {fit_o:.2f} s",
            f"**{fit_c / fit_o:.1f}x**",
            f"course w {w_c:.4f}, b {b_c:.4f}; denselab w {w_o:.4f}, b {b_o:.4f}",
        ],
        [
            "one neuron, whole process (imports, training, printing)",
            f"course script: {wall_c:.2f} s",
            f"`denselab neuron`: {wall_o:.2f} s",
            f"**{wall_c / wall_o:.1f}x**",
            "the hand-written NumPy loop is included in denselab's time",
        ],
    ]
    return {
        "title": "Lesson 1: one neuron",
        "columns": ["what", "course's code", "denselab", "ratio", "note"],
        "rows": rows,
        "notes": [],
    }
