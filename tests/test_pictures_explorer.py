"""Pictures of the lesson's MNIST network, and the explorer page checked in a real browser.

The page recomputes the network in JavaScript; Keras is the reference it must agree with.
``lesson_run`` (conftest.py) is the lesson's 784-20-10 classifier trained on mnist-5k.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denselab.data import load_dataset
from denselab.explore import write_explorer
from denselab.model import build_model, dense_network
from denselab.plots import (
    WEIGHT_CMAP,
    _weights_figure,
    confusion_matrix,
    weight_tiles,
    write_run_plots,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def run_pictures(lesson_run, mnist):
    return write_run_plots(lesson_run.path, data=mnist)


def test_a_run_gets_every_picture(run_pictures):
    names = sorted(path.name for path in run_pictures)
    assert names == [
        "confusion.png",
        "curves.png",
        "misclassified.png",
        "predict.png",
        "weights.png",
    ]
    for path in run_pictures:
        with Image.open(path) as picture:
            assert picture.format == "PNG"
            assert min(picture.size) >= 300  # readable, not a thumbnail
        assert path.stat().st_size < 300_000


def test_weights_picture_has_one_tile_per_neuron_on_one_scale_centred_on_zero(lesson_run):
    first = dense_network(lesson_run.model).layers[0]
    tiles, limit = weight_tiles(first, (28, 28))
    assert tiles.shape == (20, 28, 28)
    assert limit == pytest.approx(float(np.percentile(np.abs(first.kernel), 99.9)))
    assert (np.abs(first.kernel) > limit).mean() < 0.002  # only a few weights saturate
    # Tile j is neuron j's column of the kernel: one weight per pixel, row-major like Flatten.
    np.testing.assert_array_equal(tiles[4], first.kernel[:, 4].reshape(28, 28))
    figure = _weights_figure(first, (28, 28))
    images = [image for ax in figure.axes for image in ax.get_images()]
    assert len(images) == 20
    assert {image.get_clim() for image in images} == {(-limit, limit)}
    assert {image.get_cmap().name for image in images} == {WEIGHT_CMAP}


def test_confusion_matrix_counts_every_test_image_once(lesson_run, mnist):
    probabilities = lesson_run.model.predict(mnist.x_test, verbose=0)
    counts = confusion_matrix(mnist.y_test, probabilities.argmax(axis=1), 10)
    assert counts.sum() == len(mnist.y_test) == 1000
    assert np.trace(counts) / 1000 == pytest.approx(lesson_run.metrics["val_accuracy"], abs=1e-3)
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(mnist.y_test, minlength=10))


def test_learning_curves_come_from_the_history(lesson_run):
    history = json.loads((lesson_run.path / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == lesson_run.config.epochs
    assert (lesson_run.path / "curves.png").exists()


# --- the explorer page in headless Chromium ------------------------------------------------------


def _playwright():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("no Chromium at /usr/bin/chromium: the browser test needs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (Python) is not installed: pip install playwright")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:  # a broken browser install is a reason to skip, not to fail
            pytest.skip(f"Chromium does not start under Playwright: {str(error)[:120]}")
        yield chromium
        chromium.close()


def _open(browser, page_path: Path):
    """Open the page from file://, recording every request and aborting all but file:/data:."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))

    def refuse_network(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", refuse_network)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_function("window.denselab && window.denselab.ready", timeout=15_000)
    return context, page, requests, errors


def _shown_probabilities(page) -> np.ndarray:
    values = page.eval_on_selector_all(
        "#probabilities [data-probability]", "rows => rows.map(r => Number(r.dataset.probability))"
    )
    return np.array(values, dtype=np.float64)


def test_explorer_page_agrees_with_keras_and_stays_offline(lesson_run, mnist, browser, tmp_path):
    page_path = write_explorer(lesson_run.path, tmp_path / "explorer.html", data=mnist)
    html = page_path.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    context, page, requests, errors = _open(browser, page_path)
    model = lesson_run.model

    # Draw a stroke with the mouse: the page reruns the network on it.
    box = page.locator("#draw").bounding_box()
    points = [(0.30, 0.25), (0.70, 0.25), (0.55, 0.50), (0.45, 0.80)]
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=8)
    page.mouse.up()
    drawn = np.array(page.evaluate("denselab.input()"), dtype=np.float32).reshape(1, 28, 28)
    assert 20 < (drawn > 0.5).sum() < 300, "the stroke should ink some, not all, pixels"
    shown = _shown_probabilities(page)
    keras_says = model.predict(drawn, verbose=0)[0]
    assert shown.shape == (10,)
    assert np.max(np.abs(shown - keras_says)) < TOLERANCE
    assert np.allclose(page.evaluate("denselab.probabilities()"), shown, atol=0, rtol=0)

    # Test images 0-9: the page's pixels are the dataset's, its probabilities Keras's.
    keras_probabilities = model.predict(mnist.x_test[:10], verbose=0)
    worst = 0.0
    for index in range(10):
        page.evaluate("i => denselab.showTestImage(i)", index)
        pixels = np.array(page.evaluate("denselab.input()"))
        np.testing.assert_allclose(pixels, mnist.x_test[index].ravel(), atol=1e-6)
        worst = max(
            worst, float(np.max(np.abs(_shown_probabilities(page) - keras_probabilities[index])))
        )
    assert worst < TOLERANCE, f"page and Keras differ by {worst:.2e}"

    # The misclassified test images are one click away and are the ones Keras gets wrong.
    count = page.evaluate("denselab.testCount")
    keras_wrong = np.flatnonzero(
        model.predict(mnist.x_test[:count], verbose=0).argmax(axis=1) != mnist.y_test[:count]
    )
    page.click("#show-wrong")
    visible = page.eval_on_selector_all(
        ".thumb:not([hidden])",
        "ts => ts.map(t => [Number(t.dataset.index), t.classList.contains('wrong')])",
    )
    assert [index for index, _ in visible] == keras_wrong.tolist()
    assert all(wrong for _, wrong in visible)

    # A hidden neuron's formula shows its bias and its own output.
    page.click('#diagram .neuron[data-layer="0"][data-index="3"]')
    formula = page.inner_text("#formula")
    assert "neuron 4 of 20 (relu)" in formula and "bias" in formula
    activation = page.evaluate("denselab.activations()[0][3]")
    assert f"{activation:.4f}" in formula or activation == 0

    page.screenshot(path=str(tmp_path / "explorer.png"))
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    context.close()
    assert not errors, errors
    leaving = [url for url in requests if not url.startswith(("file:", "data:"))]
    assert not leaving, f"the page tried the network: {leaving[:3]}"


