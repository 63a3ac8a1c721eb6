"""Faults at every step: an output folder is always wholly the old one or wholly the new one.

``deploy``, ``train``, ``explore`` and the search's ``chosen/`` are each run over an existing
good output, and stopped at a chosen point: after the Nth file is written (its bytes on
disk, before its rename), just before the folder is swapped in, just after. The faults are
``kill -9`` (a real process), SIGTERM (a real signal; in this process, as it is cheaper) and
a full disk (``ENOSPC`` from the writer). Afterwards the folder is exactly the old one (same
bytes, hidden files included) or a complete new one (every file as its manifest records),
the exit status and message are the ones the README promises, and ``verify`` agrees with
what is there. A ``kill -9`` of ``search`` takes its worker processes with it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_hard_to_break import copy, run_cli, shared_world, tree

# Run a denselab command with one fault armed: FAULT=action:point, action kill (SIGKILL),
# term (SIGTERM) or enospc (a full disk); point write-N (after the Nth file's bytes, before
# its rename), swap-before or swap-after (the folder swap).
HARNESS = """
import contextlib, errno, os, signal, sys
from denselab import fileio, folders

action, point = os.environ["DENSELAB_TEST_FAULT"].split(":")
writes = [0]

def trip():
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

if point.startswith("write-"):
    original_atomic_path = fileio.atomic_path

    @contextlib.contextmanager
    def atomic_path(target, suffix=""):
        with original_atomic_path(target, suffix) as tmp:
            yield tmp
            writes[0] += 1
            if writes[0] == int(point[len("write-"):]):
                trip()

    fileio.atomic_path = atomic_path
else:
    original_swap = folders._swap

    def swap(staging, target):
        if point == "swap-before":
            trip()
        original_swap(staging, target)
        if point == "swap-after":
            trip()

    folders._swap = swap
from denselab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def arm(monkeypatch, action: str, point: str) -> None:
    """The harness's fault, armed in this process (SIGTERM is a real signal here too)."""
    from denselab import fileio, folders

    def trip():
        if action == "term":  # the handler raises KeyboardInterrupt, or it waits for a swap
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if point.startswith("write-"):
        import contextlib

        original, writes = fileio.atomic_path, [0]

        @contextlib.contextmanager
        def atomic_path(target, suffix=""):
            with original(target, suffix) as tmp:
                yield tmp
                writes[0] += 1
                if writes[0] == int(point[len("write-") :]):
                    trip()

        monkeypatch.setattr(fileio, "atomic_path", atomic_path)
    else:
        original_swap = folders._swap

        def swap(staging, target):
            if point == "swap-before":
                trip()
            original_swap(staging, target)
            if point == "swap-after":
                trip()

        monkeypatch.setattr(folders, "_swap", swap)


def in_subprocess(fault: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "DENSELAB_TEST_FAULT": fault},
    )


def complete(folder: Path) -> bool:
    """Every file in ``folder`` is as its manifest records, and every file is recorded."""
    from denselab import folders

    manifest = folders.read_manifest(folder)
    if manifest is None or folders.manifest_differences(folder, manifest) != ([], []):
        return False
    present = {p.name for p in folder.iterdir()} - {folders.MANIFEST}
    return present == set(manifest["files"])


def expected_status(action: str, point: str) -> int:
    return {"kill": -signal.SIGKILL, "term": 130, "enospc": 2}[action]


def leftovers(parent: Path, name: str) -> list[str]:
    """What a killed command may leave beside its output: its staging folder, its lock."""
    return sorted(p.name for p in parent.iterdir() if p.name != name)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return shared_world(tmp_path_factory)


def expected_state(action: str, point: str, manifest_write: str, epochs=()) -> str:
    """Stopped before the swap, a folder is the old one; after it, the new one. SIGTERM (or
    Ctrl-C) that comes once the new folder is complete, while its manifest is written and it
    is swapped in, waits for the swap: the command then exits 130 with the new folder. And
    SIGTERM during training (``epochs``: the progress writes) saves the run stopped there."""
    if point == "swap-after":
        return "new"
    if action == "term" and point in (manifest_write, "swap-before", *epochs):
        return "new"
    return "old"


