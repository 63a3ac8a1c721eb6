"""The benchmark script runs end to end on tiny settings (the real run is not a test)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_script_runs_on_quick_settings(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    for row in (
        "whole job",
        "time to the course's validation accuracy",
        "course, `fit(verbose=0)`",  # both ways the course's code runs, side by side
        "course as written",
        "one neuron",
        "per inference",
        "instructions per inference",
        "`denselab --help`",
    ):
        assert row in text
    assert "QUICK" in text  # says its numbers are not representative
