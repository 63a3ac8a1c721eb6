"""Files a hostile or careless hand left where denselab reads or writes: devices and pipes in
a run folder, JSON nested too deeply, an .npz that unpacks to gigabytes, weights that are
NaN, a report.json edited by hand, pictures of the user's where `plot` would draw. Each is one
line and exit status 2 (1 where a check found a difference), and nothing of the user's is
replaced or left half-written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from denselab.cli import main


def refused(capsys, *args, status: int = 2) -> str:
    capsys.readouterr()
    assert main([str(a) for a in args]) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def run_copy(lesson_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(lesson_run.path, folder)
    return folder


@pytest.mark.parametrize("name", ["run.json", "history.json", "model.keras"])
def test_a_device_or_a_pipe_in_a_run_folder_is_never_opened(run_copy, capsys, name):
    (run_copy / name).unlink()
    (run_copy / name).symlink_to("/dev/zero")  # read forever: all memory
    assert "is a character device, not a file" in refused(capsys, "plot", run_copy)
    (run_copy / name).unlink()
    os.mkfifo(run_copy / name)  # blocks forever on open
    assert "is a named pipe, not a file" in refused(capsys, "plot", run_copy)


def test_json_nested_too_deeply_is_damaged_not_a_recursion_error(run_copy, capsys):
    (run_copy / "history.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "history.json is damaged (nested too deeply)" in refused(capsys, "plot", run_copy)


def test_a_history_no_training_writes_is_refused(run_copy, capsys):
    history = json.loads((run_copy / "history.json").read_text())
    history["loss"] = [1e308] * len(history["loss"])
    (run_copy / "history.json").write_text(json.dumps(history))
    assert "is not a list of finite numbers (at most 1e+30)" in refused(capsys, "plot", run_copy)


def _digest(folder):
    """Every file under ``folder`` by its path, with its sha256 (folders as their names)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "/"
        for p in sorted(folder.rglob("*"))
    }


def test_plot_never_replaces_a_picture_denselab_did_not_draw(lesson_run, tmp_path, capsys, cli):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "weights.png").write_text("my own picture")
    (out / "notes.txt").write_text("kept")
    before = _digest(out)
    assert "mine/weights.png exists and denselab did not write it" in refused(
        capsys, "plot", lesson_run.path, "--out", out
    )
    assert _digest(out) == before  # not one picture drawn beside it
    cli("plot", lesson_run.path, "--out", out, "--force")
    assert (out / "weights.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "notes.txt").read_text() == "kept"
    cli("plot", lesson_run.path, "--out", out)  # its own pictures: redrawn without --force


def test_a_refused_plot_leaves_no_folder(tmp_path, capsys):
    from denselab.backend import keras as _keras

    keras = _keras()
    one = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(1)])
    one.save(tmp_path / "one.keras")
    out = tmp_path / "pictures"
    err = refused(capsys, "plot", tmp_path / "one.keras", "--data", "mnist-5k", "--out", out)
    assert "labels 0..9 but the model has 1 outputs" in err
    assert not out.exists()


def test_a_zip_bomb_npz_is_refused_from_its_headers(tmp_path, capsys, monkeypatch):
    """The four arrays' sizes and sample counts come from their .npy headers: a file of a
    few kilobytes that unpacks to the bound is refused before a byte of it is unpacked."""
    import denselab.data.files as files

    monkeypatch.setattr(files, "MAX_NPZ_BYTES", 1 << 20)  # the real bound is 8 GB
    big = np.zeros((4_000, 100), np.float32)  # 1.6 MB unpacked, 2 KB packed
    arrays = {"x_test": np.zeros((2, 100), np.float32), "y_test": np.zeros(2, np.int8)}
    np.savez_compressed(tmp_path / "big.npz", x_train=big, y_train=np.zeros(4_000), **arrays)
    assert (tmp_path / "big.npz").stat().st_size < 20_000
    err = refused(capsys, "train", tmp_path / "big.npz")
    assert (
        "unpacks to 1,632,802 bytes; denselab reads at most 1,048,576" in err
    )  # 4,000 x 100 x 4 + 4,000 x 8 + 2 x 100 x 4 + 2

    unpacked = []
    monkeypatch.setattr(files, "to_float32", lambda array, path: unpacked.append(1) or array)
    np.savez_compressed(tmp_path / "three.npz", x_train=big[:900], y_train=np.zeros(3), **arrays)
    err = refused(capsys, "train", tmp_path / "three.npz")
    assert "x and y have different numbers of samples (x_train: 900, y_train: 3)" in err
    assert not unpacked