@pytest.fixture(scope="module")
def real_processes(world, tmp_path_factory):
    """The faults that need a real process (kill -9; SIGTERM to the whole process), all run
    at once, two at a time: {(command, action, point): (folder, output, old tree of the
    output, the finished process)}. DENSELAB_ALL_FAULTS=1 adds every point (slow)."""
    every = bool(os.environ.get("DENSELAB_ALL_FAULTS"))
    cases = [("deploy", "kill", p) for p in (DEPLOY_POINTS if every else ["write-5", "swap-after"])]
    cases += [("deploy", "term", "write-5")]
    cases += [("train", "kill", p) for p in (TRAIN_POINTS if every else ["write-1", "swap-before"])]
    cases += [("explore", "kill", "write-1"), ("explore", "term", "write-1")]
    base = tmp_path_factory.mktemp("real-processes")
    page = base / "explorer.html"  # the page the explore cases replace
    status = run_cli_quietly("explore", world / "dense.keras", "--out", page)
    assert status == 0

    def one(case):
        command, action, point = case
        folder = base / f"{command}-{action}-{point}"
        folder.mkdir()
        if command == "deploy":
            out = copy(world / "fw", folder / "fw")
            args = deploy_args(world, out)
        elif command == "train":
            out = copy(world / "run", folder / "run")
            args = train_args(world, out)
        else:
            out = folder / "explorer.html"
            shutil.copy(page, out)
            args = ["explore", world / "other.keras", "--out", out]
        old = tree(out) if out.is_dir() else out.read_bytes()
        return case, (folder, out, old, in_subprocess(f"{action}:{point}", *args, cwd=folder))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, cases))


def run_cli_quietly(*args) -> int:
    from denselab.cli import main

    return main([str(a) for a in args])


def cases_of(real_processes: dict, command: str) -> list:
    return [(key[1], key[2], *value) for key, value in real_processes.items() if key[0] == command]


# --- deploy ------------------------------------------------------------------------------------

# Deploy writes, into its staging folder: 1-2 the .tflite pair, 3-9 the C files, 10
# report.json, 11 the manifest; then the swap.
DEPLOY_POINTS = ["write-1", "write-5", "write-10", "write-11", "swap-before", "swap-after"]


def deploy_args(world: Path, fw: Path) -> list:
    data = world / "data.csv"
    return ["deploy", world / "other.keras", "--data", data, "--out", fw, "--target", "none"]


def deploy_state(world: Path, fw: Path, old: dict) -> str:
    if tree(fw) == old:
        return "old"
    report = json.loads((fw / "report.json").read_text())
    assert complete(fw), sorted(os.listdir(fw))
    assert report["model"] == str(world / "other.keras")
    return "new"


_verified: dict = {}


def verify_agrees(world: Path, fw: Path, capsys) -> None:
    """``verify`` passes on what is there (run once per distinct content)."""
    key = json.dumps(tree(fw), sort_keys=True)
    if key not in _verified:
        status, out, err = run_cli(capsys, "verify", fw, "--data", world / "data.csv", "--json")
        _verified[key] = (status, json.loads(out) if status == 0 else err)
    status, result = _verified[key]
    assert status == 0, result
    assert result["c_vs_tflm_differing_samples"] == 0


# (A full disk cannot strike after the swap: nothing is written then.)
IN_PROCESS_DEPLOY_FAULTS = [
    ("term", p) for p in ("write-1", "write-10", "swap-before", "swap-after")
]
IN_PROCESS_DEPLOY_FAULTS += [("enospc", p) for p in ("write-1", "write-10", "swap-before")]


