"""A one-unit sigmoid output is p(class 1): an XOR network scores 1.0 everywhere, not 0.5."""

from __future__ import annotations

import numpy as np
import pytest

from denselab.backend import keras as _keras


def xor_model():
    """XOR by hand: h1 = relu(a + b), h2 = relu(a + b - 1), p = sigmoid(10 (h1 - 2 h2) - 5)."""
    keras = _keras()
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(2, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.layers[0].set_weights([np.ones((2, 2), np.float32), np.float32([0, -1])])
    model.layers[1].set_weights([np.float32([[10], [-20]]), np.float32([-5])])
    return model


@pytest.fixture(scope="module")
def xor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xor")
    corners = np.float32([[0, 0], [0, 1], [1, 0], [1, 1]])
    labels = np.int64([0, 1, 1, 0])
    rng = np.random.default_rng(0)
    np.savez(
        folder / "xor.npz",
        x_train=np.clip(np.tile(corners, (50, 1)) + rng.normal(0, 0.02, (200, 2)), 0, 1).astype(
            np.float32
        ),
        y_train=np.tile(labels, 50),
        x_test=np.tile(corners, (25, 1)),
        y_test=np.tile(labels, 25),
    )
    xor_model().save(folder / "xor.keras")
    return folder


def test_evaluate_scores_a_sigmoid_unit_by_threshold(xor, cli):
    scores = cli("evaluate", xor / "xor.keras", "--data", xor / "xor.npz", "--json")
    assert scores["accuracy"] == 1.0 and scores["loss"] < 0.01


def test_deploy_scores_keras_tflm_and_c_at_1(xor, cli):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tflite_micro")
    report = cli(
        "deploy",
        xor / "xor.keras",
        "--data",
        xor / "xor.npz",
        "--out",
        xor / "fw",
        "--target",
        "none",
        "--json",
    )
    assert report["c_vs_tflm_differing_samples"] == 0
    assert report["keras_accuracy"] == report["tflm_int8_accuracy"] == 1.0
    assert report["c_int8_accuracy"] == 1.0
    assert report["quantization"]["int8_float_disagree"] == []


def test_a_wrong_threshold_would_be_caught_negative_control(xor):
    """Scored by argmax of one column (always class 0), the same XOR model gets 0.5."""
    predictions = xor_model().predict(np.float32([[0, 0], [0, 1], [1, 0], [1, 1]]), verbose=0)
    assert np.mean(predictions.argmax(axis=1) == [0, 1, 1, 0]) == 0.5


def test_the_explorer_page_scores_the_sigmoid_unit_as_p_class_1(xor, cli):
    """The page shows two class probabilities [1 - p, p] and every XOR test image right."""
    from test_pictures_explorer import _open, _playwright

    cli("explore", xor / "xor.keras", "--data", xor / "xor.npz", "--out", xor / "xor.html")
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        from test_pictures_explorer import CHROMIUM, CHROMIUM_ARGS

        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context, page, _, errors = _open(browser, xor / "xor.html")
            assert page.evaluate("window.denselab.misclassified()") == []
            for index, label in enumerate([0, 1, 1, 0]):
                page.evaluate(f"window.denselab.showTestImage({index})")
                assert page.evaluate("window.denselab.predictedClass()") == label
                shown = page.eval_on_selector_all(
                    "#probabilities [data-probability]",
                    "rows => rows.map(r => Number(r.dataset.probability))",
                )
                assert len(shown) == 2 and abs(sum(shown) - 1) < 1e-6 and shown[label] > 0.99
            summary = page.text_content("#test-summary")
            assert "100.0% right" in summary and "NaN" not in page.content()
            assert errors == []
            context.close()
        finally:
            browser.close()
