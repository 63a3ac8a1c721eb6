"""The lessons' own words and numbers, wherever denselab shows them: the weight counts, what
get_weights()[0][0][1] indexes, neurons numbered from 1 (N1_1 ... N1_20), mnist-5k standing in
for MNIST, why the hand-written loop lands on 2 and -1, and the line lesson's recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from denselab.data import load_dataset
from denselab.errors import DenselabError


def test_inspect_shows_the_lessons_weight_counts_and_what_the_indices_mean(cli, lesson_run):
    result = cli("inspect", lesson_run.path, "--json")
    sizes = [(layer["kernel_size"], layer["bias_size"]) for layer in result["layers"]]
    assert sizes == [(15680, 20), (200, 10)]
    assert "get_weights()[0][0][1] is input x1's weight in neuron N1_2" in result["indexing"]
    text = cli("inspect", lesson_run.path, "--layer", "1", "--neuron", "3")
    assert "layer_1.get_weights()[0].size = 15,680 = 784 inputs x 20 neurons" in text
    assert "layer_2.get_weights()[0].size = 200" in text and "[1].size = 10" in text
    assert "kernel[i][j] is the weight from input i to neuron j" in text
    assert "neuron N1_4 (--neuron 3: the kernel's column 3, counted from 0)" in text


def test_neurons_are_numbered_from_one_as_the_lesson_writes_n11(cli, lesson_run):
    result = cli("explain", lesson_run.path, "--index", "0", "--json")
    first, second = result["layers"]
    assert [n["name"] for n in first][:2] == ["N1_1", "N1_2"] and first[0]["neuron"] == 0
    assert second[-1]["name"] == "N2_10"
    assert "N1_" in second[0]["formula"] and "px[" in first[0]["formula"]
    text = cli("explain", lesson_run.path, "--index", "0")
    assert "N1_20: " in text and "N2_1: " in text and "n0:" not in text


def test_mnist_5k_says_it_stands_in_for_mnist_and_that_image_0_is_a_6(cli, lesson_run):
    assert load_dataset("mnist-5k").y_test[0] == 6
    for command in (["evaluate", lesson_run.path], ["predict", lesson_run.path, "--index", "0"]):
        text = cli(*command)
        assert "mnist-5k stands in for the lesson's MNIST" in text
        assert "its test image 0 is a 6, not the lesson's 7" in text


def test_predict_a_picture_shows_what_the_model_saw_and_how(cli, lesson_run, tmp_path):
    """A dark 7 on white paper, small and off-centre: inverted, scaled to 20x20, centred."""
    seven = (load_dataset("mnist-5k").x_test[1] * 255).astype(np.uint8)
    paper = np.full((200, 160), 255, np.uint8)
    paper[20:104, 60:144] = 255 - np.asarray(Image.fromarray(seven).resize((84, 84)))
    Image.fromarray(paper).save(tmp_path / "seven.png")
    result = cli("predict", lesson_run.path, "--input", tmp_path / "seven.png", "--json")
    assert np.array(result["model_input"]).shape == (28, 28)
    steps = " ".join(result["preprocessing"])
    assert "inverted" in steps and "20x20" in steps and "centre of mass" in steps
    assert result["predicted_class"] == 7
    text = cli("predict", lesson_run.path, "--input", tmp_path / "seven.png")
    assert "what the model saw" in text and "@@" in text


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("MNIST-5k", "mnist-5k"), ("fashion_mnist", "fashion-mnist"), ("mnist5k", "mnist-5k")],
)
def test_a_mistyped_dataset_name_gets_a_did_you_mean(typed, meant):
    with pytest.raises(DenselabError, match=f"did you mean '{meant}'"):
        load_dataset(typed)


def test_hand_loop_says_why_its_learning_rate_differs_and_why_it_lands_on_2_and_minus_1(cli):
    from denselab.lessons import convergence, hand_training_loop

    line = load_dataset("line")
    loop = hand_training_loop(line.x_train, line.y_train)
    assert loop.w_ == pytest.approx(2, abs=1e-9) and loop.b_ == pytest.approx(-1, abs=1e-9)
    at_keras_rate = convergence(line.x_train, 0.01, 500)
    assert at_keras_rate["remaining"] == pytest.approx(0.006, abs=0.001)
    assert convergence(line.x_train, 0.05, 500)["remaining"] < 1e-10
    assert at_keras_rate["stable_below"] == pytest.approx(0.177, abs=0.001)
    text = cli("neuron")
    assert "Why learning rate 0.05 here and 0.01 in Keras" in text
    assert "the six points lie on y = 2x - 1" in text


def test_train_line_uses_the_lessons_recipe_and_learns_the_line(cli, tmp_path):
    from denselab.lessons import predict
    from denselab.model import load_model

    result = cli("train", "line", "--layers", "2,1", "--out", tmp_path / "run", "--json")
    assert result["epochs_done"] == 500 and result["train_loss"] < 1e-6
    model = load_model(tmp_path / "run")
    assert [layer.activation.__name__ for layer in model.layers] == ["linear", "linear"]
    assert predict(model, [10.0])[0, 0] == pytest.approx(19, abs=0.01)


def test_a_poor_fit_is_said_not_silent(tmp_path, capsys, monkeypatch):
    from denselab import report
    from denselab.train import TrainConfig, train

    monkeypatch.setattr(report, "_quiet", False)  # an earlier --json command may have quieted it

    config = TrainConfig(dataset="line", units=[2, 1], activations=["linear", "linear"], epochs=5)
    train(config, out=tmp_path / "run", plots=False)
    assert "the fit is poor" in capsys.readouterr().err


def test_the_recorded_lesson_is_the_one_compiled_call_bit_for_bit(tmp_path):
    """neuron --out keeps every epoch's loss: the same steps, the same weights, to the bit."""
    from denselab import neuron_lesson

    plain = neuron_lesson(hidden=2, show=False)
    saved = neuron_lesson(hidden=2, show=False, out=tmp_path / "two")
    assert saved["layer_1"] == plain["layer_1"] and saved["layer_2"] == plain["layer_2"]
    assert saved["prediction"] == plain["prediction"]
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(history["loss"]) == 500 and history["loss"][-1] < 1e-9
