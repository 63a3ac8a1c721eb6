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
from denselab.errors import DenselabError
from denselab.explore import write_explorer
from denselab.model import build_model, dense_network
from denselab.pictures import write_run_plots
from denselab.plots import (
    WEIGHT_CMAP,
    _weights_figure,
    confusion_matrix,
    plot_learning_curves,
    plot_prediction,
    weight_tiles,
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


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def test_given_probabilities_draw_the_same_pictures_without_predicting_again(
    lesson_run, mnist, tmp_path, monkeypatch
):
    """Training hands over its last validation pass; the pictures are those Keras's own
    predictions draw, pixel for pixel, and the model is not asked again."""
    model = lesson_run.model
    probabilities = model.predict(mnist.x_test, verbose=0, batch_size=256)
    predicted = write_run_plots(lesson_run.path, data=mnist, out=tmp_path / "a", model=model)

    def predict_again(*args, **kwargs):
        raise AssertionError("the pictures predicted the test split again")

    monkeypatch.setattr(model, "predict", predict_again)
    given = write_run_plots(
        lesson_run.path, data=mnist, out=tmp_path / "b", model=model, probabilities=probabilities
    )
    assert [p.name for p in given] == [p.name for p in predicted]
    for before, after in zip(predicted, given, strict=True):
        np.testing.assert_array_equal(_pixels(after), _pixels(before), err_msg=after.name)


def test_the_pictures_show_the_probabilities_given(lesson_run, mnist, tmp_path):
    """Probabilities that get every test image right: a confusion matrix unlike the model's,
    the bars of a sure answer, and a gallery of no mistakes (its title alone)."""
    perfect = np.eye(10, dtype=np.float32)[mnist.y_test]
    model = lesson_run.model
    drawn = write_run_plots(
        lesson_run.path, data=mnist, out=tmp_path / "perfect", model=model, probabilities=perfect
    )
    mine = {p.name: _pixels(p) for p in drawn}
    keras = write_run_plots(lesson_run.path, data=mnist, out=tmp_path / "model", model=model)
    models = {p.name: _pixels(p) for p in keras}
    assert not np.array_equal(mine["confusion.png"], models["confusion.png"])
    names = mnist.class_names or [str(i) for i in range(10)]
    first = int(mnist.y_test[0])
    sure = plot_prediction(
        mnist.x_test[0], perfect[0], names, tmp_path / "sure.png", first, "test image 0"
    )
    np.testing.assert_array_equal(mine["predict.png"], _pixels(sure))
    ink = [(pictures["misclassified.png"] < 128).mean() for pictures in (mine, models)]
    assert ink[0] < ink[1] / 10


@pytest.mark.parametrize("shape", [(999, 10), (1000, 9), (10, 1000), (1000,)])
def test_probabilities_of_the_wrong_shape_are_refused_before_drawing(
    lesson_run, mnist, tmp_path, shape
):
    out = tmp_path / "pictures"
    with pytest.raises(DenselabError) as refused:
        wrong = np.full(shape, 0.1, np.float32)
        write_run_plots(
            lesson_run.path, data=mnist, out=out, model=lesson_run.model, probabilities=wrong
        )
    message = str(refused.value)
    assert "\n" not in message and f"{shape}, not (1000, 10)" in message
    assert not out.exists()  # nothing drawn, not even the curves


def test_one_sigmoid_unit_given_as_a_column_draws_as_two_classes(tmp_path):
    """p(class 1) of shape (n, 1) is the classes' [1 - p, p], as when the model predicts."""
    model = build_model((2, 2), [3, 1], ["relu", "sigmoid"], seed=0)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (40, 2, 2)).astype(np.float32)
    labels = (images.mean(axis=(1, 2)) > 0.5).astype(np.int64)
    data = tmp_path / "bright.npz"
    np.savez(data, x_train=images, y_train=labels, x_test=images[:20], y_test=labels[:20])
    from denselab.backend import tensorflow_unprobed

    with tensorflow_unprobed():
        model.save(tmp_path / "bright.keras")
    column = model.predict(images[:20], verbose=0)
    assert column.shape == (20, 1)
    run = tmp_path / "bright.keras"
    predicted = write_run_plots(run, data=data, out=tmp_path / "a", model=model)
    given = write_run_plots(run, data=data, out=tmp_path / "b", model=model, probabilities=column)
    assert [p.name for p in given] == [
        "weights.png",
        "confusion.png",
        "misclassified.png",
        "predict.png",
    ]
    for before, after in zip(predicted, given, strict=True):
        np.testing.assert_array_equal(_pixels(after), _pixels(before), err_msg=after.name)
    with pytest.raises(DenselabError, match=r"\(20, 2\), not \(20, 1\)"):
        two = np.hstack([1 - column, column])
        write_run_plots(run, data=data, out=tmp_path / "c", model=model, probabilities=two)