@pytest.mark.parametrize("action, point", IN_PROCESS_DEPLOY_FAULTS)
def test_deploy_stopped_in_this_process(world, tmp_path, capsys, monkeypatch, action, point):
    fw = copy(world / "fw", tmp_path / "fw")
    old = tree(fw)
    arm(monkeypatch, action, point)
    status, _, err = run_cli(capsys, *deploy_args(world, fw))
    monkeypatch.undo()
    if action == "enospc":
        assert status == 2, err
        assert err.startswith(f"denselab deploy: cannot write {fw}")
        assert "No space left on device; nothing was changed there" in err
    else:
        assert status == 130, err
        assert err.endswith("denselab deploy: interrupted\n")
    assert deploy_state(world, fw, old) == expected_state(action, point, "write-11")
    assert leftovers(tmp_path, "fw") == []
    verify_agrees(world, fw, capsys)


def test_deploy_killed_or_stopped_as_a_real_process(world, real_processes, capsys):
    for action, point, folder, fw, old, result in cases_of(real_processes, "deploy"):
        assert result.returncode == expected_status(action, point), result.stderr
        if action == "term":
            assert result.stderr.endswith("denselab deploy: interrupted\n")
        state = expected_state(action, point, "write-11")
        assert deploy_state(world, fw, old) == state, point
        verify_agrees(world, fw, capsys)
        # a kill leaves at most a staging folder and a lock file; the next deploy clears them
        allowed = {".fw.partial", ".fw.lock"} if action == "kill" else set()
        assert set(leftovers(folder, "fw")) <= allowed
        if leftovers(folder, "fw"):
            status, _, err = run_cli(capsys, *deploy_args(world, fw))
            assert status == 0, err
            assert leftovers(folder, "fw") == []
            assert complete(fw)


# --- train -------------------------------------------------------------------------------------

# Train writes, into its staging folder: 1-2 history.json after each epoch (its progress),
# 3 model.keras, 4 history.json, 5 metrics.json, 6 run.json, 7 the manifest; then the swap.
TRAIN_POINTS = ["write-1", "write-3", "write-6", "write-7", "swap-before", "swap-after"]


def train_args(world: Path, run: Path) -> list:
    data = world / "data.csv"
    return ["train", data, "--out", run, "--epochs", "2", "--seed", "7", "--no-plots"]


def run_state(run: Path, old: dict) -> str:
    if tree(run) == old:
        return "old"
    assert complete(run), sorted(os.listdir(run))
    assert json.loads((run / "run.json").read_text())["config"]["seed"] == 7
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == json.loads((run / "metrics.json").read_text())["epochs_done"]
    return "new"


@pytest.mark.parametrize(
    "action, point",
    [("term", "write-3"), ("enospc", "write-6"), ("term", "write-7"), ("enospc", "write-7")],
)
def test_train_stopped_in_this_process(world, tmp_path, capsys, monkeypatch, action, point):
    run = copy(world / "run", tmp_path / "run")
    old = tree(run)
    arm(monkeypatch, action, point)
    status, _, err = run_cli(capsys, *train_args(world, run))
    monkeypatch.undo()
    last = err.strip().splitlines()[-1]
    if action == "enospc":
        assert status == 2, err
        assert last.startswith(f"denselab train: cannot write {run}/")
        assert last.endswith(
            "No space left on device; nothing was changed there, free some space and run it again"
        )
    else:
        assert status == 130, err
        assert last == "denselab train: interrupted"
    assert run_state(run, old) == expected_state(action, point, "write-7")
    assert leftovers(tmp_path, "run") == []


def test_train_stopped_during_its_epochs_saves_a_whole_run_it_can_resume(world, tmp_path, capsys):
    """SIGTERM while training (not while saving) is the README's "saves its last epoch": the
    stopped run replaces the folder as a whole, and --resume continues it."""
    from denselab import fitting

    run = copy(world / "run", tmp_path / "run")
    old = tree(run)
    record = fitting._Recorder.record

    def record_then_stop(self, logs):
        record(self, logs)
        os.kill(os.getpid(), signal.SIGTERM)  # after the first epoch

    mp = pytest.MonkeyPatch()
    mp.setattr(fitting._Recorder, "record", record_then_stop)
    try:
        args = ["train", world / "data.csv", "--out", run, "--epochs", "3", "--seed", "7"]
        status, _, err = run_cli(capsys, *args, "--no-plots")
    finally:
        mp.undo()
    assert status == 130, err
    assert f"denselab train --resume {run}" in err
    assert tree(run) != old and complete(run)
    assert json.loads((run / "metrics.json").read_text())["interrupted"] is True
    status, out, err = run_cli(capsys, "train", "--resume", run, "--no-plots", "--json")
    assert status == 0, err
    assert json.loads(out)["epochs_done"] == 3 and complete(run)


