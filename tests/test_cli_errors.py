"""Bad input: one line that says what is wrong and what to do, exit status 2, no traceback."""

import numpy as np
import pytest

from conftest import run_denselab


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("bad")
    (folder / "notes.keras").write_text("this is not a model")
    conv = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    conv.save(folder / "conv.keras")
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    dense.save(folder / "dense.keras")
    np.save(folder / "wrong.npy", np.zeros(5, np.float32))
    (folder / "nan.csv").write_text("a,b\n1,0\n2,1\nnan,0\n4,1\n")
    return folder


CASES = [
    (["train", "no-such-data"], "unknown dataset 'no-such-data'"),
    (["inspect", "{f}/notes.keras"], "is not a valid .keras file"),
    (["inspect", "{f}/missing.keras"], "no model at"),
    (["inspect", "{f}/conv.keras"], "layer 'conv' is a Conv2D; denselab handles dense networks"),
    (
        ["explain", "{f}/dense.keras", "--input", "{f}/wrong.npy"],
        "has shape (5,) but the model takes (4,)",
    ),
    (["train", "{f}/nan.csv"], "line 4: NaN or infinity"),
    (["explain", "{f}/dense.keras"], "which dataset?"),
    (["train", "mnist-5k", "--layers", "20,x"], "--layers takes whole numbers"),
    (["neuron", "--epochs", "many"], "argument --epochs: invalid int value"),
    # sizes and numbers are bounded before anything is allocated or started
    (["neuron", "--hidden", "1000000000"], "--hidden must be from 0 to 10,000"),
    (["neuron", "--x", "nan"], "--x must be a number"),
    (["neuron", "--seed=-1"], "--seed must be a whole number from 0 to 2**32 - 1"),
    (["tour", "--seed=-1"], "--seed must be a whole number"),
    (["train", "mnist-5k", "--layers", "99999999,10"], "at most 65,536 a layer"),
    (["train", "mnist-5k", "--layers", "60000,60000,10"], "need 3,647,640,000 weights"),
    (["train", "mnist-5k", "--epochs", "99999999999"], "'epochs' is 99999999999"),
    (["train", "mnist-5k", "--learning-rate", "1e308"], "a positive number up to 1e+30"),
    (["train", "mnist-5k", "--ema-momentum", "1"], "'ema_momentum' is 1.0; it must be from 0"),
    (
        ["search", "digits", "--target-accuracy", "0.9", "--seed=-1", "--out", "{f}/s"],
        "--seed must be a whole number",
    ),
    (
        ["search", "digits", "--target-accuracy", "0.9", "--ray", "127.0.0.1:1", "--out", "{f}/s"],
        "cannot reach the Ray cluster at 127.0.0.1:1",
    ),
    (
        ["search", "digits", "--target-accuracy", "0.9", "--ray", "bogus:99999", "--out", "{f}/s"],
        "give HOST:PORT",
    ),
]


@pytest.mark.parametrize("args, message", CASES, ids=[c[1][:30] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(files, args, message):
    result = run_denselab(*[a.format(f=files) for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_help_explains_the_commands():
    result = run_denselab("--help")
    assert result.returncode == 0
    for command in ("tour", "neuron", "train", "explain", "deploy"):
        assert command in result.stdout


def test_version_is_looked_up_only_when_asked():
    """``--version`` prints the installed version; other commands never import the
    package-metadata machinery it needs (0.03 s on every command's clock)."""
    import subprocess
    import sys
    from importlib.metadata import version

    result = run_denselab("--version")
    assert (result.returncode, result.stdout) == (0, f"denselab {version('denselab')}\n")
    code = "import sys; from denselab.cli import _parser; _parser(); print(sorted(sys.modules))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "'denselab.cli'" in imported.stdout and "importlib.metadata" not in imported.stdout
