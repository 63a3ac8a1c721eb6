"""Training that can be stopped: Ctrl-C saves the last completed epoch; --resume continues."""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_denselab


def _start_training(out, epochs):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "denselab.cli",
            "train",
            "mnist-5k",
            "--epochs",
            str(epochs),
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--no-plots",
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_first_epoch(process, out, timeout=120):
    # While it trains, the progress is in the staging folder beside --out: the run folder
    # itself is replaced only by the whole run (denselab.folders.folder_transaction).
    history = out.parent / f".{out.name}.partial" / "history.json"
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            if json.loads(history.read_text()).get("loss"):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail("training did not finish its first epoch")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_training_saves_the_last_epoch_and_resumes(tmp_path, signum):
    out = tmp_path / "run"
    process = _start_training(out, epochs=30)
    _wait_for_first_epoch(process, out)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"denselab train --resume {out}" in stderr
    assert "Traceback" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and 1 <= metrics["epochs_done"] < 30
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == metrics["epochs_done"]

    if signum == signal.SIGTERM:
        return
    resumed = run_denselab("train", "--resume", out, "--json", "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["epochs_done"] == 30 and final["interrupted"] is False
    uninterrupted = run_denselab(
        "train",
        "mnist-5k",
        "--epochs",
        "30",
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--out",
        tmp_path / "straight",
        "--json",
        "--no-plots",
    )
    straight = json.loads(uninterrupted.stdout)
    assert final["val_accuracy"] >= straight["val_accuracy"] - 0.01
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 30


def test_a_diverging_training_stops_with_a_clear_message_and_saves_no_model(tmp_path):
    result = run_denselab(
        "train",
        "line",
        "--layers",
        "1",
        "--optimizer",
        "sgd",
        "--learning-rate",
        "10",
        "--epochs",
        "50",
        "--out",
        tmp_path / "run",
        "--no-plots",
    )
    assert result.returncode == 2
    assert "training diverged at epoch" in result.stderr
    assert "Try a lower --learning-rate" in result.stderr
    assert not (tmp_path / "run").exists()


def test_resume_of_a_finished_run_is_refused(lesson_run):
    result = run_denselab("train", "--resume", lesson_run.path)
    assert result.returncode == 2
    assert "already finished its 20 epochs" in result.stderr
