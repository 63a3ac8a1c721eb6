"""Lesson 1 and lesson 2 of the course, reproduced: the numbers the learner is promised."""

import numpy as np
import pytest

from denselab.data import available, load_dataset


def test_one_neuron_learns_two_x_minus_one(cli):
    result = cli("neuron", "--json")
    assert abs(result["w"] - 2) < 0.05
    assert abs(result["b"] + 1) < 0.1
    assert abs(result["prediction"] - 19) < 0.2
    assert result["prediction"] == pytest.approx(result["w"] * 10 + result["b"], abs=1e-4)


def test_hand_written_loop_reaches_the_least_squares_fit(cli):
    xs = load_dataset("line").x_train.ravel().astype(np.float64)
    ys = load_dataset("line").y_train.astype(np.float64)
    w_exact, b_exact = np.polyfit(xs, ys, 1)  # the least-squares line through the six points
    loop = cli("neuron", "--json")["hand_loop"]
    assert abs(loop["w"] - w_exact) < 0.01
    assert abs(loop["b"] - b_exact) < 0.01


def test_two_layers_prediction_recomputed_by_hand_matches_keras(cli):
    result = cli("neuron", "--hidden", "2", "--json")
    assert abs(result["prediction"] - result["hand_prediction"]) < 1e-5
    assert abs(result["prediction"] - 19) < 0.2
    kernel_1 = np.array(result["layer_1"]["kernel"])
    kernel_2 = np.array(result["layer_2"]["kernel"])
    assert kernel_1.shape == (1, 2) and kernel_2.shape == (2, 1)  # the lesson's layout


def test_two_layers_hand_arithmetic_is_shown(cli):
    text = cli("neuron", "--hidden", "2")
    assert "neuron1 = w1*x + b1" in text and "model.predict([10])" in text


def test_predict_accepts_a_plain_number_like_the_course():
    from denselab import predict
    from denselab.model import build_model

    model = build_model((1,), [1], ["linear"], seed=0)
    assert predict(model, [10.0]).shape == (1, 1)
    assert predict(model, 10.0).shape == (1, 1)
    assert predict(model, [1.0, 2.0, 3.0]).shape == (3, 1)


def test_lesson_classifier_on_mnist_5k_reaches_the_expected_accuracy(lesson_run):
    assert lesson_run.metrics["val_accuracy"] >= 0.89
    assert lesson_run.metrics["train_accuracy"] >= 0.95
    for name in ("model.keras", "history.json", "metrics.json", "run.json"):
        assert (lesson_run.path / name).exists()
    assert len(lesson_run.history["val_accuracy"]) == 20


def test_lesson_weight_sizes_are_15680_20_200_10(lesson_run):
    from denselab.lessons import classifier_lesson

    result = classifier_lesson(lesson_run, load_dataset("mnist-5k"))
    sizes = [(s["kernel"], s["bias"]) for s in result["weight_sizes"]]
    assert sizes == [(15680, 20), (200, 10)]
    probabilities = np.array(result["test_image_0"]["probabilities"])
    assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-5


@pytest.mark.skipif(not available("fashion-mnist")[0], reason="dataset-fashion-mnist not installed")
def test_lesson_classifier_on_fashion_mnist(cli, tmp_path):
    result = cli("train", "fashion-mnist", "--out", tmp_path / "run", "--no-plots", "--json")
    assert result["val_accuracy"] >= 0.85
    assert result["model_path"].endswith("model.keras")


def test_training_with_a_seed_repeats_exactly(tmp_path):
    from denselab.train import TrainConfig, train

    config = TrainConfig(dataset="digits", units=[16, 10], epochs=3, seed=7)
    first = train(config, out=tmp_path / "a")
    second = train(config, out=tmp_path / "b")
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.history["loss"] == second.history["loss"]


def test_other_stacks_and_regression_from_a_csv(cli, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.3
    csv = tmp_path / "linear.csv"
    csv.write_text(
        "a,b,c,target\n"
        + "\n".join(",".join(f"{v:.6f}" for v in row) for row in np.column_stack([x, y]))
    )
    result = cli(
        "train",
        csv,
        "--layers",
        "8,1",
        "--activations",
        "tanh,linear",
        "--epochs",
        "60",
        "--learning-rate",
        "0.01",
        "--out",
        tmp_path / "run",
        "--no-plots",
        "--json",
    )
    assert result["val_mae"] < 0.5
    explained = cli("explain", tmp_path / "run", "--index", "3", "--json")
    assert explained["max_abs_diff"] < 1e-5


def test_tour_runs_to_the_end_offline(tmp_path):
    """The main job: lessons 1, 1b and 2, pictures and explorer, in a fresh folder."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "denselab.cli", "tour", "--epochs", "3", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    tour = json.loads(result.stdout)
    assert abs(tour["neuron"]["w"] - 2) < 0.05
    assert abs(tour["two_layers"]["prediction"] - tour["two_layers"]["hand_prediction"]) < 1e-5
    assert tour["classifier"]["dataset"] in ("mnist", "mnist-5k")
    assert [s["kernel"] for s in tour["classifier"]["weight_sizes"]] == [15680, 200]
    run = tmp_path / "runs" / f"tour-{tour['classifier']['dataset']}"
    assert (run / "model.keras").exists() and (run / "explorer.html").exists()
    assert (run / "weights.png").exists()
