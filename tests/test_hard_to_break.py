"""Hard to break, round two (issue 13): hostile files, output folders, honest checks.

One test (or a few) per numbered item of the issue, each through the real command line
(``denselab.cli.main``) in-process, each asserting the exact message, and each checking that
nothing outside a successful command's own output changed: every folder involved is hashed
before and after (file bytes, links, devices; hidden files included). Every file is
generated here; nothing binary is checked in. The faults (kill -9, SIGTERM, a full disk)
are in ``test_fault_injection.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

# --- helpers shared with test_fault_injection.py --------------------------------------------


def tree(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` (hidden ones too, links not followed): a file's sha256, a
    link's target, or what kind of thing it is."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                what = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISDIR(mode):
                what = "folder"
            else:
                what = f"special:{stat.S_IFMT(mode)}"
            entries[path.relative_to(folder).as_posix()] = what
    return entries


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``denselab ARGS`` in this process: (exit status, standard output, standard error)."""
    from denselab.cli import main

    capsys.readouterr()
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(capsys, command: str, *args, status: int = 2) -> str:
    """Run a command that must fail with one line on standard error; return the message."""
    code, _, err = run_cli(capsys, command, *args)
    assert code == status, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("epochs ")]
    assert len(lines) == 1, err  # besides the progress bar of the epochs done before it
    prefix = f"denselab {command}: "
    assert lines[0].startswith(prefix), err
    return lines[0][len(prefix) :]


