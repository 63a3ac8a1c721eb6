"""A corpus of bad inputs: each gives one line naming the problem, exit status 2, no traceback.

Every case runs the real command line (``denselab.cli.main``) in-process; a sample of them
also runs as a real subprocess. After each case, no temporary or half-written file is left
anywhere in the corpus folder, and an output folder that could not be used was not created.
A model with a ``Lambda`` layer is refused before Keras reads it, and its code never runs.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import run_denselab

# --- the corpus, written once per test session ---------------------------------------------


def _lambda_code(marker: Path) -> str:
    """A lambda that would leave ``marker`` behind (and print) if anything ever ran it."""
    return f"lambda x: (open({str(marker)!r}, 'w').write('ran'), print('LAMBDA RAN'), x)[2]"


def _keras_models(folder: Path, marker: Path) -> None:
    from denselab.backend import keras as _keras

    keras = _keras()
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    dense.save(folder / "dense.keras")
    dense.save(folder / "dense.h5")
    dense.save_weights(folder / "dense.weights.h5")
    image = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    image.save(folder / "digits.keras")
    conv = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    conv.save(folder / "conv.keras")
    lstm = keras.Sequential(
        [keras.Input((2, 2)), keras.layers.LSTM(3, name="lstm"), keras.layers.Dense(3)]
    )
    lstm.save(folder / "lstm.keras")
    trap = keras.layers.Lambda(eval(_lambda_code(marker)), name="trap")
    with_lambda = keras.Sequential([keras.Input((4,)), trap, keras.layers.Dense(3)])
    with_lambda.save(folder / "lambda.keras")
    with_lambda.save(folder / "lambda.h5")
    marker.unlink()  # building the model ran the lambda once, here, on purpose


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


def _npz(path: Path, **arrays) -> None:
    good = {
        "x_train": np.zeros((4, 2), np.float32),
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((2, 2), np.float32),
        "y_test": np.array([0, 1]),
    }
    np.savez(path, **{**good, **arrays})


def _csv(rows: list[list]) -> str:
    return "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-inputs")
    marker = folder / "LAMBDA_RAN"
    _keras_models(folder, marker)
    rng = np.random.default_rng(0)
    garbage = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()

    def write(name: str, data: bytes | str) -> None:
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    for good in ("dense.keras", "dense.h5"):
        suffix = Path(good).suffix
        blob = (folder / good).read_bytes()
        write(f"empty{suffix}", b"")
        write(f"truncated{suffix}", blob[: len(blob) // 2])
        write(f"random{suffix}", garbage)
    with zipfile.ZipFile(folder / "no-config.keras", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    with (
        zipfile.ZipFile(folder / "dense.keras") as source,
        zipfile.ZipFile(folder / "huge.keras", "w") as target,
    ):
        for name in source.namelist():
            data = source.read(name)
            if name == "config.json":
                data = data.replace(b'"units": 3', b'"units": 1000000000')
            target.writestr(name, data)
    h5 = (folder / "dense.h5").read_bytes()
    cut = h5.index(b'"class_name"')  # one byte more inside model_config: HDF5 loops forever
    write("hangs-hdf5.h5", h5[:cut] + b"\xdb" + h5[cut:])
    write("model.txt", "a model, honestly")
    (folder / "empty-run").mkdir()

    features = rng.uniform(0, 1, (20, 4)).round(3)
    labels = np.arange(20) % 3
    table = np.column_stack([features, labels]).tolist()
    write("good.csv", _csv([["a", "b", "c", "d", "label"], *table]))
    write("four-classes.csv", _csv([*table[:-1], [*table[-1][:4], 3]]))
    write("negative.csv", _csv([*table[:-1], [*table[-1][:4], -1]]))
    write("fractional.csv", _csv([*table[:-1], [*table[-1][:4], 0.5]]))
    write("huge-label.csv", _csv([*table[:-1], [*table[-1][:4], 5000]]))
    write("empty.csv", "")
    write("header-only.csv", "a,b,c\n")
    write("ragged.csv", "a,b,c\n1,2,3\n4,5\n")
    write("words.csv", "1,2,3\n4,5,6\n7,eight,9\n")
    write("nan.csv", "a,b\n1,0\n2,1\nnan,0\n4,1\n")
    write("inf.csv", "a,b\n1,0\n2,1\n3,0\n4,inf\n")
    write("binary.csv", garbage)
    write("too-big.csv", "a,b\n1,0\n2,1\n1e40,0\n")

    blob = (folder / "dense.keras").read_bytes()  # any zip will do for a truncated NPZ
    write("empty.npz", b"")
    write("random.npz", garbage)
    _npz(folder / "good.npz")
    write("truncated.npz", (folder / "good.npz").read_bytes()[:300])
    np.savez(folder / "missing-keys.npz", x_train=np.zeros((2, 2)), y_train=np.zeros(2))
    _npz(folder / "pickled.npz", x_train=np.array([{"a": 1}] * 4, dtype=object))
    _npz(folder / "strings.npz", x_train=np.array([["a", "b"]] * 4))
    _npz(folder / "nan.npz", x_test=np.array([[0, np.nan], [0, 0]], np.float32))
    _npz(folder / "lengths.npz", y_train=np.array([0, 1, 0]))
    _npz(folder / "scalar.npz", x_train=np.float32(1.0))
    _npz(folder / "complex.npz", x_train=np.zeros((4, 2), np.complex64))
    _npz(folder / "labels-3d.npz", y_train=np.zeros((4, 3, 2)))
    _npz(folder / "targets-mismatch.npz", y_train=np.zeros((4, 3)))  # y_test has one target

    np.save(folder / "five.npy", np.zeros(5, np.float32))
    np.save(folder / "strings.npy", np.array(["1", "2", "3", "4"]))
    np.save(folder / "objects.npy", np.array([1, "two", None, 4.0], dtype=object))
    np.save(folder / "nan.npy", np.array([0, np.nan, 0, 0], np.float32))
    np.save(folder / "inf.npy", np.array([0, np.inf, 0, 0], np.float32))
    np.save(folder / "too-big.npy", np.array([0, 1e300, 0, 0]))
    write("empty.npy", b"")
    write("random.npy", garbage)
    write("input.csv", "1,2,3,4\n")

    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    png, jpeg = _png(digit), _jpeg(digit)
    write("empty.png", b"")
    write("truncated.png", png[: len(png) // 2])
    write("random.png", garbage)
    write("truncated.jpg", jpeg[: len(jpeg) // 3])
    write("random.jpg", garbage)
    write("blank.png", _png(np.full((28, 28), 255, np.uint8)))
    from PIL import Image

    Image.new("1", (5000, 5000)).save(folder / "huge.png")

    deploy = folder / "deploy-garbage"
    deploy.mkdir()
    report = {"name": "model", "dataset": str(folder / "good.csv"), "model": "gone.keras"}
    (deploy / "report.json").write_text(json.dumps(report))
    (deploy / "model_int8.tflite").write_bytes(garbage)
    (deploy / "model.h").write_text("/* engine */\n")
    (deploy / "model.c").write_text("/* engine */\n")
    damaged = folder / "deploy-damaged"
    damaged.mkdir()
    for name in ("report.json", "model.h", "model.c"):
        (damaged / name).write_bytes((deploy / name).read_bytes())
    (damaged / "model_int8.tflite").write_bytes(b"\x1c\0\0\0TFL3" + b"\xff" * 64)
    (folder / "no-deploy").mkdir()
    write("a-file", "I am a file, not a folder")
    (folder / "a-folder").mkdir()
    return folder


# (args, expected substring of the single stderr line); {f} is the corpus folder.
CASES = [
    # models: empty, truncated, random bytes, not models at all, unsafe, not dense
    (["inspect", "{f}/empty.keras"], "{f}/empty.keras is not a valid .keras file (not a zip"),
    (["inspect", "{f}/truncated.keras"], "{f}/truncated.keras is not a valid .keras file"),
    (["inspect", "{f}/random.keras"], "{f}/random.keras is not a valid .keras file"),
    (["inspect", "{f}/no-config.keras"], "{f}/no-config.keras has no config.json"),
    (["inspect", "{f}/empty.h5"], "cannot read model {f}/empty.h5: not an HDF5 model"),
    (["inspect", "{f}/truncated.h5"], "cannot read model {f}/truncated.h5: not an HDF5 model"),
    (["inspect", "{f}/random.h5"], "cannot read model {f}/random.h5: not an HDF5 model"),
    (["inspect", "{f}/dense.weights.h5"], "{f}/dense.weights.h5 holds weights only, no model"),
    (["inspect", "{f}/lambda.keras"], "{f}/lambda.keras contains a Lambda layer (arbitrary"),
    (["inspect", "{f}/lambda.h5"], "{f}/lambda.h5 contains a Lambda layer (arbitrary"),
    (["predict", "{f}/lambda.h5", "--input", "{f}/five.npy"], "contains a Lambda layer"),
    (["inspect", "{f}/huge.keras"], "layers of 1,000,000,000 neurons; denselab handles at most"),
    (["inspect", "{f}/model.txt"], "{f}/model.txt is not a Keras model; expected a .keras"),
    (["inspect", "{f}/empty-run"], "{f}/empty-run is a folder without model.keras"),
    (["inspect", "{f}/missing.keras"], "no model at {f}/missing.keras"),
    (
        ["deploy", "{f}/conv.keras", "--data", "{f}/good.csv", "--out", "{f}/fw"],
        "layer 'conv' is a Conv2D; denselab handles dense networks only",
    ),
    (
        ["deploy", "{f}/lstm.keras", "--data", "{f}/good.csv", "--out", "{f}/fw"],
        "layer 'lstm' is a LSTM; denselab handles dense networks only",
    ),
    # datasets: names, CSV, NPZ
    (["train", "no-such-data"], "unknown dataset 'no-such-data'; use one of line, mnist"),
    (["train", "{f}/missing.csv"], "no such file: {f}/missing.csv"),
    (["train", "{f}/empty.csv"], "{f}/empty.csv is empty"),
    (["train", "{f}/header-only.csv"], "need at least 2 rows and 2 columns of numbers"),
    (["train", "{f}/ragged.csv"], "{f}/ragged.csv line 3: 2 columns, but the first line has 3"),
    (["train", "{f}/words.csv"], "{f}/words.csv line 3: not all numbers"),
    (["train", "{f}/nan.csv"], "{f}/nan.csv line 4: NaN or infinity; clean the data first"),
    (["train", "{f}/inf.csv"], "{f}/inf.csv line 5: NaN or infinity; clean the data first"),
    (["train", "{f}/binary.csv"], "{f}/binary.csv is not a text file"),
    (["train", "{f}/too-big.csv"], "{f}/too-big.csv has numbers beyond float32's range"),
    (
        ["train", "{f}/negative.csv", "--task", "classification"],
        "classification labels must be whole numbers 0, 1, 2, ...",
    ),
    (
        ["train", "{f}/fractional.csv", "--task", "classification"],
        "classification labels must be whole numbers 0, 1, 2, ...",
    ),
    (
        ["train", "{f}/huge-label.csv", "--task", "classification"],
        "labels go up to 5000, but a classifier here has at most 1000 classes",
    ),
    (["train", "{f}/good.csv", "--target", "nope"], "has no column 'nope'; columns: a, b, c"),
    (["train", "{f}/empty.npz"], "cannot read {f}/empty.npz as NPZ: not a zip archive"),
    (["train", "{f}/random.npz"], "cannot read {f}/random.npz as NPZ: not a zip archive"),
    (["train", "{f}/truncated.npz"], "cannot read {f}/truncated.npz as NPZ"),
    (["train", "{f}/missing-keys.npz"], "lacks x_test, y_test; it needs x_train, y_train"),
    (
        ["train", "{f}/pickled.npz"],
        "as NPZ: it holds Python objects (pickles), which denselab never loads",
    ),
    (["train", "{f}/strings.npz"], "{f}/strings.npz: x_train is not numeric (<U1)"),
    (["train", "{f}/complex.npz"], "{f}/complex.npz: x_train is not numeric (complex64)"),
    (["train", "{f}/nan.npz"], "{f}/nan.npz contains NaN or infinity"),
    (["train", "{f}/lengths.npz"], "x and y have different numbers of samples"),
    (["train", "{f}/scalar.npz"], "{f}/scalar.npz: x_train has shape (); it needs"),
    (
        ["train", "{f}/labels-3d.npz"],
        "y_train has shape (4, 3, 2); it needs (n_samples,), or (n_samples, k) for k numbers",
    ),
    (
        ["train", "{f}/targets-mismatch.npz"],
        "y_train and y_test have different numbers of targets",
    ),
    (["train", "{f}/missing.npz"], "no such file: {f}/missing.npz"),
    # labels the model cannot have produced
    (
        ["evaluate", "{f}/dense.keras", "--data", "{f}/four-classes.csv"],
        "the model has 3 outputs but four-classes has 4 classes",
    ),
    (
        ["evaluate", "{f}/dense.keras", "--data", "{f}/negative.csv"],
        "classification labels must be whole numbers 0, 1, 2, ...",
    ),
    # one input for predict/explain
    (
        ["explain", "{f}/dense.keras", "--input", "{f}/five.npy"],
        "{f}/five.npy has shape (5,) but the model takes (4,) (4 numbers)",
    ),
    (["predict", "{f}/dense.keras", "--input", "{f}/strings.npy"], "does not hold real numbers"),
    (
        ["predict", "{f}/dense.keras", "--input", "{f}/objects.npy"],
        "as .npy: it holds Python objects",
    ),
    (["predict", "{f}/dense.keras", "--input", "{f}/nan.npy"], "contains NaN or infinity"),
    (["predict", "{f}/dense.keras", "--input", "{f}/inf.npy"], "contains NaN or infinity"),
    (["predict", "{f}/dense.keras", "--input", "{f}/too-big.npy"], "beyond float32's range"),
    (["predict", "{f}/dense.keras", "--input", "{f}/empty.npy"], "cannot read {f}/empty.npy"),
    (
        ["predict", "{f}/dense.keras", "--input", "{f}/random.npy"],
        "{f}/random.npy as .npy: not written by np.save",
    ),
    (
        ["predict", "{f}/dense.keras", "--input", "{f}/input.csv"],
        "{f}/input.csv: give a .npy array of shape (4,) for this model",
    ),
    (
        ["predict", "{f}/digits.keras", "--input", "{f}/empty.png"],
        "cannot read image {f}/empty.png: not a PNG or JPEG picture",
    ),
    (
        ["predict", "{f}/digits.keras", "--input", "{f}/random.png"],
        "cannot read image {f}/random.png: not a PNG or JPEG picture",
    ),
    (
        ["predict", "{f}/digits.keras", "--input", "{f}/truncated.png"],
        "cannot read image {f}/truncated.png: image file is truncated (damaged file?)",
    ),
    (
        ["predict", "{f}/digits.keras", "--input", "{f}/truncated.jpg"],
        "cannot read image {f}/truncated.jpg: ",  # the reason is Pillow's
    ),
    (
        ["explain", "{f}/digits.keras", "--input", "{f}/random.jpg"],
        "cannot read image {f}/random.jpg: not a PNG or JPEG picture",
    ),
    (["predict", "{f}/digits.keras", "--input", "{f}/blank.png"], "looks blank: no ink found"),
    (
        ["predict", "{f}/digits.keras", "--input", "{f}/huge.png"],
        "{f}/huge.png is 5000x5000 pixels; give a picture of one digit",
    ),
    (
        ["predict", "{f}/dense.keras", "--data", "{f}/good.csv", "--index", "99999"],
        "good has test samples 0..3; no 99999",
    ),
    (
        ["predict", "{f}/dense.keras", "--index", "0", "--input", "{f}/five.npy"],
        "give --index or --input, not both",
    ),
    # output folders that are files, cannot be made, or cannot be written
    (
        ["train", "{f}/good.csv", "--out", "{f}/a-file", "--epochs", "1"],
        "output folder {f}/a-file is a file; choose another --out",
    ),
    (
        ["deploy", "{f}/dense.keras", "--data", "{f}/good.csv", "--out", "{f}/a-file"],
        "output folder {f}/a-file is a file; choose another --out",
    ),
    (
        ["explore", "{f}/dense.keras", "--out", "{f}/a-file/explorer.html"],
        "output folder {f}/a-file is a file; choose another --out",
    ),
    (
        ["explore", "{f}/dense.keras", "--out", "{f}/a-folder"],
        "{f}/a-folder is a folder; give a file name instead",
    ),
    (
        ["plot", "{f}/dense.keras", "--out", "{f}/a-file"],
        "output folder {f}/a-file is a file; choose another --out",
    ),
    (["explore", "{f}/dense.keras", "--out", "/proc/1/explorer.html"], "/proc/1 is not writable"),
    # deploy folders for verify
    (
        ["verify", "{f}/deploy-garbage"],
        "not a .tflite flatbuffer (no TFL3 identifier); give deploy's int8 model",
    ),
    (["verify", "{f}/deploy-damaged"], "damaged .tflite (unreadable flatbuffer: "),
    (["verify", "{f}/no-deploy"], "{f}/no-deploy is not a folder written by `denselab deploy`"),
]

# Ten of them also through the real command in a subprocess (each pays ~4 s of imports).
SUBPROCESS_CASES = [
    case
    for case in CASES
    if " ".join(case[0])
    in (
        "inspect {f}/random.keras",
        "inspect {f}/random.h5",
        "inspect {f}/lambda.h5",
        "deploy {f}/lstm.keras --data {f}/good.csv --out {f}/fw",
        "train {f}/nan.csv",
        "train {f}/pickled.npz",
        "predict {f}/dense.keras --input {f}/strings.npy",
        "predict {f}/digits.keras --input {f}/random.png",
        "train {f}/good.csv --out {f}/a-file --epochs 1",
        "verify {f}/deploy-garbage",
    )
]


def _args(args: list[str], folder: Path) -> list[str]:
    return [a.format(f=folder) for a in args]


def _leftovers(folder: Path) -> list[str]:
    """Temporary files from ``denselab.fileio`` (``.<name>.<random><suffix>``) anywhere below."""
    return [str(p) for p in folder.rglob(".*") if p.is_file()]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_clear_line_and_exit_2(corpus, capsys, args, message):
    from denselab.cli import main

    capsys.readouterr()
    status = main(_args(args, corpus))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"denselab {args[0]}: ")
    assert message.format(f=corpus) in lines[0]
    assert _leftovers(corpus) == []
    assert not (corpus / "fw").exists()
    assert not (corpus / "LAMBDA_RAN").exists()


def test_the_corpus_has_at_least_40_cases_and_10_run_as_a_subprocess():
    assert len(CASES) >= 40
    assert len(SUBPROCESS_CASES) == 10


@pytest.fixture(scope="module")
def subprocess_results(corpus):
    """A sample of the corpus through the real ``denselab`` command, three at a time."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda case: run_denselab(*_args(case[0], corpus)), SUBPROCESS_CASES)
        return {
            " ".join(case[0]): result
            for case, result in zip(SUBPROCESS_CASES, results, strict=True)
        }


