"""Your own data files: several numbers to predict, labels checked against the model's
outputs, and a deployed folder that remembers which file it was checked on."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")


def refused(capsys, *args) -> str:
    """Run the command in-process; it must exit 2 with one line on standard error."""
    from denselab.cli import main

    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def two_targets(tmp_path_factory):
    """y = x @ W, two numbers per sample: multi-output regression in an NPZ."""
    folder = tmp_path_factory.mktemp("two-targets")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = x @ rng.normal(size=(6, 2)).astype(np.float32)
    np.savez(folder / "flows.npz", x_train=x[:320], y_train=y[:320], x_test=x[320:], y_test=y[320:])
    return folder


def test_several_targets_train_deploy_and_verify(two_targets, cli):
    run = two_targets / "run"
    result = cli("train", two_targets / "flows.npz", "--out", run, "--epochs", "40", "--json")
    assert result["val_mae"] < 0.5
    scores = cli("evaluate", run, "--json")
    assert scores["n_samples"] == 80 and abs(scores["mae"] - result["val_mae"]) < 1e-4
    report = cli("deploy", run, "--out", two_targets / "fw", "--target", "none", "--json")
    assert report["c_vs_tflm_differing_samples"] == 0
    assert abs(report["keras_mae"] - scores["mae"]) < 1e-4  # every target, not column 0
    assert report["c_int8_mae"] < report["keras_mae"] + 0.1
    assert report["data_file"].endswith("flows.npz") and len(report["data_sha256"]) == 64
    verified = cli("verify", two_targets / "fw", "--json")
    assert verified["dataset"] == "flows" and verified["c_vs_tflm_differing_samples"] == 0


def test_several_targets_are_explained_and_the_deployed_folder_finds_its_file(two_targets, cli):
    run, fw = two_targets / "run", two_targets / "fw"  # from the test above
    y_test = np.load(two_targets / "flows.npz")["y_test"]
    why = cli("explain", run, "--index", "3", "--json")
    assert why["label"] == pytest.approx(y_test[3].tolist()) and len(why["label"]) == 2
    assert "predicted_class" not in why and why["agrees"]
    predicted = cli("predict", run, "--index", "3", "--json")
    assert predicted["output"] == pytest.approx(why["prediction"], rel=1e-6)
    assert "predicted_class" not in predicted
    assert "true [" in cli("predict", run, "--index", "3")  # the view shows several targets
    # the folder remembers the file, not a built-in dataset named "flows" (there is none)
    chip = cli("explain", fw, "--int8", "--index", "3", "--json")
    assert chip["bit_exact"] and chip["label"] == pytest.approx(y_test[3].tolist())
    np.save(two_targets / "one.npy", np.load(two_targets / "flows.npz")["x_test"][3])
    alone = cli("explain", fw, "--int8", "--input", two_targets / "one.npy", "--json")
    assert alone["output_int8"] == chip["output_int8"]
    cli("explore", fw, "--out", two_targets / "page.html", "--json")


def test_verify_refuses_a_changed_or_moved_data_file(two_targets, capsys):
    fw, data = two_targets / "fw", two_targets / "flows.npz"
    original = data.read_bytes()
    arrays = dict(np.load(data))
    arrays["y_test"] = arrays["y_test"] + 1
    np.savez(data, **arrays)
    try:
        assert "changed since deploy (its sha256 differs)" in refused(capsys, "verify", fw)
        data.rename(two_targets / "moved.npz")
        assert "is gone; give --data FILE" in refused(capsys, "verify", fw)
    finally:
        (two_targets / "moved.npz").unlink(missing_ok=True)
        data.write_bytes(original)


def test_a_file_named_like_a_built_in_dataset_is_the_file(tmp_path, cli):
    """digits.npz is the user's file, not scikit-learn's digits, when verify runs again."""
    rng = np.random.default_rng(1)
    x = rng.random((300, 5)).astype(np.float32)
    labels = (x.sum(axis=1) > 2.5).astype(np.int64) + (x[:, 0] > 0.5).astype(np.int64)
    np.savez(
        tmp_path / "digits.npz",
        x_train=x[:240],
        y_train=labels[:240],
        x_test=x[240:],
        y_test=labels[240:],
    )
    cli("train", tmp_path / "digits.npz", "--out", tmp_path / "run", "--epochs", "5", "--json")
    cli("deploy", tmp_path / "run", "--out", tmp_path / "fw", "--target", "none", "--json")
    verified = cli("verify", tmp_path / "fw", "--json")
    assert verified["test_samples"] == 60  # scikit-learn's digits would have 360


def test_labels_the_outputs_cannot_mean_are_refused(tmp_path, capsys):
    from denselab.model import build_model

    model = build_model((4,), [8, 3], ["relu", "softmax"], seed=0)
    model.save(tmp_path / "three.keras")
    rng = np.random.default_rng(2)
    x = rng.random((70, 4)).astype(np.float32)
    y = np.arange(70) % 7
    np.savez(tmp_path / "seven.npz", x_train=x[:50], y_train=y[:50], x_test=x[50:], y_test=y[50:])
    before = sorted(p.name for p in tmp_path.iterdir())
    err = refused(
        capsys,
        "deploy",
        tmp_path / "three.keras",
        "--data",
        tmp_path / "seven.npz",
        "--out",
        tmp_path / "fw",
    )
    assert "has labels 0..6 but the model has 3 outputs" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_whole_number_targets_are_a_regression_when_told(tmp_path, cli, capsys):
    """Ages 18-90 look like 84 classes to the guess; --task regression says what they are,
    and the deploy folder remembers it for verify."""
    from denselab.backend import keras as _keras

    keras = _keras()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    age = np.clip(np.round(50 + 10 * x[:, 0] + 5 * x[:, 1]), 18, 90).astype(np.int64)
    np.savez(
        tmp_path / "age.npz", x_train=x[:240], y_train=age[:240], x_test=x[240:], y_test=age[240:]
    )
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.set_weights(
        [np.array([[10.0], [5.0], [0], [0], [0]], np.float32), np.array([50.0], np.float32)]
    )
    model.save(tmp_path / "age.keras")
    args = ("evaluate", tmp_path / "age.keras", "--data", tmp_path / "age.npz")
    assert "(numbers to predict? add --task regression)" in refused(capsys, *args)
    scores = cli(*args, "--task", "regression", "--json")
    predicted = model.predict(x[240:], verbose=0)[:, 0]
    assert scores["mae"] == pytest.approx(np.mean(np.abs(predicted - age[240:])), rel=1e-5)
    report = cli(
        "deploy", tmp_path / "age.keras", "--data", tmp_path / "age.npz", "--task", "regression",
        "--out", tmp_path / "fw", "--target", "none", "--json",
    )  # fmt: skip
    assert report["data_task"] == "regression" and report["keras_mae"] == pytest.approx(
        scores["mae"], rel=1e-5
    )
    assert cli("verify", tmp_path / "fw", "--json")["c_vs_tflm_differing_samples"] == 0