def test_nan_weights_are_refused_by_every_command(tmp_path, capsys):
    from denselab.backend import keras as _keras

    keras = _keras()
    model = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    model.save(tmp_path / "nan.keras")
    for command in ("predict", "explain", "evaluate", "plot"):
        err = refused(capsys, command, tmp_path / "nan.keras", "--data", "mnist-5k")
        assert "NaN or infinite" in err


def test_a_model_declared_on_784_numbers_takes_the_28x28_images(tmp_path, cli):
    """Keras 2's Dense(input_dim=784) models: the images go in as their 784 pixels."""
    from denselab.backend import keras as _keras
    from denselab.data import load_dataset

    keras = _keras()
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, "softmax")])
    model.save(tmp_path / "flat.keras")
    data = load_dataset("mnist-5k")
    expected = model.predict(data.x_test.reshape(len(data.x_test), 784), verbose=0)
    scores = cli("evaluate", tmp_path / "flat.keras", "--data", "mnist-5k", "--json")
    assert scores["accuracy"] == pytest.approx(np.mean(expected.argmax(1) == data.y_test))
    cli("plot", tmp_path / "flat.keras", "--data", "mnist-5k", "--out", tmp_path / "pictures")


def test_a_deploy_folder_whose_run_was_retrained_is_a_failed_check(lesson_run, tmp_path, capsys):
    from denselab.backend import keras as _keras

    run = tmp_path / "run"
    shutil.copytree(lesson_run.path, run)
    assert main(["deploy", str(run), "--out", str(tmp_path / "fw"), "--target", "none"]) == 0
    keras = _keras()  # the run folder's model replaced by one of another input size
    keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")]).save(
        run / "model.keras"
    )
    err = refused(capsys, "verify", tmp_path / "fw", status=1)
    assert "changed since deploy" in err


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(data_file=5), "'data_file' = 5, not a name or path"),
        (lambda r: r.update(dataset=[1]), "'dataset' = [1], not a name or path"),
        (lambda r: r.update(model=None), "names no model"),
    ],
    ids=["data_file", "dataset", "model"],
)
def test_a_hand_edited_report_is_one_line(lesson_run, tmp_path_factory, capsys, edit, message):
    folder = tmp_path_factory.mktemp("edited") / "fw"
    assert main(["deploy", str(lesson_run.path), "--out", str(folder), "--target", "none"]) == 0
    report = json.loads((folder / "report.json").read_text())
    edit(report)
    (folder / "report.json").write_text(json.dumps(report))
    assert message in refused(capsys, "explore", folder, "--out", folder / "page.html")


# --- a second review ---------------------------------------------------------------------------


def test_explore_never_writes_its_page_over_a_run_file(run_copy, capsys, cli):
    before = (run_copy / "run.json").read_bytes()
    err = refused(capsys, "explore", run_copy, "--out", run_copy / "run.json")
    assert "run.json exists and denselab did not write it" in err
    assert (run_copy / "run.json").read_bytes() == before
    cli("explore", run_copy, "--out", run_copy / "page.html")
    cli("explore", run_copy, "--out", run_copy / "page.html")  # a page replaces a page