@pytest.mark.parametrize(
    "args, message", SUBPROCESS_CASES, ids=[" ".join(c[0])[:60] for c in SUBPROCESS_CASES]
)
def test_bad_input_through_the_real_command(corpus, subprocess_results, args, message):
    result = subprocess_results[" ".join(args)]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"denselab {args[0]}: ")
    assert message.format(f=corpus) in result.stderr
    assert "LAMBDA RAN" not in result.stdout + result.stderr
    assert not (corpus / "LAMBDA_RAN").exists()


# --- Lambda layers: refused, and the code inside never runs ---------------------------------


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_the_lambda_trap_is_armed_so_its_refusal_means_something(corpus, tmp_path, suffix):
    """With safe mode off, Keras does run the lambda: the marker appears."""
    from denselab.backend import keras as _keras

    keras = _keras()
    marker = corpus / "LAMBDA_RAN"
    try:
        keras.saving.load_model(corpus / f"lambda{suffix}", compile=False, safe_mode=False)
        assert marker.exists()
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_before_keras_reads_it(corpus, monkeypatch, suffix):
    """denselab's own check refuses it: Keras's loader is never even called."""
    from denselab import model as model_module
    from denselab.errors import DenselabError

    def never(*args, **kwargs):
        raise AssertionError("Keras was asked to load a model with a Lambda layer")

    monkeypatch.setattr(model_module._keras().saving, "load_model", never)
    with pytest.raises(DenselabError, match="contains a Lambda layer"):
        model_module.load_model(corpus / f"lambda{suffix}")
    assert not (corpus / "LAMBDA_RAN").exists()