def write_csv(path: Path, n_rows: int = 60, n_classes: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["a,b,c,d,label"]
    for index in range(n_rows):
        features = ",".join(f"{v:.3f}" for v in rng.uniform(0, 1, 4))
        rows.append(f"{features},{index % n_classes}")
    path.write_text("\n".join(rows) + "\n")
    return path


def dense_model(path: Path, hidden: int = 5, names=("hidden", "output"), inputs=(4,)) -> Path:
    from denselab.backend import keras as _keras

    keras = _keras()
    layers = [keras.Input(inputs)]
    if len(inputs) > 1:
        layers.append(keras.layers.Flatten())
    layers += [
        keras.layers.Dense(hidden, activation="relu", name=names[0]),
        keras.layers.Dense(3, activation="softmax", name=names[1]),
    ]
    keras.Sequential(layers).save(path)
    return path


def build_world(folder: Path) -> Path:
    """data.csv, two small models, a run folder and a deploy folder, as denselab wrote them."""
    from denselab.cli import main

    write_csv(folder / "data.csv")
    dense_model(folder / "dense.keras")
    dense_model(folder / "other.keras", hidden=6)
    data = str(folder / "data.csv")
    assert main(["train", data, "--out", str(folder / "run"), "--epochs", "2", "--no-plots"]) == 0
    fw = str(folder / "fw")
    deploy = ["deploy", str(folder / "dense.keras"), "--data", data, "--target", "none"]
    assert main([*deploy, "--out", fw]) == 0
    return folder


def shared_world(tmp_path_factory) -> Path:
    """:func:`build_world` once per test session (both modules read it; none writes it)."""
    folder = tmp_path_factory.getbasetemp() / "hard-to-break-world"
    if not (folder / "built").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        build_world(folder)
        (folder / "built").write_text("")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return shared_world(tmp_path_factory)


@pytest.fixture(autouse=True)
def world_is_untouched(request):
    """Whatever a test does, the shared world folder is exactly as it was."""
    if "world" not in request.fixturenames:
        yield
        return
    folder = request.getfixturevalue("world")
    before = tree(folder)
    yield
    assert tree(folder) == before


def copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


# --- 1. --out never replaces a device, a pipe, a link's target of the wrong kind --------------


def test_1_out_never_replaces_a_special_file_and_follows_links_to_files(world, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "to-pipe").symlink_to(fifo)
    model = world / "dense.keras"
    before = tree(tmp_path)
    assert one_line(capsys, "explore", model, "--out", fifo) == (
        f"{fifo} is a named pipe, not a regular file; denselab never replaces one: "
        "choose another --out"
    )
    assert one_line(capsys, "explore", model, "--out", tmp_path / "to-pipe") == (
        f"{fifo} is a named pipe, not a regular file; denselab never replaces one: "
        "choose another --out"
    )
    data = world / "data.csv"
    assert one_line(capsys, "deploy", model, "--data", data, "--out", fifo) == (
        f"output folder {fifo} is a named pipe; choose another --out"
    )
    assert one_line(capsys, "train", data, "--out", fifo, "--epochs", "1") == (
        f"output folder {fifo} is a named pipe; choose another --out"
    )
    if os.geteuid() == 0:  # as root, a device node can be made: a copy of /dev/null
        device = tmp_path / "null"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        before = tree(tmp_path)
        assert one_line(capsys, "explore", model, "--out", device) == (
            f"{device} is a character device, not a regular file; denselab never replaces "
            "one: choose another --out"
        )
    assert tree(tmp_path) == before

    # A link to a regular file is followed: the page replaces the file, the link stays.
    page = tmp_path / "page.html"
    page.write_text("<title>denselab explorer: old</title>")
    (tmp_path / "link.html").symlink_to(page)
    status, _, err = run_cli(capsys, "explore", model, "--out", tmp_path / "link.html")
    assert status == 0, err
    assert (tmp_path / "link.html").is_symlink()
    assert page.read_text().startswith("<!doctype html>")


# --- 2. the size guard bounds every layer and the total, from the config ---------------------


def _edited_keras(source: Path, target: Path, edit) -> Path:
    """``source`` with its config.json passed through ``edit`` (the weights file kept)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copied:
        for name in original.namelist():
            data = original.read(name)
            if name == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            copied.writestr(name, data)
    return target


def _dense_config(template: dict, name: str, units: int) -> dict:
    layer = json.loads(json.dumps(template))
    layer["config"]["name"], layer["config"]["units"] = name, units
    layer.pop("build_config", None)
    return layer


@pytest.fixture
def no_keras_loading(monkeypatch):
    """Keras's loader must never be reached by a refused file."""
    from denselab.backend import keras as _keras

    def never(*args, **kwargs):
        raise AssertionError("Keras was asked to build a model the size guard refuses")

    monkeypatch.setattr(_keras().saving, "load_model", never)


def test_2_a_dense_fed_by_a_dense_is_bounded_before_keras_builds_it(
    world, tmp_path, capsys, no_keras_loading
):
    def two_wide_layers(config):  # Input(4) -> Dense(50,000) -> Dense(50,000): 2.5e9 weights
        layers = config["config"]["layers"]
        dense = next(layer for layer in layers if layer["class_name"] == "Dense")
        layers[1:] = [
            _dense_config(dense, "wide_1", 50_000),
            _dense_config(dense, "wide_2", 50_000),
        ]
        return config

    path = _edited_keras(world / "dense.keras", tmp_path / "wide.keras", two_wide_layers)
    assert path.stat().st_size < 20_000  # a small file that would cost gigabytes
    before = tree(tmp_path)
    assert one_line(capsys, "inspect", path) == (
        f"{path} describes layer 'wide_1' with up to 2,500,050,000 weights (inputs of up to "
        "50,000 numbers into layers of 50,000 neurons; denselab handles at most 67,108,864 "
        "weights per layer)"
    )

    def many_layers(config):  # each layer under the per-layer bound, all of them far over
        layers = config["config"]["layers"]
        dense = next(layer for layer in layers if layer["class_name"] == "Dense")
        layers[1:] = [_dense_config(dense, f"d{i}", 8000) for i in range(3)]
        return config

    path = _edited_keras(world / "dense.keras", tmp_path / "deep.keras", many_layers)
    before = tree(tmp_path)
    assert one_line(capsys, "inspect", path) == (
        f"{path} describes up to 192,024,000 weights in all; denselab handles at most 134,217,728"
    )
    assert tree(tmp_path) == before


# --- 3. a zip bomb in model.weights.h5 is refused from the zip's own directory ----------------


def test_3_a_zip_bomb_is_refused_before_anything_is_unpacked(world, tmp_path, capsys, monkeypatch):
    import subprocess as child_processes

    bomb = tmp_path / "bomb.keras"
    # 64 MB of zeros packed into about 64 kB: a small bomb, refused by its ratio
    with zipfile.ZipFile(world / "dense.keras") as source:
        parts = {name: source.read(name) for name in source.namelist()}
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            if name != "model.weights.h5":
                target.writestr(name, data)
        with target.open("model.weights.h5", "w", force_zip64=True) as member:
            zeros = bytes(1 << 20)
            for _ in range(64):
                member.write(zeros)
    info = zipfile.ZipFile(bomb).getinfo("model.weights.h5")
    ratio = info.file_size / info.compress_size

    def no_child(*args, **kwargs):
        raise AssertionError("the HDF5 probe was started on a zip bomb")

    monkeypatch.setattr(child_processes, "Popen", no_child)
    before = tree(tmp_path)
    assert one_line(capsys, "inspect", bomb) == (
        f"cannot read model {bomb}: its model.weights.h5 is packed {ratio:,.0f} to 1 "
        f"({info.compress_size:,} bytes unpacking to {info.file_size:,}); a zip bomb, not a model"
    )
    assert tree(tmp_path) == before


# --- 4. names from files reach the terminal and the pictures as plain text --------------------

EVIL = "evil\x1b]0;owned\x07[@click=foo(]$\\evilcmd$"


def test_4_escapes_and_markup_in_names_print_as_plain_text(tmp_path, capsys):
    model = dense_model(tmp_path / "evil.keras", names=(EVIL, "out"), inputs=(2, 2))
    images = np.random.default_rng(0).uniform(0, 1, (12, 2, 2)).astype(np.float32)
    labels = np.arange(12) % 3
    data = tmp_path / "images.npz"
    np.savez(data, x_train=images, y_train=labels, x_test=images[:6], y_test=labels[:6])
    before = tree(tmp_path)

    status, out, err = run_cli(capsys, "inspect", model)
    assert status == 0, err
    assert "\x1b" not in out and "\x07" not in out
    squeezed = re.sub(r"[\s│]", "", out)  # the table folds a long name over lines
    assert "evil\\x1b]0;owned\\x07[@click=foo(]$\\evilcmd$" in squeezed  # shown, escaped
    status, out, err = run_cli(capsys, "explain", model, "--data", data, "--index", "0")
    assert status == 0, err
    assert "\x1b" not in out and "evil\\x1b]0;owned\\x07[@click=foo(]" in out

    # in a picture, `$\evilcmd$` is drawn as it is, not parsed as mathtext
    pictures = tmp_path / "pictures"
    status, _, err = run_cli(capsys, "plot", model, "--data", data, "--out", pictures)
    assert status == 0, err
    assert sorted(p.name for p in pictures.iterdir()) == [
        "confusion.png",
        "misclassified.png",
        "predict.png",
        "weights.png",
    ]
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("pictures")} == before

    # and in a one-line error, a header cell from a CSV cannot retitle the terminal
    table = tmp_path / "evil.csv"
    table.write_text("\x1b]0;owned\x07,b\n1,0\n2,1\n3,0\n")
    message = one_line(capsys, "train", table, "--target", "nope")
    assert message == f"{table} has no column 'nope'; columns: \\x1b]0;owned\\x07, b"


