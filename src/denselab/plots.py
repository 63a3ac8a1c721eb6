"""Pictures of a trained network: learning curves, weights, mistakes and single predictions.

Every function writes one PNG atomically and returns its path. The curves and the line fit
are drawn on their own ``matplotlib.figure.Figure`` (Agg, no ``pyplot`` state); the grids of
small images (weight tiles, the confusion matrix, the mistakes) and the prediction bars
straight into pixels with matplotlib's colour maps and typeface (:mod:`denselab.raster`),
about ten times faster.
:func:`denselab.pictures.write_run_plots` chooses which apply to a run folder.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

from . import fileio, folders
from .errors import DenselabError
from .model import DenseLayer

DPI = 100
WEIGHT_CMAP = "RdBu_r"  # diverging: red = positive weight, blue = negative, white = 0
WEIGHT_PERCENTILE = 99.9
TRAIN_COLOUR, VALIDATION_COLOUR = "#1f77b4", "#d62728"
_importing = None  # the thread import_in_background started
CURVES = (("", "training", TRAIN_COLOUR), ("val_", "validation", VALIDATION_COLOUR))


def import_in_background() -> None:
    """Import matplotlib and load its fonts on another thread, once: a command that will draw
    after long work (training) calls it first, so the drawing does not wait ~0.5 s for them."""
    global _importing
    if _importing is None:
        _importing = threading.Thread(target=_import_drawing, name="denselab-plots", daemon=True)
        _importing.start()


def _import_drawing() -> None:
    import matplotlib.backends.backend_agg  # noqa: F401  (what savefig draws with)
    import matplotlib.figure  # noqa: F401
    from matplotlib import font_manager

    from .raster import TEXT_PX, font_of_size

    font_manager.fontManager.findfont("DejaVu Sans")
    font_of_size(TEXT_PX)


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure  # no pyplot: no global figure list, no GUI backend

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


# Every PNG denselab draws says so in a tEXt chunk ahead of its pixels: `plot` may redraw
# such a file, never a picture of the user's that happens to share its name.
PNG_SOFTWARE = "denselab"


def is_our_png(path: Path) -> bool:
    """Whether ``path`` is a PNG denselab drew (its ``Software`` text is denselab)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00" + PNG_SOFTWARE.encode() in head


def _save(figure, out: str | Path) -> Path:
    fast = {"compress_level": 1}  # zlib's fastest: ~3 ms less than its default, ~7% more bytes
    path = fileio.write_with(
        out,
        lambda tmp: figure.savefig(
            tmp, format="png", dpi=DPI, pil_kwargs=fast, metadata={"Software": PNG_SOFTWARE}
        ),
    )
    folders.add_to_manifest(path.parent, path.name)  # a run folder's manifest, if it has one
    return path


def plain_text(text) -> str:
    """A name from a file, drawn as it is: a ``$`` would start matplotlib's mathtext (which
    parses, and can fail on, anything between two of them)."""
    return str(text).replace("$", r"\$")


# --- learning curves -----------------------------------------------------------------------


