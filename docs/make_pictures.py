"""Make the README pictures: train the lesson models, draw their pictures, screenshot the explorer.

    python docs/make_pictures.py            # trains (about a minute on 2 cores), writes docs/*.png
    python docs/make_pictures.py --reuse    # reuse the runs in runs/docs-* if they exist

Needs Chromium at /usr/bin/chromium and Playwright for Python (no browser download).
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

from PIL import Image

from denselab import fileio
from denselab.explore import write_explorer
from denselab.lessons import neuron_lesson
from denselab.pictures import write_run_plots
from denselab.train import TrainConfig, train

DOCS = Path(__file__).resolve().parent
RUNS = DOCS.parent / "runs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
MNIST_LESSON = TrainConfig(dataset="mnist-5k", units=[20, 10], activations=["relu", "softmax"])
A_SEVEN = [(0.35, 0.3), (0.65, 0.3), (0.48, 0.72)]  # a stroke, as fractions of the canvas
PHONE = {"width": 390, "height": 844}


def lesson_run(config: TrainConfig, folder: Path, reuse: bool) -> Path:
    if reuse and (folder / "model.keras").exists():
        return folder
    return train(config, out=folder).path


def line_run(folder: Path, reuse: bool) -> Path:
    """Lesson 1b as `denselab neuron --hidden 2 --out` saves it."""
    if reuse and (folder / "model.keras").exists():
        return folder
    return Path(neuron_lesson(hidden=2, out=folder, show=False)["run"])


def screenshots(mnist_page: Path, line_page: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(mnist_page.resolve().as_uri())
        page.wait_for_function("window.denselab && window.denselab.ready")
        page.click("#clear")
        box = page.locator("#draw").bounding_box()
        page.mouse.move(
            box["x"] + A_SEVEN[0][0] * box["width"], box["y"] + A_SEVEN[0][1] * box["height"]
        )
        page.mouse.down()
        for fx, fy in A_SEVEN[1:]:
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=12)
        page.mouse.up()
        # Pin the most active hidden neuron so its arithmetic (and its weight picture) shows.
        page.evaluate(
            "() => { const a = denselab.activations()[0];"
            " denselab.selectNeuron(0, a.indexOf(Math.max(...a))); }"
        )
        written.append(_shot(page, DOCS / "explorer.png", clip_to="#network-card"))
        page.click("#show-wrong")
        page.evaluate("() => denselab.showTestImage(denselab.misclassified()[0])")
        written.append(_shot(page, DOCS / "explorer-mistakes.png", element="#test-card"))
        page.goto(line_page.resolve().as_uri())
        page.wait_for_function("window.denselab && window.denselab.ready")
        page.evaluate("() => denselab.selectNeuron(1, 0)")
        written.append(_shot(page, DOCS / "explorer-line.png", clip_to="#network-card"))
        written += phone_screenshots(browser, mnist_page)
        browser.close()
    return written


def phone_screenshots(browser, mnist_page: Path) -> list[Path]:
    """At 390x844 (a phone): a misclassified test image just tapped, then the network."""
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page = context.new_page()
    page.goto(mnist_page.resolve().as_uri())
    page.wait_for_function("window.denselab && window.denselab.ready")
    page.tap("#show-wrong")
    thumb = page.locator(".thumb.wrong").first
    thumb.scroll_into_view_if_needed()
    thumb.tap()  # the page scrolls its answer into view
    written = [_viewport_shot(page, DOCS / "explorer-phone.png")]
    page.locator("#network-card").scroll_into_view_if_needed()
    page.evaluate("() => document.getElementById('network-card').scrollIntoView()")
    written.append(_viewport_shot(page, DOCS / "explorer-phone-network.png"))
    context.close()
    return written


def _viewport_shot(page, target: Path) -> Path:
    png = page.screenshot()
    with Image.open(io.BytesIO(png)) as shot:
        small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    return fileio.write_with(target, lambda tmp: small.save(tmp, format="PNG", optimize=True))


def _shot(page, target: Path, clip_to: str | None = None, element: str | None = None) -> Path:
    """Screenshot the page from the top down to the bottom of ``clip_to``, or one element."""
    if element:
        png = page.locator(element).screenshot()
    else:
        bottom = page.locator(clip_to).bounding_box()
        clip = {"x": 0, "y": 0, "width": 1280, "height": bottom["y"] + bottom["height"] + 16}
        png = page.screenshot(clip=clip, full_page=True)
    # A 256-colour palette keeps a UI screenshot sharp and several times smaller.
    with Image.open(io.BytesIO(png)) as shot:
        small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    return fileio.write_with(target, lambda tmp: small.save(tmp, format="PNG", optimize=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="reuse runs/docs-* when present")
    args = parser.parse_args()
    mnist_run = lesson_run(MNIST_LESSON, RUNS / "docs-mnist-5k-20-10", args.reuse)
    two_layers = line_run(RUNS / "docs-line-2-1", args.reuse)
    written = []
    for picture in write_run_plots(mnist_run):
        written.append(fileio.write_bytes(DOCS / picture.name, picture.read_bytes()))
    for picture in write_run_plots(two_layers):  # line.png and line-curves.png
        name = picture.name if picture.name.startswith("line") else f"line-{picture.name}"
        written.append(fileio.write_bytes(DOCS / name, picture.read_bytes()))
    mnist_page = write_explorer(mnist_run, mnist_run / "explorer.html")
    line_page = write_explorer(two_layers, two_layers / "explorer.html")
    if shutil.which("chromium") or Path(CHROMIUM).exists():
        written += screenshots(mnist_page, line_page)
    for path in written + [mnist_page, line_page]:
        print(f"{path}  ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