# --- 5. only PNG and JPEG are opened as pictures ------------------------------------------


@pytest.mark.parametrize("kind", ["EPS", "GIF", "BMP", "TIFF"])
def test_5_a_picture_in_another_format_is_never_decoded(world, tmp_path, capsys, kind):
    from PIL import Image

    picture = tmp_path / "digit.png"  # named .png, whatever it holds
    if kind == "EPS":
        picture.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    else:
        digit = np.zeros((28, 28), np.uint8)
        digit[6:22, 12:16] = 255
        Image.fromarray(digit).save(picture, format=kind)
    model = dense_model(tmp_path / "digits.keras", inputs=(28, 28))
    before = tree(tmp_path)
    assert one_line(capsys, "predict", model, "--input", picture) == (
        f"cannot read image {picture}: not a PNG or JPEG picture"
    )
    assert tree(tmp_path) == before


# --- 6. an output folder is one transaction -------------------------------------------------


def test_6_a_deploy_that_fails_late_leaves_the_old_folder_whole(
    world, tmp_path, capsys, monkeypatch
):
    import importlib

    from denselab.errors import DenselabError

    deploy_module = importlib.import_module("denselab.deploy")

    fw = copy(world / "fw", tmp_path / "fw")
    before = tree(tmp_path)

    def fails(*args, **kwargs):  # after every C file is written, before report.json
        raise DenselabError("the C engine could not be measured")

    monkeypatch.setattr(deploy_module, "measure", fails)
    other = world / "other.keras"
    message = one_line(
        capsys, "deploy", other, "--data", world / "data.csv", "--out", fw, "--target", "none"
    )
    assert message == "the C engine could not be measured"
    assert tree(tmp_path) == before  # not one file of the new model, no staging, no lock