def test_a_lambda_nested_in_a_functional_model_is_found(tmp_path):
    from denselab.backend import keras as _keras
    from denselab.model import code_layer

    keras = _keras()
    inner = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    inputs = keras.Input((2,))
    outer = keras.Model(inputs, keras.layers.Dense(1)(inner(inputs)))
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(outer)))
    assert code_layer(config) == "Lambda"
    assert code_layer({"class_name": "Dense", "config": {"units": 3}}) is None


# --- atomic writes: a failed write leaves the old file and no temporary file -----------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("writer", ["write_bytes", "write_text", "write_json"])
def test_a_full_disk_leaves_the_previous_file_intact(tmp_path, monkeypatch, writer):
    from denselab import fileio, folders
    from denselab.errors import DenselabError

    target = tmp_path / "report.json"
    getattr(fileio, writer)(target, b"{}" if writer == "write_bytes" else "{}")
    before = target.read_bytes()
    monkeypatch.setattr(folders.os, "fsync", _enospc)
    new = b'{"new": 1}' * 1000 if writer == "write_bytes" else {"new": 1}
    new = new if writer != "write_text" else "new text"
    with pytest.raises(DenselabError) as caught:
        getattr(fileio, writer)(target, new)
    assert str(caught.value) == (
        f"cannot write {target}: No space left on device; nothing was changed there, "
        "free some space and run it again"
    )
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@pytest.mark.parametrize(
    "error", [RuntimeError("bug in the writer"), KeyboardInterrupt()], ids=["bug", "ctrl-c"]
)
def test_an_interrupted_writer_leaves_the_previous_file_and_no_temporary(tmp_path, error):
    from denselab import fileio

    target = tmp_path / "model.keras"
    target.write_bytes(b"the good old model")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half a mod")
        raise error

    with pytest.raises(type(error)):
        fileio.write_with(target, half_then_fail)
    assert target.read_bytes() == b"the good old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_a_written_file_gets_ordinary_permissions(tmp_path):
    from denselab import fileio

    mask = os.umask(0o022)
    os.umask(mask)
    path = fileio.write_text(tmp_path / "model.c", "int x;\n")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_full_disk_during_explore_keeps_the_old_page(corpus, tmp_path, monkeypatch, capsys):
    from denselab import folders
    from denselab.cli import main

    page = tmp_path / "explorer.html"
    assert main(["explore", str(corpus / "dense.keras"), "--out", str(page)]) == 0
    before = page.read_bytes()
    monkeypatch.setattr(folders.os, "fsync", _enospc)
    capsys.readouterr()
    assert main(["explore", str(corpus / "dense.keras"), "--out", str(page)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"denselab explore: cannot write {page}: No space left on device; nothing was changed "
        "there, free some space and run it again\n"
    )
    assert page.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explorer.html"]


def test_a_full_disk_while_saving_a_model_keeps_the_old_model(corpus, tmp_path, monkeypatch):
    from denselab import fileio
    from denselab.errors import DenselabError
    from denselab.model import load_model

    model = load_model(corpus / "dense.keras")
    target = tmp_path / "model.keras"
    fileio.write_with(target, lambda tmp: model.save(tmp))
    before = target.read_bytes()
    real_open = open

    def full_after_100_bytes(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        if "w" in mode and str(file).startswith(str(tmp_path)):
            write = stream.write

            def limited(data):
                if stream.tell() + len(data) > 100:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return write(data)

            stream.write = limited
        return stream

    monkeypatch.setattr("builtins.open", full_after_100_bytes)
    with pytest.raises((DenselabError, OSError)):
        fileio.write_with(target, lambda tmp: model.save(tmp))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert load_model(target).count_params() == model.count_params()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /sys")
def test_a_folder_that_refuses_files_is_one_line(corpus, capsys):
    from denselab.cli import main

    capsys.readouterr()
    assert main(["explore", str(corpus / "dense.keras"), "--out", "/sys/explorer.html"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("denselab explore: cannot write /sys/explorer.html: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize("content", [b"{garbage", b"\xff\xfe", b""], ids=["json", "bytes", "empty"])
def test_a_damaged_json_file_is_one_clear_error(tmp_path, content):
    from denselab.errors import DenselabError
    from denselab.fileio import read_json

    path = tmp_path / "history.json"
    path.write_bytes(content)
    with pytest.raises(DenselabError, match=r"history.json is damaged \(.*\); delete it or run"):
        read_json(path)
    with pytest.raises(DenselabError, match="is missing"):
        read_json(tmp_path / "gone.json")


@pytest.mark.parametrize("name", ["hangs-hdf5.h5", "lambda.h5", "dense.h5"])
def test_hdf5_is_read_first_in_a_child_process_that_a_hang_cannot_take_down(
    corpus, monkeypatch, name
):
    """One inserted byte makes the HDF5 library loop forever; the probe times out instead."""
    from denselab import probes
    from denselab.errors import DenselabError
    from denselab.model import load_model

    monkeypatch.setattr(probes, "HDF5_PROBE_SECONDS", 3.0)
    if name == "dense.h5":
        assert load_model(corpus / name).count_params() == 15
        return
    expected = "still reading it after 3 s" if name.startswith("hangs") else "Lambda layer"
    with pytest.raises(DenselabError, match=expected):
        load_model(corpus / name)
