"""The explorer's int8 mode: the page repeats TFLite Micro's integer arithmetic to the byte.

``lesson_run`` (conftest.py) is the lesson's 784-20-10 classifier; it is deployed once here
(``--target none``: no cross compiler needed) and the page is made from the deploy folder.
TFLite Micro itself and ``denselab explain --int8 --json`` are the references.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pictures_explorer import _open, browser  # noqa: F401 (browser is a fixture)

from denselab.cli import main
from denselab.data import load_dataset
from denselab.explore import write_explorer
from denselab.fileio import read_json
from denselab.int8 import arithmetic
from denselab.int8.tflite import read_int8_tflite
from denselab.int8.tflm import tflm_invoke

FIELDS = ("acc", "output_multiplier", "output_shift", "high_mul", "result", "int8")


@pytest.fixture(scope="module")
def lesson_deploy(lesson_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lesson-deploy") / "fw"
    assert main(["deploy", str(lesson_run.path), "--out", str(folder), "--target", "none"]) == 0
    return folder


@pytest.fixture(scope="module")
def int8_page(lesson_deploy, browser):  # noqa: F811
    page_path = write_explorer(lesson_deploy)
    assert page_path == lesson_deploy / "explorer.html"
    context, page, requests, errors = _open(browser, page_path)
    assert page.evaluate("denselab.hasInt8()")
    page.evaluate("denselab.setMode('int8')")
    yield page
    assert not errors
    assert all(url.startswith(("file:", "data:")) for url in requests)
    context.close()


def test_int8_mode_gives_tflite_micros_bytes_on_test_images_0_to_99(lesson_deploy, int8_page):
    shown = int8_page.evaluate(
        """() => Array.from({ length: 100 }, (_, i) => {
          denselab.showTestImage(i);
          return denselab.int8Outputs();
        })"""
    )
    int8_tflite = (lesson_deploy / "model_int8.tflite").read_bytes()
    quantized = read_int8_tflite(int8_tflite)
    x = load_dataset("mnist-5k").x_test[:100]
    expected = tflm_invoke(int8_tflite, quantized.quantize_input(x))
    np.testing.assert_array_equal(np.array(shown, dtype=np.int8), expected)


@pytest.mark.parametrize("layer", [0, 1], ids=["hidden", "output"])
def test_a_clicked_neurons_integer_formula_matches_explain_int8(
    lesson_deploy, int8_page, cli, layer
):
    index, neuron = 7, 3
    explained = cli("explain", lesson_deploy, "--int8", "--index", index, "--json")
    expected = explained["layers"][layer]["neurons"][neuron]
    int8_page.evaluate(f"denselab.showTestImage({index})")
    int8_page.evaluate(f"denselab.selectNeuron({layer}, {neuron})")
    formula = int8_page.locator(f'.int8-math[data-layer="{layer}"][data-index="{neuron}"]')
    shown = {field: formula.locator(f'[data-field="{field}"]').inner_text() for field in FIELDS}
    assert {field: int(text) for field, text in shown.items()} == {f: expected[f] for f in FIELDS}
    real = float(formula.locator('[data-field="real"]').inner_text())
    assert real == pytest.approx(expected["real"], abs=1e-4)


def test_page_shows_both_answers_where_quantization_hurts_and_the_engines_figures(
    lesson_deploy, int8_page
):
    deployed = read_json(lesson_deploy / "report.json")
    disagree = deployed["quantization"]["int8_float_disagree"]
    on_page = [i for i in disagree if i < int8_page.evaluate("denselab.testCount")]
    thumbs = int8_page.locator("#hurt-gallery .thumb")
    assert [int(i) for i in thumbs.evaluate_all("ts => ts.map(t => t.dataset.index)")] == on_page
    assert str(len(disagree)) in int8_page.inner_text("#hurt-summary")
    assert len(int8_page.locator("#hurt tr").all()) == 1 + len(deployed["quantization"]["layers"])
    target = int8_page.inner_text("#target")
    assert (
        f"0 samples differ from TFLite Micro in any byte on {deployed['test_samples']:,}" in target
    )
    if on_page:  # a tap shows the image in int8 mode, and the answers disagree
        thumbs.first.click()
        answer = int8_page.locator("#int8-answer")
        assert "disagree" in answer.inner_text()
        assert answer.get_attribute("data-float-class") != answer.get_attribute("data-int8-class")
    int8_page.evaluate("denselab.setMode('float')")
    assert int8_page.locator("#int8-answer").is_hidden()
    int8_page.evaluate("denselab.setMode('int8')")


@pytest.mark.parametrize("kind", ["logistic", "tanh"])
def test_page_logistic_and_tanh_equal_arithmetic_py_on_every_int8_input(int8_page, kind):
    import math

    from denselab.int8.tflite import QuantizedSquash
    from denselab.int8.tflm_math import calculate_input_radius, round_half_away

    q = np.arange(-128, 128, dtype=np.int8)
    for input_scale, zero_point in [(0.004, -128), (0.03, 5), (0.1, 0), (0.5, 100)]:
        fraction, left_shift = math.frexp(input_scale * (1 << 27))  # as tflite.py reads it
        layer = QuantizedSquash(
            name=kind,
            kind=kind,
            size=256,
            input_scale=input_scale,
            input_zero_point=zero_point,
            output_scale=1 / 256 if kind == "logistic" else 1 / 128,
            output_zero_point=-128 if kind == "logistic" else 0,
            input_multiplier=round_half_away(fraction * (1 << 31)),
            input_left_shift=left_shift,
            input_range_radius=calculate_input_radius(4, left_shift),
        )
        shown = int8_page.evaluate(
            "([layer, q]) => Array.from(Explorer.int8.squash(layer, q).out)",
            [
                {
                    "kind": kind,
                    "inputZeroPoint": zero_point,
                    "inputMultiplier": layer.input_multiplier,
                    "inputLeftShift": layer.input_left_shift,
                    "inputRangeRadius": layer.input_range_radius,
                },
                q.tolist(),
            ],
        )
        np.testing.assert_array_equal(np.array(shown, np.int8), arithmetic.squash(layer, q)[0])


def test_page_softmax_equals_arithmetic_py_on_random_inputs(int8_page):
    from denselab.int8.tflite import QuantizedSoftmax
    from denselab.int8.tflm_math import calculate_input_radius, quantize_multiplier

    rng = np.random.default_rng(0)
    for input_scale in [0.01, 0.05, 0.2, 0.9]:
        multiplier, left_shift = quantize_multiplier(min(input_scale * (1 << 26), 2**31 - 1.0))
        layer = QuantizedSoftmax(
            name="softmax",
            size=10,
            beta=1.0,
            input_scale=input_scale,
            input_zero_point=0,
            output_scale=1 / 256,
            output_zero_point=-128,
            input_multiplier=multiplier,
            input_left_shift=left_shift,
            diff_min=-calculate_input_radius(5, left_shift),
        )
        inputs = rng.integers(-128, 128, size=(50, 10)).astype(np.int8)
        shown = int8_page.evaluate(
            "([layer, rows]) => rows.map((q) => Array.from(Explorer.int8.softmax(layer, q).out))",
            [
                {
                    "inputMultiplier": multiplier,
                    "inputLeftShift": left_shift,
                    "diffMin": layer.diff_min,
                },
                inputs.tolist(),
            ],
        )
        expected = np.stack([arithmetic.softmax(layer, row)[0] for row in inputs])
        np.testing.assert_array_equal(np.array(shown, np.int8), expected)


def test_a_run_folder_with_a_deploy_folder_inside_gets_the_int8_mode(
    lesson_run, lesson_deploy, tmp_path
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(lesson_run.path, run)
    plain = write_explorer(run, out=tmp_path / "float.html")
    assert '"int8":{"inputScale"' not in plain.read_text()  # no deploy folder yet: float only
    shutil.copytree(lesson_deploy, run / "deploy")
    page = write_explorer(run)
    assert page == run / "explorer.html"  # beside the run, as before
    assert '"int8":{"inputScale"' in page.read_text() and '"deploy":' in page.read_text()


def test_page_quantizes_inputs_as_tflite_halves_away_from_zero(lesson_deploy, int8_page):
    """An input exactly halfway between two int8 steps: std::round's way, as the chip's
    quantize_input and QuantizedNetwork.quantize_input (tests/test_int8_edges.py)."""
    quantized = read_int8_tflite((lesson_deploy / "model_int8.tflite").read_bytes())
    scale = np.float32(quantized.input_scale)
    halves = np.arange(-60, 60, dtype=np.float32) + np.float32(0.5)
    ties = (halves * scale).astype(np.float32)
    ties = ties[(ties / scale) == halves]
    x = np.resize(ties, 784).astype(np.float32)
    shown = int8_page.evaluate("(x) => Array.from(Explorer.int8.quantizeInput(x))", x.tolist())
    expected = quantized.quantize_input(x[None])[0]
    np.testing.assert_array_equal(np.array(shown, np.int8), expected)
    halfway_to_even = np.clip(np.round(x / scale) + quantized.input_zero_point, -128, 127)
    assert not np.array_equal(expected, halfway_to_even)  # ties present: the check can fail