def test_6_a_training_that_fails_while_saving_leaves_the_old_run_whole(
    world, tmp_path, capsys, monkeypatch
):
    import errno

    from denselab import fileio

    run = copy(world / "run", tmp_path / "run")
    before = tree(tmp_path)
    real_write_json = fileio.write_json

    def full_at_metrics(target, obj):
        if Path(target).name == "metrics.json":
            raise fileio.DenselabError(
                fileio.cannot_write(Path(target), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            )
        return real_write_json(target, obj)

    monkeypatch.setattr(fileio, "write_json", full_at_metrics)
    message = one_line(
        capsys, "train", world / "data.csv", "--out", run, "--epochs", "2", "--seed", "5"
    )
    assert message == (
        f"cannot write {run}/metrics.json: No space left on device; nothing was changed there, "
        "free some space and run it again"
    )
    assert tree(tmp_path) == before


# --- 7. never delete or overwrite what denselab did not write ----------------------------------


def test_7_deploy_refuses_a_folder_holding_the_users_own_files(world, tmp_path, capsys):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "model.c").write_text("/* my own model.c */\n")
    (fw / "main.c").write_text("int main(void) { return 0; }\n")
    before = tree(tmp_path)
    args = ["--data", world / "data.csv", "--out", fw, "--target", "none"]
    assert one_line(capsys, "deploy", world / "dense.keras", *args) == (
        f"output folder {fw} holds files denselab did not write (main.c, model.c); move them "
        "away, choose another --out, or add --force to write there and keep them"
    )
    assert tree(tmp_path) == before

    # a file denselab wrote and someone changed since is not denselab's any more
    mine = copy(world / "fw", tmp_path / "mine")
    (mine / "model_tflite.c").write_text("/* edited by hand */\n")
    before = tree(tmp_path)
    args = ["--data", world / "data.csv", "--out", mine, "--target", "none"]
    assert one_line(capsys, "deploy", world / "dense.keras", *args) == (
        f"output folder {mine} holds files changed since denselab wrote them (model_tflite.c); "
        "move them away, choose another --out, or add --force to write there and keep them"
    )
    # a run folder is not a deploy folder, and deploy never writes into its own input
    run = copy(world / "run", tmp_path / "run")
    before = tree(tmp_path)
    assert one_line(capsys, "deploy", run, "--data", world / "data.csv", "--out", run) == (
        f"output folder {run} holds model.keras, which this command reads; choose another --out"
    )
    args = ["--data", world / "data.csv", "--out", run]
    assert one_line(capsys, "deploy", world / "dense.keras", *args) == (
        f"{run} is a run folder (written by `denselab train`), not a deploy folder; choose "
        "another --out"
    )
    assert tree(tmp_path) == before


def test_7_with_force_the_users_files_are_kept(world, tmp_path, capsys):
    fw = copy(world / "fw", tmp_path / "fw")
    (fw / "main.c").write_text("int main(void) { return 0; }\n")
    args = ["--data", world / "data.csv", "--out", fw, "--target", "none", "--force"]
    status, _, err = run_cli(capsys, "deploy", world / "other.keras", *args)
    assert status == 0, err
    assert (fw / "main.c").read_text() == "int main(void) { return 0; }\n"
    manifest = json.loads((fw / ".denselab-manifest.json").read_text())
    assert "main.c" not in manifest["files"] and "model.c" in manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]  # no staging, no lock left


