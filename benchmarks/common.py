"""What every benchmark module shares: where things are, how a whole process is timed, and
how numbers are written."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
DENSELAB = [PYTHON, "-m", "denselab.cli"]


def timed(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``command`` (from the repository's folder) to its end: its start on the wall clock
    (Unix seconds), its whole wall time in seconds, and its standard output."""
    started = time.time()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    seconds = time.time() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return started, seconds, result.stdout


def course(lesson: str, *extra: str) -> tuple[float, float, dict]:
    """The course's code (``course_code.py``) as a whole process: start, wall time, result."""
    started, seconds, stdout = timed([PYTHON, str(HERE / "course_code.py"), lesson, *extra])
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return started, seconds, json.loads(line[len("RESULT ") :])


def median_time(function, repeats: int) -> float:
    """The median wall time of ``function()`` over ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def seconds(t: float) -> str:
    """12.3 µs, 4.5 ms or 6.78 s."""
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def times(ratio: float) -> str:
    """2.0x, 360x, 0.37x: two significant figures at most below 10."""
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x"