def test_train_killed_with_sigkill_is_old_or_new(world, real_processes, capsys):
    for action, point, folder, run, old, result in cases_of(real_processes, "train"):
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert run_state(run, old) == expected_state(action, point, "write-7"), point
        assert set(leftovers(folder, "run")) <= {".run.partial", ".run.lock"}
    _, _, folder, run, old, _ = cases_of(real_processes, "train")[0]
    status, _, err = run_cli(capsys, *train_args(world, run))  # the next run cleans up
    assert status == 0, err
    assert leftovers(folder, "run") == [] and run_state(run, old) == "new"


# --- explore -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["term", "enospc"])
def test_explore_stopped_keeps_the_old_page(world, tmp_path, capsys, monkeypatch, action):
    page = tmp_path / "explorer.html"
    status, _, err = run_cli(capsys, "explore", world / "dense.keras", "--out", page)
    assert status == 0, err
    old = tree(tmp_path)
    arm(monkeypatch, action, "write-1")
    status, _, err = run_cli(capsys, "explore", world / "other.keras", "--out", page)
    monkeypatch.undo()
    assert status == expected_status(action, "write-1"), err
    assert tree(tmp_path) == old


def test_explore_killed_or_stopped_as_a_real_process_keeps_the_old_page(real_processes):
    for action, point, folder, page, old, result in cases_of(real_processes, "explore"):
        assert result.returncode == expected_status(action, point), result.stderr
        assert page.read_bytes() == old  # the old page, whole
        stray = [p.name for p in folder.iterdir() if p != page]
        if action == "term":
            assert result.stderr == "denselab explore: interrupted\n"
            assert stray == []
        else:  # nothing runs after kill -9: the new page's temporary file is left
            assert all(name.startswith(".explorer.html.") for name in stray), stray


# --- the search: chosen/ and the worker processes --------------------------------------------


@pytest.fixture
def chosen_search(world, tmp_path, monkeypatch):
    """A search folder with a chosen/ from before, and keep_chosen with the training and the
    measuring replaced by the world's own run (the folder writing is the real one)."""
    from denselab.data import load_dataset
    from denselab.model import load_model
    from denselab.runs import read_config, read_history
    from denselab.search import choose, trial

    out = tmp_path / "search"
    copy(world / "run", out / "chosen")
    copy(world / "run", out / "trials" / "0003")
    int8_tflite = (world / "fw" / "model_int8.tflite").read_bytes()
    trained = (load_model(world / "run"), read_config(world / "run"), read_history(world / "run"))
    monkeypatch.setattr(trial, "train_candidate", lambda *args, **kwargs: trained)
    monkeypatch.setattr(trial, "ship", lambda model, part: (int8_tflite, {}))
    measured = {
        "int8_test_accuracy": 0.5,
        "keras_test_accuracy": 0.5,
        "test_samples": 12,
        "flash_bytes": 900,
        "ram_bytes": 20,
        "trial_flash_bytes": 900,
    }
    monkeypatch.setattr(choose, "_test", lambda *args, **kwargs: dict(measured))
    data = load_dataset(str(world / "data.csv"))
    spec = trial.SearchSpec("data", 0.5, None, None, 2, 0, str(out / "trials"))
    row = {
        "trial": 3,
        "params": {"input_use": 0.0},
        "int8_val_accuracy": 0.5,
        "flash_bytes": 900,
        "run": str(out / "trials" / "0003"),
    }
    return lambda: choose.keep_chosen(row, spec, data, data, out), out


