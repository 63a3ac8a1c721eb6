"""The search: the smallest dense network that reaches a target accuracy within the budgets.

The default run searches the 8x8 ``digits`` with a few short trials: once in local worker
processes (stopped with Ctrl-C half way, then continued), once on a local two-worker Ray
instance. The long acceptance run on ``mnist-5k`` is marked slow.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from denselab.errors import DenselabError

DIGITS = {"dataset": "digits", "target_accuracy": 0.85, "epochs_max": 4, "workers": 2}
TRIALS = 5
SEARCH_JSON_KEYS = {
    "dataset",
    "target_accuracy",
    "max_flash",
    "max_ram",
    "trials",
    "trials_complete",
    "trials_pruned",
    "trials_failed",
    "validation_samples",
    "toolchain",
    "pareto_front",
    "chosen",
    "measured",
    "study",
    "plot",
}


def _finished_trials(out: Path) -> dict[int, tuple]:
    """{trial number: (state, params, value)} of the COMPLETE and PRUNED trials in study.db."""
    import optuna
    from optuna.trial import TrialState

    if not (out / "study.db").exists():
        return {}
    try:
        study = optuna.load_study(study_name="denselab-search", storage=f"sqlite:///{out}/study.db")
    except KeyError:  # the study is being created
        return {}
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    return {t.number: (t.state.name, t.params, t.value) for t in done}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A digits search run as a real process, stopped with Ctrl-C after two finished trials,
    then the same search run again (in this process) to its end."""
    out = tmp_path_factory.mktemp("search")
    call = f"search(trials={TRIALS}, out={str(out)!r}, **{DIGITS!r})"
    code = f"from denselab.search import search; {call}"
    first = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while len(_finished_trials(out)) < 2 and first.poll() is None:
        assert time.monotonic() < deadline, "the first run finished no trials in 4 minutes"
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    before = _finished_trials(out)
    trial_files = {n: (out / "trials" / f"{n:04d}" / "model.keras") for n in before}
    mtimes = {n: path.stat().st_mtime_ns for n, path in trial_files.items() if path.exists()}

    from denselab.search import search

    result = search(trials=TRIALS, out=out, **DIGITS)
    return {
        "out": out,
        "first_status": first.returncode,
        "first_stderr": stderr,
        "before": before,
        "mtimes": mtimes,
        "after": _finished_trials(out),
        "result": result,
    }


def test_ctrl_c_then_the_same_command_continues_without_repeating_trials(resumed):
    assert resumed["first_status"] != 0, "the first run was meant to be interrupted"
    assert "rerun the same command to continue" in resumed["first_stderr"]
    before, after = resumed["before"], resumed["after"]
    assert 2 <= len(before) < TRIALS
    assert len(after) == TRIALS  # the total counts: the rerun ran only the missing ones
    for number, finished in before.items():
        assert after[number] == finished  # kept as they were, not rerun
    for number, mtime in resumed["mtimes"].items():
        path = resumed["out"] / "trials" / f"{number:04d}" / "model.keras"
        assert path.stat().st_mtime_ns == mtime
    assert resumed["result"]["trials_complete"] + resumed["result"]["trials_pruned"] == TRIALS