def _bars(mask: np.ndarray) -> list[tuple[int, int]]:
    """(middle row, length in pixels) of each horizontal bar of True pixels, top to bottom."""
    rows = np.flatnonzero(mask.any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return [(band[len(band) // 2], int(mask[band[len(band) // 2]].sum())) for band in bands]


def test_prediction_bars_are_as_long_as_the_probabilities(tmp_path):
    """predict.png is drawn as pixels: one green bar (the predicted class) in its row, and
    every bar's length in proportion to its probability."""
    probabilities = np.array([0.1, 0.6, 0.3])
    names = ["cat", "dog", "bird"]
    path = plot_prediction(np.zeros((28, 28)), probabilities, names, tmp_path / "p.png", 2)
    pixels = _pixels(path)
    ((green_row, green),) = _bars(np.all(pixels == (0x2A, 0x9D, 0x3A), axis=2))
    (cat_row, cat), (bird_row, bird) = _bars(np.all(pixels == (0x9B, 0xB7, 0xD4), axis=2))
    assert cat_row < green_row < bird_row  # rows cat, dog, bird from the top
    assert green > 100
    np.testing.assert_allclose([cat, bird], [green / 6, green / 2], atol=1.5)


@pytest.mark.parametrize(
    "history",
    [
        {"loss": [3e10, 1e10, 5e9], "val_loss": [3.5e10, 1.2e10, 6e9],
         "mae": [1.7e5, 9e4, 6e4], "val_mae": [1.9e5, 1e5, 7e4]},
        {"loss": [1e2, 1e-1, 1e-4, 1e-7], "mae": [7.0, 0.2, 0.01, 0.0001]},
        {"loss": [2e-4, 1.5e-4], "accuracy": [0.99997, 0.99999],
         "val_loss": [2.3e-4, 1.7e-4], "val_accuracy": [0.99996, 0.99998]},
        {"loss": [0.5]},
    ],
    ids=["huge-numbers", "log-scale", "tiny-steps", "one-epoch"],
)  # fmt: skip
def test_learning_curves_are_not_cut_off_at_the_edges(history, tmp_path):
    """The panels are placed by hand, each y axis as wide as its labels: whatever the numbers,
    no text or line reaches the picture's edge (where a clipped label would show)."""
    pixels = _pixels(plot_learning_curves(history, tmp_path / "curves.png"))
    edges = [pixels[:3], pixels[-3:], pixels[:, :3], pixels[:, -3:]]
    assert all((edge > 240).all() for edge in edges)
    assert (pixels < 100).all(axis=2).mean() > 0.005  # and there is text and lines to see


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


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def _open(browser, page_path: Path, viewport: dict = DESKTOP):
    """Open the page from file://, recording every request and aborting all but file:/data:.

    A phone-sized viewport is a touch screen, as Chromium's device emulation makes it.
    """
    phone = viewport["width"] < 600
    context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
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
    assert "neuron 4 of 20 · N1_4 (relu)" in formula and "bias" in formula
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
    from denselab.backend import tensorflow_unprobed

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


# --- the page on a phone, and digits drawn as strokes --------------------------------------------

# Every pair of visible texts whose boxes overlap by more than a sliver: the diagram's SVG texts
# and every element that holds text directly (a caption, a table cell, a label).
_OVERLAPS = """() => {
  const boxes = [];
  // The part of a node's box that shows: clipped by every scrolling box around it.
  function shown(node, b) {
    let r = { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
    for (let up = node.parentElement; up; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (style.overflowX === "visible" && style.overflowY === "visible") continue;
      const c = up.getBoundingClientRect();
      r = { left: Math.max(r.left, c.left), top: Math.max(r.top, c.top),
            right: Math.min(r.right, c.right), bottom: Math.min(r.bottom, c.bottom) };
    }
    return r.right > r.left && r.bottom > r.top ? r : null;
  }
  for (const node of document.querySelectorAll("body *")) {
    if (node.closest("[hidden]") || node.closest("script, style, title, option, select")) continue;
    const own = Array.from(node.childNodes).some((c) => c.nodeType === 3 && c.textContent.trim());
    if (!own) continue;
    // An inline element that wraps has one box per line: each is checked on its own.
    for (const line of node.getClientRects()) {
      const r = shown(node, line);
      if (r) boxes.push({ node, r, text: node.textContent.trim().slice(0, 30) });
    }
  }
  const clashes = [];
  for (let a = 0; a < boxes.length; a++) {
    for (let b = a + 1; b < boxes.length; b++) {
      const p = boxes[a], q = boxes[b];
      if (p.node === q.node || p.node.contains(q.node) || q.node.contains(p.node)) continue;
      const w = Math.min(p.r.right, q.r.right) - Math.max(p.r.left, q.r.left);
      const h = Math.min(p.r.bottom, q.r.bottom) - Math.max(p.r.top, q.r.top);
      if (w > 1 && h > 1) clashes.push([p.text, q.text]);
    }
  }
  return clashes;
}"""

# The diagram's texts that stick out of it (and would be cut off).
_OUTSIDE = """() => {
  const svg = document.getElementById("diagram").getBoundingClientRect();
  return Array.from(document.querySelectorAll("#diagram text")).filter((t) => {
    const r = t.getBoundingClientRect();
    return r.width > 0 && (r.left < svg.left - 1 || r.right > svg.right + 1);
  }).map((t) => t.textContent);
}"""

_TAP_TARGETS = """() => Array.from(document.querySelectorAll("#diagram .neuron")).map((g) => {
  const r = g.getBoundingClientRect();
  return [g.dataset.layer + "/" + g.dataset.index, r.width, r.height];
})"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_page_reads_and_taps_well_at_both_sizes(lesson_run, mnist, browser, tmp_path, viewport):
    """Tap targets of at least 24 CSS px, no overlapping text, the answer in view after a tap
    in the gallery, a mistake shown as two output neurons side by side, accuracies explained."""
    page_path = write_explorer(lesson_run.path, tmp_path / "explorer.html", data=mnist)
    context, page, _, errors = _open(browser, page_path, viewport)

    targets = page.evaluate(_TAP_TARGETS)
    assert len(targets) == 30
    small = [(name, w, h) for name, w, h in targets if min(w, h) < 24]
    assert not small, f"neurons too small to tap: {small[:5]}"
    assert not page.evaluate(_OVERLAPS), page.evaluate(_OVERLAPS)[:5]
    assert not page.evaluate(_OUTSIDE)
    font = page.eval_on_selector("#diagram text.small", "t => t.getBoundingClientRect().height")
    assert font >= 10, "the diagram's labels are readable"

    # The header's accuracy is over the whole test split, the gallery's over its first images.
    header = page.inner_text("#summary")
    assert "on all 1,000 test images" in header
    assert "the header's accuracy is over all 1,000" in page.inner_text("#test-summary")

    # Choose a misclassified test image at the bottom of the page: the answer comes into view.
    page.click("#show-wrong")
    wrong = page.evaluate("denselab.misclassified()[0]")
    thumb = page.locator(f'.thumb[data-index="{wrong}"]')
    thumb.scroll_into_view_if_needed()
    if viewport is PHONE:
        thumb.tap()
    else:
        thumb.click()
    answer = page.locator("#prediction").bounding_box()
    assert 0 <= answer["y"] and answer["y"] + answer["height"] <= viewport["height"]
    assert page.evaluate("denselab.input()") == page.evaluate(f"denselab.testImage({wrong})")

    # Its true class's output neuron beside the one that won, both on screen, side by side.
    label = int(mnist.y_test[wrong])
    predicted = page.evaluate("denselab.predictedClass()")
    assert predicted != label
    sides = page.eval_on_selector_all(
        "#mistake .side",
        "ss => ss.map(s => [Number(s.dataset.classIndex), s.getBoundingClientRect().toJSON()])",
    )
    assert [index for index, _ in sides] == [label, predicted]
    (_, left), (_, right) = sides
    assert abs(left["top"] - right["top"]) < 1 and left["right"] <= right["left"]
    assert right["right"] <= viewport["width"]
    assert page.locator(f'#diagram .neuron.truth[data-index="{label}"]').count() == 1
    assert not page.evaluate(_OVERLAPS)

    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    context.close()
    assert not errors, errors


_AROUND = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # P2 ... P9


def _thin(image: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the 1-pixel-wide centre lines of a binary image's strokes."""
    skeleton = np.pad(image.astype(bool), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(skeleton, -dr, 0), -dc, 1) for dr, dc in _AROUND]
            neighbours = sum(q.astype(int) for q in p)
            transitions = sum((~p[k] & p[(k + 1) % 8]).astype(int) for k in range(8))
            if step == 0:
                keep = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                keep = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            remove = skeleton & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & keep
            if remove.any():
                skeleton &= ~remove
                changed = True
    return skeleton[1:-1, 1:-1]


def _strokes(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
    """The skeleton as pen strokes: walks along its 8-connected pixels, each link drawn once."""
    pixels = {tuple(p) for p in np.argwhere(skeleton)}
    steps = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    links = {frozenset((p, (p[0] + dr, p[1] + dc))) for p in pixels for dr, dc in steps
             if (p[0] + dr, p[1] + dc) in pixels}  # fmt: skip
    strokes = []
    while links:
        ends = [p for p in sorted(pixels) if sum(1 for link in links if p in link) % 2]
        here = ends[0] if ends else min(p for link in links for p in link)
        path = [here]
        while True:
            link = next((k for k in sorted(links, key=sorted) if here in k), None)
            if link is None:
                break
            links.remove(link)
            (here,) = link - {here}
            path.append(here)
        strokes.append(path)
    return strokes


def test_drawn_digits_are_read_as_keras_reads_them_preprocessed_as_mnist(
    lesson_run, mnist, browser, tmp_path
):
    """Ten test digits traced as pen strokes, off-centre and at other sizes: the page makes each
    into an MNIST digit exactly as load_image does, and reads it as Keras does."""
    import base64

    from denselab.data import load_image

    context, page, _, errors = _open(browser, write_explorer(lesson_run.path, tmp_path / "e.html"))
    box = page.locator("#draw").bounding_box()
    pixel = box["width"] / 280  # CSS px per canvas px
    rng = np.random.default_rng(0)
    same_as_keras, same_as_label = 0, 0
    for index in range(10):
        skeleton = _thin(mnist.x_test[index] > 0.35)
        rows, cols = np.nonzero(skeleton)
        scale = rng.uniform(4.0, 9.0)  # canvas px per MNIST pixel: small to large
        extent = np.array([rows.max() - rows.min(), cols.max() - cols.min()]) * scale
        margin = 16
        top, left = (rng.uniform(margin, 280 - margin - e) for e in extent)
        page.click("#clear")
        for stroke in _strokes(skeleton):
            points = [
                (box["x"] + (left + (c - cols.min()) * scale) * pixel,
                 box["y"] + (top + (r - rows.min()) * scale) * pixel)
                for r, c in stroke
            ]  # fmt: skip
            page.mouse.move(*points[0])
            page.mouse.down()
            for point in points[1:]:
                page.mouse.move(*point)
            page.mouse.up()
        drawing = tmp_path / f"drawn-{index}.png"
        png = page.evaluate("denselab.drawing()").split(",", 1)[1]
        drawing.write_bytes(base64.b64decode(png))
        python_sees = load_image(drawing)
        page_sees = np.array(page.evaluate("denselab.input()")).reshape(28, 28)
        np.testing.assert_allclose(page_sees, python_sees, atol=1.5 / 255)
        keras_class = int(lesson_run.model.predict(python_sees[None], verbose=0).argmax())
        same_as_keras += page.evaluate("denselab.predictedClass()") == keras_class
        same_as_label += keras_class == int(mnist.y_test[index])
    context.close()
    assert not errors, errors
    assert same_as_keras >= 9, f"the page agreed with Keras on {same_as_keras} of 10 drawn digits"
    assert same_as_label >= 6, f"only {same_as_label} of 10 traced digits were read right"


def test_two_layer_lesson_from_the_command_line_opens_with_its_slider(cli, browser, tmp_path):
    """`denselab neuron --hidden 2 --out RUN && denselab explore RUN`: the lesson's network,
    the slider, predict(10) ~ 19; the line's label never covers the points; no fake validation."""
    from denselab.model import load_model

    lesson = cli("neuron", "--hidden", "2", "--out", tmp_path / "two", "--json")
    run = Path(lesson["run"])
    for name in ("model.keras", "run.json", "history.json", "metrics.json", "line.png"):
        assert (run / name).exists(), name
    page_path = Path(cli("explore", run, "--json")["html"])
    context, page, _, errors = _open(browser, page_path, PHONE)
    assert page.is_visible("#x-slider")
    assert page.locator("#diagram .neuron").count() == 3  # two neurons, then one
    move_slider = "(s, x) => { s.value = x; s.dispatchEvent(new Event('input')); }"
    page.eval_on_selector("#x-slider", move_slider, "10")
    output = float(page.get_attribute("#probabilities [data-output-index='0']", "data-output"))
    keras_says = float(load_model(run).predict(np.array([[10.0]]), verbose=0)[0, 0])
    assert output == pytest.approx(keras_says, abs=TOLERANCE)
    assert output == pytest.approx(19, abs=0.01)
    assert output == pytest.approx(lesson["prediction"], abs=TOLERANCE)
    legend = page.eval_on_selector_all("#loss-chart text", "ts => ts.map(t => t.textContent)")
    assert "training" in legend and "validation" not in legend
    dots = "#line-chart circle[r='4.5']"
    for x in ("-1", "0", "2", "4", "7", "10", "12"):
        page.eval_on_selector("#x-slider", move_slider, x)
        label = page.locator("#line-chart .marker-label").bounding_box()
        for dot in page.locator(dots).all():
            d = dot.bounding_box()
            apart = (
                label["x"] + label["width"] < d["x"]
                or d["x"] + d["width"] < label["x"]
                or label["y"] + label["height"] < d["y"]
                or d["y"] + d["height"] < label["y"]
            )
            assert apart, f"at x = {x} the label covers a training point"
    assert page.locator(dots).count() == 6
    assert not page.evaluate(_OVERLAPS) and not page.evaluate(_OUTSIDE)
    context.close()
    assert not errors, errors
