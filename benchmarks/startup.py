"""Start-up: how long denselab's quick commands take as whole processes, against the time
``import tensorflow`` alone takes."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from common import PYTHON, ROOT


def startup_rows(run_folder: Path, repeats: int) -> list[dict]:
    """One row per command: its median wall time, and ``import tensorflow``'s beside it."""

    def wall(command):
        walls = []
        for _ in range(repeats):
            started = time.time()
            subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
            walls.append(time.time() - started)
        return statistics.median(walls)

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
