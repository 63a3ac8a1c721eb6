"""denselab deploy: the lesson's model as int8 TFLite and C, bit-exact with TFLite Micro."""

import json

import pytest

from conftest import run_denselab
from denselab.data import available


def test_deploy_the_lesson_model_bit_exact_with_tflite_micro(lesson_run, cli, tmp_path):
    out = tmp_path / "fw"
    result = cli("deploy", lesson_run.path, "--out", out, "--json")
    assert result["c_vs_tflm_differing_samples"] == 0
    assert result["test_samples"] == 1000
    assert abs(result["c_int8_accuracy"] - result["keras_accuracy"]) <= 0.005
    assert result["c_int8_accuracy"] == result["tflm_int8_accuracy"]
    assert result["macs"] == 784 * 20 + 20 * 10
    assert 0 < result["ram_bytes"] <= 1024
    assert 0 < result["flash_bytes"] <= 17 * 1024
    assert result["tflm_arena_bytes"] > 0
    for name in (
        "model_float.tflite",
        "model_int8.tflite",
        "model.h",
        "model.c",
        "model_tflite.h",
        "model_tflite.c",
        "test_samples.h",
        "report.json",
    ):
        assert (out / name).exists(), name
    assert json.loads((out / "report.json").read_text())["c_vs_tflm_differing_samples"] == 0
    header = (out / "model.h").read_text()
    for macro in (
        "MODEL_INPUT_SIZE",
        "MODEL_OUTPUT_SIZE",
        "MODEL_INPUT_SCALE",
        "MODEL_INPUT_ZERO_POINT",
        "MODEL_OUTPUT_SCALE",
        "MODEL_OUTPUT_ZERO_POINT",
    ):
        assert macro in header
    again = cli("verify", out, "--json")
    assert again["c_vs_tflm_differing_samples"] == 0


@pytest.mark.skipif(not available("fashion-mnist")[0], reason="dataset-fashion-mnist not installed")
def test_deploy_fashion_mnist_bit_exact_on_all_10000_test_images(cli, tmp_path):
    from denselab.train import TrainConfig, train

    run = train(TrainConfig(dataset="fashion-mnist", units=[20, 10], epochs=5), out=tmp_path / "r")
    result = cli("deploy", run.path, "--out", tmp_path / "fw", "--json")
    assert result["test_samples"] == 10000
    assert result["c_vs_tflm_differing_samples"] == 0
    assert abs(result["c_int8_accuracy"] - result["keras_accuracy"]) <= 0.005


def test_deploy_refuses_a_conv_layer_by_name(tmp_path):
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.save(tmp_path / "conv.keras")
    result = run_denselab(
        "deploy", tmp_path / "conv.keras", "--data", "mnist-5k", "--out", tmp_path / "fw"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "denselab deploy: layer 'conv' is a Conv2D; denselab handles dense networks only "
        "(Flatten, Dense, Activation, ReLU, Softmax, Dropout)"
    )
    assert not (tmp_path / "fw").exists()


def test_verify_never_compiles_a_tampered_model_c(lesson_run, cli, tmp_path):
    out = tmp_path / "fw"
    cli("deploy", lesson_run.path, "--out", out, "--json")
    marker = tmp_path / "ran"
    c_file = out / "model.c"
    c_file.write_text(
        c_file.read_text()
        + f'\n#include <stdio.h>\nstatic void f(void) {{ fopen("{marker}", "w"); }}\n'
    )
    result = run_denselab("verify", out)
    assert result.returncode == 1
    assert "is not what deploy generates" in result.stderr
    assert not marker.exists()