# keep_chosen writes: 1 model.keras, 2 history.json, 3 metrics.json, 4 run.json, 5 the int8
# .tflite, 6 metrics.json with the test numbers, 7 the manifest; then the swap.
@pytest.mark.parametrize("action", ["term", "enospc"])
@pytest.mark.parametrize("point", ["write-1", "write-6", "write-7", "swap-before"])
def test_search_chosen_is_replaced_whole_or_not_at_all(chosen_search, monkeypatch, action, point):
    keep, out = chosen_search
    old = tree(out)

    def interrupt(signum, frame):  # what `denselab search` does with SIGTERM
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        arm(monkeypatch, action, point)
        with pytest.raises((KeyboardInterrupt, Exception)) as stopped:
            keep()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if action == "enospc":
        assert str(stopped.value).startswith(f"cannot write {out}/chosen")
    if expected_state(action, point, "write-7") == "old":
        assert tree(out) == old
    else:  # SIGTERM while the new chosen/ was being swapped in: it waited for the swap
        assert tree(out / "chosen") != {k[7:]: v for k, v in old.items() if k.startswith("chosen/")}
        assert complete(out / "chosen")
    assert sorted(p.name for p in out.iterdir()) == ["chosen", "trials"]


def test_search_chosen_replaced_whole(chosen_search):
    keep, out = chosen_search
    old = tree(out / "chosen")
    kept = keep()
    assert kept["run"] == str(out / "chosen")
    assert tree(out / "chosen") != old and complete(out / "chosen")
    assert json.loads((out / "chosen" / "metrics.json").read_text())["search_trial"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["chosen", "trials"]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended; only its entry is left


def _is_worker(pid: int) -> bool:
    try:
        return b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_a_search_killed_with_sigkill_takes_its_workers_with_it(world, tmp_path):
    pytest.importorskip("optuna")
    args = ["search", world / "data.csv", "--target-accuracy", "0.5", "--trials", "20"]
    args += ["--workers", "2", "--epochs-max", "2", "--out", tmp_path / "search"]
    search = subprocess.Popen(
        [sys.executable, "-m", "denselab.cli", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, workers = time.monotonic() + 120, []
        while len(workers) < 2:
            assert time.monotonic() < deadline, "the search started no workers"
            assert search.poll() is None, "the search ended before its workers started"
            workers = [pid for pid in _children(search.pid) if _is_worker(pid)]
            time.sleep(0.2)
        time.sleep(3.0)  # the workers are importing Keras, or training
        search.kill()
        search.wait()
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _running(pid)], "workers outlived the search"
    finally:
        search.kill()
        for pid in workers if "workers" in locals() else []:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


# --- every point, every fault, as real processes (DENSELAB_ALL_FAULTS=1 for the fixtures) --


@pytest.mark.slow
@pytest.mark.parametrize("action", ["kill", "term", "enospc"])
@pytest.mark.parametrize(
    "command, point",
    [("deploy", p) for p in DEPLOY_POINTS] + [("train", p) for p in TRAIN_POINTS],
)
def test_every_fault_as_a_real_process(world, tmp_path, capsys, command, point, action):
    name = "fw" if command == "deploy" else "run"
    folder = copy(world / name, tmp_path / name)
    old = tree(folder)
    args = deploy_args(world, folder) if command == "deploy" else train_args(world, folder)
    result = in_subprocess(f"{action}:{point}", *args, cwd=tmp_path)
    if point == "swap-after" and action == "enospc":
        pytest.skip("a full disk cannot strike after the swap: nothing is written then")
    assert result.returncode == expected_status(action, point), result.stderr
    state = deploy_state(world, folder, old) if command == "deploy" else run_state(folder, old)
    if command == "deploy":
        assert state == expected_state(action, point, "write-11")
    else:
        assert state == expected_state(action, point, "write-7", epochs=("write-1", "write-2"))
    if command == "deploy":
        verify_agrees(world, folder, capsys)
    allowed = {f".{name}.partial", f".{name}.lock"} if action == "kill" else set()
    assert set(leftovers(tmp_path, name)) <= allowed
    shutil.rmtree(tmp_path / name)