def test_line_lesson_page_recomputes_the_hand_prediction(browser, tmp_path):
    """The lesson's two-layer weights: at x = 10 the network outputs about 18.999996."""
    from denselab._backend import tensorflow_unprobed

    model = build_model((1,), [2, 1], ["linear", "linear"], seed=0)
    model.layers[0].set_weights(
        [np.array([[1.4040651, -0.7996106]]), np.array([-0.50982034, 0.20248567])]
    )
    model.layers[1].set_weights([np.array([[1.2653419], [-0.27935725]]), np.array([-0.29833543])])
    with tensorflow_unprobed():
        model.save(tmp_path / "two_layers.keras")
    page_path = write_explorer(
        tmp_path / "two_layers.keras", tmp_path / "line.html", data=load_dataset("line")
    )
    context, page, requests, errors = _open(browser, page_path)
    move_slider = "(s, x) => { s.value = x; s.dispatchEvent(new Event('input')); }"
    page.eval_on_selector("#x-slider", move_slider, "3")
    assert page.inner_text("#x-value") == "3.0"
    page.eval_on_selector("#x-slider", move_slider, "10")
    output = float(page.get_attribute("#probabilities [data-output-index='0']", "data-output"))
    keras_says = float(model.predict(np.array([[10.0]], dtype=np.float32), verbose=0)[0, 0])
    assert output == pytest.approx(keras_says, abs=TOLERANCE)
    assert output == pytest.approx(18.999996, abs=1e-3)
    context.close()
    assert not errors, errors
    assert all(url.startswith(("file:", "data:")) for url in requests)


def test_drawing_works_with_a_finger(lesson_run, browser, tmp_path):
    """Touch events (a phone, a tablet) draw too; without test images the page starts blank."""
    page_path = write_explorer(lesson_run.path, tmp_path / "touch.html", n_test_images=0)
    context = browser.new_context(
        has_touch=True, is_mobile=True, viewport={"width": 400, "height": 800}
    )
    page = context.new_page()
    page.goto(page_path.resolve().as_uri())
    page.wait_for_function("window.denselab && window.denselab.ready", timeout=15_000)
    assert page.evaluate("denselab.input().every(v => v === 0)")
    box = page.locator("#draw").bounding_box()
    touch = context.new_cdp_session(page)

    def finger(kind, fx=None, fy=None):
        points = (
            []
            if fx is None
            else [{"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]}]
        )
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    finger("touchStart", 0.5, 0.2)
    for step in range(1, 7):
        finger("touchMove", 0.5, 0.2 + 0.1 * step)
    finger("touchEnd")
    drawn = np.array(page.evaluate("denselab.input()"), dtype=np.float32).reshape(1, 28, 28)
    assert (drawn > 0.5).sum() > 20
    shown = _shown_probabilities(page)
    assert np.max(np.abs(shown - lesson_run.model.predict(drawn, verbose=0)[0])) < TOLERANCE
    context.close()