def test_search_json_holds_a_non_dominated_front_and_the_plot(resumed):
    result, out = resumed["result"], resumed["out"]
    assert SEARCH_JSON_KEYS <= set(result)
    assert json.loads((out / "search.json").read_text()) == json.loads(json.dumps(result))
    assert (out / "search_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    front, measured = result["pareto_front"], result["measured"]
    assert front and measured
    for row in front:  # nothing measured is at least as small and strictly more accurate
        assert not any(
            other["flash_bytes"] <= row["flash_bytes"]
            and other["int8_val_accuracy"] > row["int8_val_accuracy"]
            for other in measured
            if other["within_budget"]
        )
    for row in measured:  # and every measured network is matched or beaten by the front
        assert any(
            f["flash_bytes"] <= row["flash_bytes"]
            and f["int8_val_accuracy"] >= row["int8_val_accuracy"]
            for f in front
        )


def test_chosen_is_the_smallest_whose_accuracy_holds_up_in_cross_validation(resumed):
    result = resumed["result"]
    chosen, measured, confirmed = result["chosen"], result["measured"], result["confirmed"]
    target = result["target_accuracy"]
    meeting = sorted(
        (r for r in measured if r["within_budget"] and r["int8_val_accuracy"] >= target),
        key=lambda r: (r["flash_bytes"], -r["int8_val_accuracy"]),
    )
    # the ones that met the target were cross-validated smallest first, up to the chosen
    assert [c["trial"] for c in confirmed] == [r["trial"] for r in meeting[: len(confirmed)]]
    for check in confirmed:
        assert 0.0 <= check["int8_cv_accuracy"] <= 1.0
    if chosen["meets_target"]:
        assert confirmed[-1]["trial"] == chosen["trial"]
        assert chosen["int8_cv_accuracy"] >= target
        assert all(c["int8_cv_accuracy"] < target for c in confirmed[:-1])
    elif confirmed:
        assert all(c["int8_cv_accuracy"] < target for c in confirmed)
        assert chosen["int8_cv_accuracy"] == max(c["int8_cv_accuracy"] for c in confirmed)
    else:
        assert chosen["int8_val_accuracy"] == max(r["int8_val_accuracy"] for r in measured)
    # retrained on the whole training split: the same inputs and shapes, so no more flash
    assert chosen["flash_bytes"] <= chosen["trial_flash_bytes"]
    assert 0.0 <= chosen["int8_test_accuracy"] <= 1.0


def test_chosen_run_folder_loads_and_deploys(resumed, tmp_path):
    from denselab.deploy import deploy
    from denselab.model import dense_network, load_model

    chosen = resumed["result"]["chosen"]
    run = Path(chosen["run"])
    for name in ("model.keras", "history.json", "metrics.json", "run.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "run.json").read_text())["config"]["dataset"] == "digits"
    widths = [64] + [layer.n_neurons for layer in dense_network(load_model(run)).layers]
    assert "-".join(map(str, widths)) == chosen["layers"]

    shipped = deploy(run, out=tmp_path / "fw")  # the dataset comes from run.json
    assert shipped["c_vs_tflm_differing_samples"] == 0
    assert shipped["flash_bytes"] == chosen["flash_bytes"]
    # deploy calibrates on the whole training split, the search on its fit part: close
    assert abs(shipped["c_int8_accuracy"] - chosen["int8_test_accuracy"]) <= 0.03


def test_rerun_with_other_settings_is_refused(resumed):
    from denselab.search import search

    with pytest.raises(DenselabError, match="other settings"):
        search(trials=TRIALS, out=resumed["out"], **{**DIGITS, "target_accuracy": 0.5})


def test_pareto_front_keeps_only_networks_nothing_beats():
    from denselab.search import pareto_front

    rows = [
        {"layers": "a", "flash_bytes": 1000, "int8_val_accuracy": 0.80},
        {"layers": "b", "flash_bytes": 2000, "int8_val_accuracy": 0.78},  # bigger and worse
        {"layers": "c", "flash_bytes": 3000, "int8_val_accuracy": 0.90},
        {"layers": "d", "flash_bytes": 3000, "int8_val_accuracy": 0.85},  # same size, worse
        {"layers": "e", "flash_bytes": 500, "int8_val_accuracy": 0.60},
    ]
    assert [r["layers"] for r in pareto_front(rows)] == ["e", "a", "c"]


def test_a_flash_budget_that_holds_no_network_is_refused(tmp_path):
    from denselab.search import search

    with pytest.raises(DenselabError, match="cannot hold even 4 neurons"):
        search("digits", 0.9, max_flash=150, trials=1, out=tmp_path)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starting its own processes
@pytest.mark.filterwarnings("error:The reported value is ignored")  # a trial run twice
def test_search_on_a_local_two_worker_ray_instance(tmp_path):
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed: pip install 'ray[tune]'")
    pytest.importorskip("ray.tune.search.optuna", reason="Ray Tune's Optuna searcher is missing")
    from denselab.model import load_model
    from denselab.search import search

    result = search(trials=3, out=tmp_path, ray_address="local", **DIGITS)
    assert SEARCH_JSON_KEYS <= set(result)
    assert result["trials_complete"] + result["trials_pruned"] == 3
    assert result["pareto_front"] and (tmp_path / "search_pareto.png").exists()
    load_model(result["chosen"]["run"])  # a normal run folder, measured as locally
    assert {"int8_val_accuracy", "flash_bytes", "ram_bytes"} <= set(result["chosen"])


@pytest.mark.slow
def test_mnist_5k_search_finds_half_the_lesson_flash_within_a_point(lesson_run, tmp_path):
    """Acceptance: 30 trials find a network within 1 point of the lesson model's int8 test
    accuracy at no more than half its flash (784-20-10: about 17 kB on a Cortex-M4)."""
    from denselab.deploy import deploy
    from denselab.search import search

    lesson = deploy(lesson_run.path, out=tmp_path / "lesson-fw")
    budget = lesson["flash_bytes"] // 2
    result = search(
        "mnist-5k",
        target_accuracy=lesson["c_int8_accuracy"] - 0.005,
        max_flash=budget,
        trials=30,
        out=tmp_path / "search",
    )
    chosen = result["chosen"]
    assert chosen["flash_bytes"] <= budget
    assert chosen["int8_test_accuracy"] >= lesson["c_int8_accuracy"] - 0.01


def test_a_refit_that_diverges_keeps_the_trials_own_model(resumed, tmp_path, monkeypatch):
    import shutil

    from denselab.data import load_dataset
    from denselab.search import VALIDATION_FRACTION, choose, validation_view
    from denselab.search import trial as search_trial

    out = tmp_path / "search"
    shutil.copytree(resumed["out"], out)
    chosen = dict(resumed["result"]["chosen"])
    chosen["run"] = str(out / "trials" / Path(chosen["trial_run"]).name)
    data = load_dataset(DIGITS["dataset"])
    view = validation_view(data, VALIDATION_FRACTION, 0)
    spec = search_trial.SearchSpec("digits", 0.85, None, None, 4, 0, str(out / "trials"))
    monkeypatch.setattr(search_trial, "train_candidate", lambda *args, **kwargs: None)
    kept = choose.keep_chosen(chosen, spec, data, view, out)
    assert kept["chosen_model"] == "the search trial's model, not retrained"
    assert kept["flash_bytes"] == chosen["trial_flash_bytes"]
    trial = json.loads((Path(chosen["run"]) / "history.json").read_text())
    assert json.loads((out / "chosen" / "history.json").read_text()) == trial
    metrics = json.loads((out / "chosen" / "metrics.json").read_text())
    assert metrics["search_trial"] == chosen["trial"]


def test_the_ray_median_rule_never_pauses_a_trial_it_cannot_judge_yet():
    """Ray's MedianStoppingRule pauses a trial it has too few others to judge by when a
    trial waits; a paused function trial runs again from its first epoch. denselab's rule
    lets it run on. Negative control: Ray's own rule, fed the same, pauses it."""
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed: pip install 'ray[tune]'")
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

    from denselab.search.ray import _median_stopping_rule

    class Waiting:  # a controller with one trial waiting to run
        def get_live_trials(self):
            return [type("Pending", (), {"status": Trial.PENDING})()]

    options = {
        "time_attr": "training_iteration",
        "metric": "score",
        "mode": "min",
        "grace_period": 3,
        "min_samples_required": 4,
    }
    running = type("Running", (), {"trial_id": "running"})()
    for rule, expected in (
        (_median_stopping_rule(**options), TrialScheduler.CONTINUE),
        (MedianStoppingRule(**options), TrialScheduler.PAUSE),
    ):
        decisions = [
            rule.on_trial_result(Waiting(), running, {"training_iteration": t, "score": 50.0})
            for t in (1, 2, 3)
        ]
        assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, expected]