def plot_learning_curves(history: dict, out: str | Path) -> Path:
    """Loss and accuracy (or mean absolute error) per epoch, training and validation.

    history : Keras ``History.history`` dict, e.g. ``{"loss": [...], "val_loss": [...]}``.
    """
    if not history.get("loss"):
        raise DenselabError("the history has no 'loss' values to plot")
    second = "accuracy" if "accuracy" in history else "mae" if "mae" in history else None
    panels = ["loss"] + ([second] if second else [])
    figure = _figure(5.0 * len(panels), 4.0, layout=None)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    loss_names = {"accuracy": "loss (cross-entropy)", "mae": "loss (mean squared error)"}
    labels = {"accuracy": "accuracy", "mae": "mean absolute error"}
    labels["loss"] = loss_names.get(second, "loss")
    for ax, key in zip(axes, panels, strict=True):
        shown = []
        for prefix, name, colour in CURVES:
            values = history.get(prefix + key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                marker = "o" if len(values) <= 40 else None
                ax.plot(epochs, values, marker=marker, markersize=3, color=colour, label=name)
                shown += list(values)
        ax.ticklabel_format(axis="y", useOffset=False)  # 0.99995, not 9.5e-5 + 0.9999
        # A loss falling by orders of magnitude (the line lessons) is readable only on a log axis.
        if key == "loss" and min(shown) > 0 and max(shown) / min(shown) > 1000:
            ax.set_yscale("log")
        title = "Loss" if key == "loss" else labels[key].capitalize()
        ax.set_title(title + " per epoch" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_xlabel("epoch")
        ax.set_ylabel(labels[key])
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if second == "accuracy":
        last = history.get("val_accuracy") or history["accuracy"]
        figure.suptitle(f"Learning curves (final validation accuracy {last[-1]:.1%})")
    else:
        figure.suptitle("Learning curves")
    _place_in_a_row(figure, axes)
    return _save(figure, out)


# Room in inches: above for two titles, below for tick labels and a label, right for half a
# tick label, between panels. Only the y axes' width depends on the data.
ABOVE, BELOW, RIGHT, BETWEEN = 0.6, 0.55, 0.2, 0.3


def _place_in_a_row(figure, axes) -> None:
    """Place panels side by side, each y axis as wide as its tick labels and label.

    Constrained layout finds the same margins by measuring every text twice (~0.1 s a
    picture); here only the y axes are measured, once, at the panels' final height.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width, height = figure.get_size_inches() * DPI
    bottom, top = BELOW * DPI, height - ABOVE * DPI
    figure.subplots_adjust(bottom=bottom / height, top=top / height)  # the height sets the ticks
    renderer = FigureCanvasAgg(figure).get_renderer()  # the one savefig draws with
    # each axes' left margin: its y label and tick labels, 6 px clear of what is left of them
    lefts = [ax.bbox.x0 - ax.yaxis.get_tightbbox(renderer).x0 + 6 for ax in axes]
    panel = (width - sum(lefts) - (RIGHT + BETWEEN * (len(axes) - 1)) * DPI) / len(axes)
    x = 0.0
    for ax, left in zip(axes, lefts, strict=True):
        x += left
        ax.set_position([x / width, bottom / height, panel / width, (top - bottom) / height])
        x += panel + BETWEEN * DPI


# --- first-layer weights -------------------------------------------------------------------


def weight_tiles(layer: DenseLayer, image_shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Each neuron's kernel column reshaped to the input image, and one shared colour limit.

    Returns ``tiles`` of shape (n_neurons, height, width) and ``limit``: every tile is drawn
    on the one scale [-limit, +limit], white at 0, so equal colours mean equal weights.
    ``limit`` is the 99.9th percentile of |weight|, so that a handful of extreme weights do
    not wash every tile out; those few show at full colour (the colour bar's arrows).
    """
    height, width = image_shape
    if layer.n_inputs != height * width:
        raise DenselabError(f"layer {layer.name!r} has {layer.n_inputs} inputs, not {image_shape}")
    tiles = layer.kernel.T.reshape(layer.n_neurons, height, width)
    limit = float(np.percentile(np.abs(tiles), WEIGHT_PERCENTILE)) or 1.0
    return tiles, limit


def _tile_grid(n: int) -> tuple[int, int]:
    """(rows, columns) for ``n`` tiles: a little wider than tall."""
    columns = min(n, max(1, math.ceil(math.sqrt(n * 1.25))))
    return math.ceil(n / columns), columns


def _weights_figure(layer: DenseLayer, image_shape: tuple[int, int]):
    """The weights picture as a matplotlib figure (to show or restyle in a notebook); the PNG
    :func:`plot_first_layer_weights` writes shows the same tiles, titles and scale."""
    tiles, limit = weight_tiles(layer, image_shape)
    n = len(tiles)
    rows, columns = _tile_grid(n)
    figure = _figure(1.55 * columns + 1.2, 1.6 * rows + 0.9)
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= n:
            ax.set_axis_off()
            continue
        image = ax.imshow(tiles[index], cmap=WEIGHT_CMAP, vmin=-limit, vmax=limit)
        ax.set_title(f"neuron {index + 1}  b={layer.bias[index]:+.2f}", fontsize=8)
    clipped = bool(np.abs(tiles).max() > limit)
    colourbar = figure.colorbar(
        image, ax=axes, shrink=0.8, aspect=30, extend="both" if clipped else "neither"
    )
    colourbar.set_label("weight (red +, blue −, white 0)")
    figure.suptitle(
        f"Layer {plain_text(layer.name)}: the {n} neurons' weights, one per pixel "
        f"(shared scale ±{limit:.2f})"
    )
    return figure


def plot_first_layer_weights(layer: DenseLayer, image_shape: tuple[int, int], out) -> Path:
    """One tile per neuron of ``layer`` (the first Dense layer), on one scale centred on 0.

    Drawn as pixels (:mod:`denselab.raster`): each weight one square of the colour map.
    """
    from .raster import SMALL_PX, TITLE_PX, Canvas, colourize

    tiles, limit = weight_tiles(layer, image_shape)
    rows, columns = _tile_grid(len(tiles))
    scale = max(1, round(140 / max(image_shape)))
    tile_height, tile_width = (side * scale for side in image_shape)
    cell_width, cell_height = tile_width + 16, tile_height + SMALL_PX + 16
    top, bar_x = 40, 14 + columns * cell_width + 18
    canvas = Canvas(bar_x + 120, top + rows * cell_height + 10)
    coloured = colourize(tiles, WEIGHT_CMAP, -limit, limit)
    for index, tile in enumerate(coloured):
        row, column = divmod(index, columns)
        x, y = 14 + column * cell_width, top + row * cell_height + SMALL_PX + 6
        canvas.paste(tile, x, y, scale)
        title = f"neuron {index + 1}  b={layer.bias[index]:+.2f}"
        canvas.text(x + tile_width / 2, y - 5, title, SMALL_PX, anchor="md")
    bar_height = int(rows * cell_height * 0.8)
    canvas.colour_bar(
        bar_x,
        top + (rows * cell_height - bar_height) // 2,
        20,
        bar_height,
        WEIGHT_CMAP,
        -limit,
        limit,
        "weight (red +, blue −, white 0)",
        arrows=bool(np.abs(tiles).max() > limit),
    )
    canvas.text(
        canvas.image.width / 2,
        12,
        f"Layer {layer.name}: the {len(tiles)} neurons' weights, one per pixel "
        f"(shared scale ±{limit:.2f})",
        TITLE_PX,
        anchor="mt",
    )
    return _saved(canvas, out)


def _saved(canvas, out: str | Path) -> Path:
    path = canvas.save(out)
    folders.add_to_manifest(path.parent, path.name)  # a run folder's manifest, if it has one
    return path


# --- classifier mistakes ---------------------------------------------------------------------


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of shape (n_classes, n_classes): row = true class, column = predicted class."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return counts


def plot_confusion(y_true, y_pred, class_names: list[str], out: str | Path) -> Path:
    """The confusion matrix with a count in every cell; the diagonal holds the right answers.

    Drawn as pixels (:mod:`denselab.raster`): one square of the Blues colour map per cell.
    """
    from .raster import TEXT_PX, TITLE_PX, Canvas, colourize, font_of_size

    n = len(class_names)
    names = [str(name) for name in class_names]
    counts = confusion_matrix(y_true, y_pred, n)
    cell = max(16, min(64, 640 // n))
    count_px = max(7, min(12, cell // 4))
    longest = max(font_of_size(TEXT_PX).getlength(name) for name in names)
    turned = longest > 2 * TEXT_PX  # long names go under the columns at 45 degrees
    left = int(longest) + 44
    top, grid = 40, n * cell
    bottom = (int(longest * 0.72) if turned else TEXT_PX) + 50
    canvas = Canvas(left + grid + 150, top + grid + bottom)
    colours = colourize(counts, "Blues", 0, counts.max())
    canvas.paste(colours, left, top, cell)
    threshold = counts.max() / 2
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if count > threshold else "black"
        x, y = left + (column + 0.5) * cell, top + (row + 0.5) * cell
        canvas.text(x, y, str(count), count_px, anchor="mm", fill=colour)
    for index, name in enumerate(names):
        middle = index * cell + cell / 2
        canvas.text(left - 8, top + middle, name, anchor="rm")
        if turned:
            canvas.turned_text(left + middle + 4, top + grid + 6, name, 45, anchor="rt")
        else:
            canvas.text(left + middle, top + grid + 6, name, anchor="mt")
    canvas.text(left + grid / 2, canvas.image.height - 8, "predicted class", anchor="md")
    canvas.turned_text(12, top + grid / 2, "true class", 90)
    accuracy = np.trace(counts) / max(1, counts.sum())
    title = f"Confusion matrix: {counts.sum():,} test images, accuracy {accuracy:.1%}"
    canvas.text(left + grid / 2, 12, title, TITLE_PX, anchor="mt")
    bar_height = int(grid * 0.8)
    canvas.colour_bar(
        left + grid + 30,
        top + (grid - bar_height) // 2,
        20,
        bar_height,
        "Blues",
        0,
        int(counts.max()),
        "number of images",
    )
    return _saved(canvas, out)


def plot_misclassified(
    images: np.ndarray,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    out: str | Path,
    limit: int = 24,
) -> Path:
    """A gallery of the first ``limit`` wrongly classified images, with true/predicted label.

    images : (n_samples, height, width); probabilities : (n_samples, n_classes).
    """
    from .raster import SMALL_PX, TITLE_PX, Canvas, colourize

    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    shown = wrong[:limit]
    columns = 6
    rows = max(1, math.ceil(len(shown) / columns))
    scale = max(1, round(160 / max(images.shape[1:3])))
    image_height, image_width = (side * scale for side in images.shape[1:3])
    cell_width, title_height = max(image_width, 170) + 6, 2 * SMALL_PX + 14
    cell_height = image_height + title_height + 8
    top = 36
    canvas = Canvas(columns * cell_width + 12, top + rows * cell_height)
    for slot, index in enumerate(shown):
        row, column = divmod(slot, columns)
        x, y = 6 + column * cell_width, top + row * cell_height
        confidence = probabilities[index, predicted[index]]
        lines = (
            f"#{index}: true {class_names[y_true[index]]}",
            f"predicted {class_names[predicted[index]]} ({confidence:.0%})",
        )
        for number, line in enumerate(lines):
            middle = x + cell_width / 2
            canvas.text(middle, y + number * (SMALL_PX + 4), line, SMALL_PX + 1, "mt", "#a01010")
        pixels = colourize(images[index], "gray_r", 0, 1)
        left = x + (cell_width - image_width) // 2
        canvas.paste(pixels, left, y + title_height, scale, frame=False)
    title = f"{len(wrong)} of {len(y_true):,} test images misclassified" + (
        f" (first {len(shown)} shown)" if len(wrong) > len(shown) else ""
    )
    canvas.text(canvas.image.width / 2, 10, title, TITLE_PX, anchor="mt")
    return _saved(canvas, out)


def plot_prediction(
    image: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    out: str | Path,
    true_label: int | None = None,
    title: str = "input",
) -> Path:
    """One input image beside the model's class probabilities as horizontal bars.

    image : (height, width) in [0, 1]; probabilities : (n_classes,). Drawn as pixels
    (:mod:`denselab.raster`): the two panels matplotlib would draw, in a tenth of the time.
    """
    from .raster import TEXT_PX, TITLE_PX, Canvas, colourize, font_of_size

    names, predicted = [str(name) for name in class_names], int(np.argmax(probabilities))
    truth = f" (true: {names[true_label]})" if true_label is not None else ""
    right_title = f"Prediction: {names[predicted]} ({probabilities[predicted]:.1%})"
    scale = max(1, round(280 / max(image.shape)))
    image_height, image_width = (side * scale for side in image.shape)
    left_width = max(image_width, font_of_size(TITLE_PX).getlength(title + truth))
    name_width = max(font_of_size(TEXT_PX).getlength(name) for name in names)
    top, width, height = 40, 400, max(image_height, 20 * len(names))  # the bars' frame
    x = int(14 + left_width + 40 + TEXT_PX + name_width + 12)
    title_overhang = (font_of_size(TITLE_PX).getlength(right_title) - width) / 2
    canvas = Canvas(x + width + max(16, title_overhang + 8), top + height + 2 * TEXT_PX + 30)
    image_y = top + (height - image_height) // 2
    pixels = colourize(image, "gray_r", 0, 1)
    canvas.paste(pixels, 14 + (left_width - image_width) // 2, image_y, scale)
    canvas.text(14 + left_width / 2, image_y - 8, title + truth, TITLE_PX, anchor="md")
    colours = ["#2a9d3a" if i == predicted else "#9bb7d4" for i in range(len(names))]
    # x_max 1.18: room after a whole bar for its value
    canvas.horizontal_bars(x, top, width, height, probabilities, names, colours, x_max=1.18)
    canvas.text(x + width / 2, top + height + TEXT_PX + 14, "probability", anchor="mt")
    canvas.turned_text(x - 14 - name_width - TEXT_PX / 2, top + height / 2, "class", 90)
    canvas.text(x + width / 2, top - 8, right_title, TITLE_PX, anchor="md")
    return _saved(canvas, out)


# --- the line lessons ----------------------------------------------------------------------


def plot_line_fit(predict, xs: np.ndarray, ys: np.ndarray, out: str | Path) -> Path:
    """The function a one-input regressor learned, drawn over its training points.

    predict : callable taking x of shape (n, 1) and returning y of shape (n, 1).
    """
    xs, ys = np.ravel(xs), np.ravel(ys)
    grid = np.linspace(min(xs.min(), 0) - 1, max(xs.max(), 10) + 1, 200, dtype=np.float32)
    learned = np.ravel(predict(grid.reshape(-1, 1)))
    at_ten = float(np.ravel(predict(np.array([[10.0]], dtype=np.float32)))[0])
    figure = _figure(6.0, 4.2)
    ax = figure.subplots()
    ax.plot(grid, learned, color=TRAIN_COLOUR, label="what the model learned")
    ax.scatter(xs, ys, color=VALIDATION_COLOUR, zorder=3, label="training points")
    ax.scatter([10.0], [at_ten], marker="*", s=140, color="#2a9d3a", zorder=3)
    label = f"x = 10 → {at_ten:.3f}"
    ax.annotate(label, (10.0, at_ten), xytext=(-110, 0), textcoords="offset points", va="center")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title("The learned function and the six points of y = 2x - 1")
    return _save(figure, out)


# --- a whole run ---------------------------------------------------------------------------
