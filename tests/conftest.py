"""Shared fixtures: run the CLI in-process (fast) or as a real subprocess (exit status, stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("DENSELAB_OFFLINE", "1")  # tests never reach for the network


@pytest.fixture
def cli(capsys):
    """``cli("neuron", "--json")`` -> the JSON object the command printed (status must be 0)."""
    from denselab.cli import main

    def run(*args: str, status: int = 0):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr().out
        assert code == status, f"denselab {' '.join(map(str, args))} exited {code}: {out}"
        return json.loads(out) if "--json" in args and out.strip() else out

    return run


def run_denselab(*args: str, env: dict | None = None, timeout: int = 300):
    """The real ``denselab`` command in a subprocess; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "denselab.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def lesson_run(tmp_path_factory):
    """The lesson's 784-20-10 classifier trained for 20 epochs on mnist-5k (shared by tests)."""
    from denselab.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("lesson-run")
    return train(TrainConfig(dataset="mnist-5k", epochs=20, seed=0), out=folder)