def test_7_explore_never_replaces_its_input_or_a_page_it_did_not_write(world, tmp_path, capsys):
    model = copy(world / "run", tmp_path / "run") / "model.keras"
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    before = tree(tmp_path)
    assert one_line(capsys, "explore", model, "--out", model) == (
        f"--out {model} is this command's input; choose another --out"
    )
    assert one_line(capsys, "explore", model, "--out", mine) == (
        f"{mine} exists and denselab did not write it; choose another --out, or add --force "
        "to replace it"
    )
    assert tree(tmp_path) == before
    status, _, err = run_cli(capsys, "explore", model, "--out", mine, "--force")
    assert status == 0, err
    assert mine.read_text().startswith("<!doctype html>")


def test_7_search_refuses_a_users_chosen_folder_before_any_trial(world, tmp_path, capsys):
    out = tmp_path / "search"
    (out / "chosen").mkdir(parents=True)
    (out / "chosen" / "model.keras").write_text("my own model")
    before = tree(tmp_path)
    args = ["--target-accuracy", "0.5", "--trials", "1", "--out", out]
    assert one_line(capsys, "search", world / "data.csv", *args) == (
        f"output folder {out}/chosen holds files denselab did not write (model.keras); move "
        "them away, choose another --out, or add --force to write there and keep them"
    )
    assert tree(tmp_path) == before


def test_7_a_diverging_training_over_a_run_keeps_its_history(world, tmp_path, capsys):
    run = copy(world / "run", tmp_path / "run")
    before = tree(tmp_path)
    args = ["--out", run, "--optimizer", "sgd", "--learning-rate", "1e30", "--epochs", "3"]
    message = one_line(capsys, "train", world / "data.csv", *args, "--no-plots")
    assert message.startswith("training diverged at epoch ")
    assert message.endswith("(loss is NaN); nothing was saved. Try a lower --learning-rate")
    assert tree(tmp_path) == before  # history.json too: the run can still be resumed


# --- 8. one command at a time on a run folder -------------------------------------------------