def test_an_output_link_that_loops_is_refused(run_copy, tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert "is a loop of symbolic links" in refused(
        capsys, "explore", run_copy, "--out", tmp_path / "a"
    )
    assert (tmp_path / "a").is_symlink()


def test_an_npy_of_bytes_is_shown_not_a_traceback(lesson_run, tmp_path, cli):
    np.save(tmp_path / "bytes.npy", np.full((28, 28), 255, np.uint8))
    shown = cli("predict", lesson_run.path, "--input", tmp_path / "bytes.npy")
    assert "predicted class" in shown


def test_verify_with_another_dataset_is_bad_input_not_a_changed_model(lesson_run, tmp_path, capsys):
    assert (
        main(["deploy", str(lesson_run.path), "--out", str(tmp_path / "fw"), "--target", "none"])
        == 0
    )
    err = refused(capsys, "verify", tmp_path / "fw", "--data", "digits")
    assert "--data digits: dataset digits has inputs of shape (8, 8)" in err


def test_search_refuses_a_users_results_and_a_file_that_is_not_its_study(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "search.json").write_text('{"mine": 1}')
    args = ["search", "digits", "--target-accuracy", "0.5", "--trials", "1"]
    assert "search.json exists and denselab did not write it" in refused(
        capsys, *args, "--out", mine
    )
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "study.db").write_text("not a database")
    assert "is not a study database (SQLite)" in refused(capsys, *args, "--out", junk)
    assert sorted(p.name for p in mine.iterdir()) == ["search.json"]
    assert sorted(p.name for p in junk.iterdir()) == ["study.db"]


def test_tour_refuses_its_out_before_the_lessons(tmp_path, capsys):
    (tmp_path / "a-file").write_text("mine")
    capsys.readouterr()
    assert main(["tour", "--out", str(tmp_path / "a-file")]) == 2
    out, err = capsys.readouterr()
    assert "output folder" in err and "is a file" in err
    assert "my_layer" not in out  # lesson 1 never ran (it prints my_layer.get_weights())


def test_a_name_too_long_for_a_file_is_refused_before_any_work(lesson_run, tmp_path, capsys):
    err = refused(capsys, "deploy", lesson_run.path, "--out", tmp_path / "fw", "--name", "a" * 300)
    assert "the name is 300 characters; give at most 64" in err


def test_a_keras_backend_that_cannot_start_is_one_line(lesson_run):
    from conftest import run_denselab

    result = run_denselab("predict", str(lesson_run.path), env={"KERAS_BACKEND": "bogus"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "denselab predict: Keras cannot start with KERAS_BACKEND='bogus' (Unable to import "
        "backend : bogus); denselab runs on jax (its default) or tensorflow"
    ]


@pytest.mark.parametrize(
    "name, make",
    [
        (".run.partial", lambda p: (p.mkdir(), (p / "thesis.txt").write_text("mine"))),
        (".run.old", lambda p: (p.mkdir(), (p / "thesis.txt").write_text("mine"))),
        (".run.lock", lambda p: p.write_text("my notes")),
    ],
    ids=["partial", "old", "lock"],
)
def test_what_sits_beside_an_output_folder_under_its_names_is_not_deleted(
    tmp_path, capsys, name, make
):
    """denselab builds a folder as .NAME.partial, may retire the old one as .NAME.old, and
    locks .NAME.lock; entries of those names that it did not make are refused, not removed."""
    make(tmp_path / name)
    before = _digest(tmp_path)
    args = ("train", "digits", "--epochs", "1", "--out", tmp_path / "run", "--no-plots")
    assert "is in the way of" in refused(capsys, *args)
    assert _digest(tmp_path) == before
    assert not (tmp_path / "run").exists()


def test_what_a_killed_command_left_is_cleared(tmp_path, cli):
    """Control: a staging folder with denselab's mark, and a lock holding a process number,
    are a killed command's: the next command clears them and writes its folder."""
    staging = tmp_path / ".run.partial"
    staging.mkdir()
    (staging / ".denselab-staging").touch()
    (staging / "history.json").write_text("{}")
    (tmp_path / ".run.lock").write_text("12345")
    cli("train", "digits", "--epochs", "1", "--out", tmp_path / "run", "--no-plots")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert not (tmp_path / "run" / ".denselab-staging").exists()