_HOLD_LOCK = """
import sys, time
from pathlib import Path
from denselab import fileio, folders
with folders.folder_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_8_a_second_train_on_the_same_out_is_refused_in_one_line(world, tmp_path, capsys):
    run = copy(world / "run", tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = tree(tmp_path)
        args = ["--out", run, "--epochs", "1", "--no-plots"]
        assert one_line(capsys, "train", world / "data.csv", *args) == (
            f"{run} is being written by another denselab command (process {holder.pid}); wait "
            "for it to finish, or choose another --out"
        )
        assert tree(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()


# --- 9. refused before anything is written ------------------------------------------------------


@pytest.mark.parametrize(
    "name, message",
    [
        ("modèle", "'modèle' is not a C identifier; use letters, digits and _"),
        ("test_samples", "'test_samples' is taken by a file the engine needs; choose another name"),
        ("stdint", "'stdint' is taken by a file the engine needs; choose another name"),
    ],
)
def test_9_a_bad_name_is_refused_before_any_work(world, tmp_path, capsys, name, message):
    before = tree(tmp_path)
    args = ["--data", world / "data.csv", "--out", tmp_path / "fw", "--name", name]
    assert one_line(capsys, "deploy", world / "dense.keras", *args) == message
    assert tree(tmp_path) == before


def test_9_a_model_too_wide_for_the_engine_is_refused_before_conversion(
    tmp_path, capsys, monkeypatch
):
    from denselab.int8 import convert

    def never(*args, **kwargs):
        raise AssertionError("the converter ran on a model the engine cannot hold")

    monkeypatch.setattr(convert, "to_tflite", never)
    model = dense_model(tmp_path / "wide.keras", inputs=(70_000,), names=("first", "out"))
    x = np.zeros((3, 70_000), np.float32)
    data = tmp_path / "wide.npz"
    np.savez(data, x_train=x, y_train=np.arange(3), x_test=x, y_test=np.arange(3))
    before = tree(tmp_path)
    args = ["--data", data, "--out", tmp_path / "fw"]
    assert one_line(capsys, "deploy", model, *args) == (
        "layer 'first' has 70,000 inputs; the C engine takes at most 65,535 per layer"
    )
    assert tree(tmp_path) == before


# --- 10. verify checks every file deploy wrote -------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["model_tflite.c", "test_samples.h", "model_float.tflite", "report.json", "model_int8.tflite"],
)
def test_10_verify_names_the_file_that_differs(world, tmp_path, capsys, name):
    fw = copy(world / "fw", tmp_path / "fw")
    path = fw / name
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(blob))
    before = tree(tmp_path)
    assert one_line(capsys, "verify", fw, status=1) == (
        f"{path} is not what deploy generates: its sha256 differs from the one deploy recorded "
        "in .denselab-manifest.json; run `denselab deploy` again"
    )
    assert tree(tmp_path) == before


def test_10_a_tampered_tflite_with_its_c_regenerated_is_caught(world, tmp_path, capsys):
    from denselab.engine import generate_c, tflite_c_array
    from denselab.int8.tflite import read_int8_tflite

    fw = copy(world / "fw", tmp_path / "fw")
    tflite = (fw / "model_int8.tflite").read_bytes()
    weights = read_int8_tflite(tflite).layers[0].weights
    where = tflite.index(weights.tobytes())
    changed = bytearray(tflite)
    changed[where] = (changed[where] + 1) % 256  # one weight, one step
    forged = bytes(changed)
    (fw / "model_int8.tflite").write_bytes(forged)
    for filename, text in {**generate_c(forged), **tflite_c_array(forged, "model")}.items():
        (fw / filename).write_text(text)  # the C regenerated to match: the old check passes
    differing = sorted(
        n
        for n in ("model.c", "model_int8.tflite", "model_tflite.c")
        if tree(fw)[n] != tree(world / "fw")[n]
    )
    assert "model_int8.tflite" in differing
    before = tree(tmp_path)
    assert (
        one_line(capsys, "verify", fw, status=1)
        == "; ".join(
            f"{fw / n} is not what deploy generates: its sha256 differs from the one deploy "
            "recorded in .denselab-manifest.json"
            for n in differing
        )
        + "; run `denselab deploy` again"
    )
    assert tree(tmp_path) == before


def test_10_a_folder_without_its_manifest_is_not_trusted(world, tmp_path, capsys):
    fw = copy(world / "fw", tmp_path / "fw")
    (fw / ".denselab-manifest.json").unlink()
    before = tree(tmp_path)
    assert one_line(capsys, "verify", fw, status=1) == (
        f"{fw} has no .denselab-manifest.json, so its files cannot be checked against what "
        "deploy wrote; run `denselab deploy` again"
    )
    assert tree(tmp_path) == before


def test_10_an_untouched_folder_verifies(world, capsys):
    status, out, err = run_cli(
        capsys, "verify", world / "fw", "--data", world / "data.csv", "--json"
    )
    assert status == 0, err
    assert json.loads(out)["c_vs_tflm_differing_samples"] == 0


# --- 11. exit statuses (SIGTERM and kill -9 run as real processes: test_fault_injection) -------


def test_11_sigterm_is_an_interrupt_in_every_command(world, tmp_path, capsys, monkeypatch):
    from denselab import explore

    def killed(*args, **kwargs):  # SIGTERM arrives while the page is being built
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(explore, "render_page", killed)
    before, handler = tree(tmp_path), signal.getsignal(signal.SIGTERM)  # Ray may have set one
    args = ["--out", tmp_path / "page.html"]
    assert one_line(capsys, "explore", world / "dense.keras", *args, status=130) == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is handler  # restored after the command
    assert tree(tmp_path) == before


# --- 12. flags that conflict, run.json edited by hand ------------------------------------------


def test_12_resume_refuses_settings_it_would_ignore(world, tmp_path, capsys):
    run = copy(world / "run", tmp_path / "run")
    before = tree(tmp_path)
    assert one_line(capsys, "train", "--resume", run, "--epochs", "2", "--layers", "99,3") == (
        f"--resume continues {run} with the settings in its run.json; drop --layers, --epochs "
        "(or train a new run without --resume)"
    )
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", "5", "'epochs' has the wrong type"),
        ("epochs", 0, "'epochs' is 0; it must be from 1 to 1,000,000 (fix it or train a new run)"),
        ("learning_rate", -1.0, "'learning_rate' is -1.0; it must be a positive number"),
        ("optimizer", "rmsprop", "'optimizer' is 'rmsprop'; it must be adam or sgd"),
        ("activations", ["relu"], "'activations' is ['relu']; it must be one of linear, relu"),
        ("surprise", 1, "unknown setting 'surprise'; fix it or train a new run"),
    ],
)
def test_12_a_hand_edited_run_json_is_one_clear_error(world, tmp_path, capsys, key, value, message):
    run = copy(world / "run", tmp_path / "run")
    saved = json.loads((run / "run.json").read_text())
    saved["config"][key] = value
    (run / "run.json").write_text(json.dumps(saved))
    before = tree(tmp_path)
    for command in (["train", "--resume", run], ["evaluate", run], ["explore", run]):
        line = one_line(capsys, *command)
        assert line.startswith(f"{run}/run.json: {message}"), line
    assert tree(tmp_path) == before


# --- 13. inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_13_a_csv_with_a_byte_order_mark_reads_as_without(tmp_path, header):
    from denselab.data import load_dataset

    rows = ["a,b,label"] if header else []
    rows += [f"{i},{i * 2},{i % 2}" for i in range(10)]
    text = "\n".join(rows) + "\n"
    (tmp_path / "plain.csv").write_text(text)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    plain = load_dataset(str(tmp_path / "plain.csv"))
    bom = load_dataset(str(tmp_path / "bom.csv"))
    assert len(bom.x_train) + len(bom.x_test) == 10  # no row dropped as a "header"
    np.testing.assert_array_equal(bom.x_train, plain.x_train)
    np.testing.assert_array_equal(bom.y_test, plain.y_test)


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_13_transparent_and_16_bit_digits_read_as_the_plain_one(tmp_path):
    from denselab.data import load_image

    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    (tmp_path / "plain.png").write_bytes(_png(digit))
    dark_ink = np.zeros((28, 28, 4), np.uint8)
    dark_ink[..., 3] = digit  # black strokes on a transparent background
    (tmp_path / "transparent.png").write_bytes(_png(dark_ink))
    (tmp_path / "16-bit.png").write_bytes(_png(digit.astype(np.uint16) * 257))
    plain = load_image(tmp_path / "plain.png")
    for name in ("transparent.png", "16-bit.png"):
        np.testing.assert_allclose(load_image(tmp_path / name), plain, atol=1e-6)


def test_13_a_huge_picture_is_one_line_and_no_warning(world, tmp_path, capsys):
    from PIL import Image

    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)
    model = dense_model(tmp_path / "digits.keras", inputs=(28, 28))
    before = tree(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert one_line(capsys, "predict", model, "--input", huge) == (
            f"{huge} is 10000x10000 pixels; give a picture of one digit, at most 4096x4096"
        )
    assert tree(tmp_path) == before


def test_13_one_class_is_not_a_classification(tmp_path, capsys):
    table = tmp_path / "one-class.csv"
    table.write_text("a,label\n" + "".join(f"{i},1\n" for i in range(10)))
    before = tree(tmp_path)
    assert one_line(capsys, "train", table, "--task", "classification") == (
        f"{table}: every training label is 1; a classifier needs examples of at least 2 "
        "classes (for numbers to predict, use --task regression)"
    )
    assert tree(tmp_path) == before


def test_13_json_output_is_json_even_with_nan_weights(tmp_path, capsys):
    from denselab.backend import keras as _keras

    keras = _keras()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")])
    kernel, bias = model.layers[0].get_weights()
    kernel[0, 0] = np.nan
    model.layers[0].set_weights([kernel, bias])
    model.save(tmp_path / "nan.keras")
    status, out, err = run_cli(capsys, "inspect", tmp_path / "nan.keras", "--layer", "1", "--json")
    assert status == 0, err

    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    result = json.loads(out, parse_constant=refuse)
    assert result["neuron"]["weights"][0] is None


def test_13_a_run_folder_named_like_a_placeholder_cannot_fill_the_page(world, tmp_path, capsys):
    run = copy(world / "run", tmp_path / "run-{{js}}-{{data}}")
    status, _, err = run_cli(capsys, "explore", run)
    assert status == 0, err
    page = (run / "explorer.html").read_text()
    assert "<title>denselab explorer: run-{{js}}-{{data}}</title>" in page
    assert page.count("{{js}}") == page.count("{{data}}") == 2  # the title, and in the data
