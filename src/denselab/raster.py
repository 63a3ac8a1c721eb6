"""Pictures drawn straight into pixels: arrays coloured by matplotlib's colour maps, text in
matplotlib's own typeface (DejaVu Sans) drawn by Pillow, written as one PNG.

A grid of small images (weight tiles, a confusion matrix, a gallery of mistakes) drawn as a
matplotlib figure costs an Axes, a layout pass and an antialiased resampling per tile: about
ten times the pixels' own cost. Here each image is its array scaled up by whole pixels, so
each weight or input pixel is one sharp square, as ``imshow(interpolation="nearest")``
draws it, and the colours are the colour map's exactly.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np

from . import fileio

# matplotlib's default sizes at 100 dpi: 10 pt text is 14 px, 12 pt titles 17 px.
TEXT_PX, TITLE_PX, SMALL_PX = 14, 17, 11


def colourize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """``values`` of any shape as RGB bytes, shape ``(*values.shape, 3)``: the colour map
    ``cmap`` over [vmin, vmax], values beyond it at the end colours (as ``imshow``)."""
    from matplotlib import colormaps

    scaled = (np.asarray(values, dtype=np.float64) - vmin) / ((vmax - vmin) or 1.0)
    return np.asarray(colormaps[cmap](np.clip(scaled, 0.0, 1.0), bytes=True))[..., :3]


def nice_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """Round tick values inside [low, high], steps of 1, 2, 2.5 or 5 times a power of ten."""
    span = high - low
    if span <= 0:
        return [low]
    raw = span / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 2.5, 5, 10) if f * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _tick_labels(ticks: list[float]) -> list[str]:
    """Ticks written as matplotlib writes them: the decimals the step needs, a true minus."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step)))
    decimals += not float(round(step * 10**decimals, 9)).is_integer()  # 0.25, 2.5
    return [f"{tick:.{decimals}f}".replace("-", "−") for tick in ticks]


@cache
def font_of_size(size: int):
    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf", size)


class Canvas:
    """A white RGB picture of ``width`` x ``height`` pixels to paste images and write text on."""

    def __init__(self, width: int, height: int):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (int(width), int(height)), "white")
        self.draw = ImageDraw.Draw(self.image)

    def __repr__(self) -> str:
        return f"Canvas({self.image.width}x{self.image.height})"

    def paste(self, rgb: np.ndarray, x: int, y: int, scale: int = 1, frame: bool = True) -> None:
        """An (h, w, 3) uint8 array at (x, y), each pixel a ``scale`` x ``scale`` square."""
        from PIL import Image

        big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        self.image.paste(Image.fromarray(np.ascontiguousarray(big)), (int(x), int(y)))
        if frame:
            height, width = big.shape[:2]
            self.draw.rectangle((x - 1, y - 1, x + width, y + height), outline="black")

    def text(self, x, y, text: str, size: int = TEXT_PX, anchor: str = "la", fill="black"):
        """``text`` at (x, y); ``anchor`` as Pillow's (``"mm"``: centred, ``"rm"``: right end)."""
        self.draw.text((x, y), str(text), font=font_of_size(size), anchor=anchor, fill=fill)

    def turned_text(self, x, y, text: str, angle: float, size: int = TEXT_PX, anchor="mm"):
        """``text`` turned ``angle`` degrees anticlockwise, its box placed by ``anchor``
        (``"mm"``: centred on (x, y); ``"rt"``: its top right corner at (x, y))."""
        from PIL import Image, ImageDraw

        font = font_of_size(size)
        left, top, right, bottom = font.getbbox(str(text))
        flat = Image.new("L", (right - left + 2, bottom - top + 2), 0)
        ImageDraw.Draw(flat).text((1 - left, 1 - top), str(text), font=font, fill=255)
        turned = flat.rotate(angle, expand=True, resample=Image.BICUBIC)
        width, height = turned.size
        dx = {"l": 0, "m": width // 2, "r": width}[anchor[0]]
        dy = {"t": 0, "m": height // 2, "b": height}[anchor[1]]
        self.image.paste((0, 0, 0), (int(x - dx), int(y - dy)), turned)

    def colour_bar(self, x, y, width, height, cmap, vmin, vmax, label, arrows=False):
        """A vertical colour bar (``vmax`` at the top) with round ticks and a turned label;
        ``arrows`` mark values beyond both ends, shown at the end colours."""
        steps = colourize(np.linspace(vmax, vmin, int(height)), cmap, vmin, vmax)
        self.paste(np.repeat(steps[:, None, :], int(width), axis=1), x, y)
        if arrows:
            ends = ((y - width, y - 1, vmax), (y + height + width, y + height, vmin))
            for tip, base, value in ends:
                colour = tuple(int(c) for c in colourize(np.array(value), cmap, vmin, vmax))
                triangle = [(x, base), (x + width - 1, base), (x + (width - 1) / 2, tip)]
                self.draw.polygon(triangle, fill=colour, outline="black")
        ticks = nice_ticks(vmin, vmax)
        for tick, shown in zip(ticks, _tick_labels(ticks), strict=True):
            ty = y + (vmax - tick) / ((vmax - vmin) or 1.0) * (height - 1)
            self.draw.line((x + width, ty, x + width + 4, ty), fill="black")
            self.text(x + width + 7, ty, shown, anchor="lm")
        self.turned_text(x + width + 62, y + height / 2, label, 90)

    def horizontal_bars(self, x, y, width, height, values, names, colours, x_max):
        """A frame with its top left corner at (x, y) holding one bar per value, top to
        bottom, as matplotlib's ``barh`` draws them: each bar's name left of the frame, its
        value (3 decimals) at its end; round ticks below from 0 to ``x_max``, the right edge."""
        row = height / len(values)
        for index, (value, name, colour) in enumerate(zip(values, names, colours, strict=True)):
            middle, end = y + (index + 0.5) * row, x + value / x_max * width
            if end - x >= 0.5:
                self.draw.rectangle((x, middle - 0.4 * row, end, middle + 0.4 * row), fill=colour)
            self.text(end + 4, middle, f"{value:.3f}", SMALL_PX, anchor="lm")
            self.draw.line((x - 4, middle, x, middle), fill="black")
            self.text(x - 7, middle, name, anchor="rm")
        bottom = y + height
        self.draw.rectangle((x, y, x + width, bottom), outline="black")
        ticks = nice_ticks(0.0, x_max)
        for tick, shown in zip(ticks, _tick_labels(ticks), strict=True):
            tx = x + tick / x_max * width
            self.draw.line((tx, bottom, tx, bottom + 4), fill="black")
            self.text(tx, bottom + 7, shown, anchor="mt")

    def save(self, out: str | Path) -> Path:
        """Write the PNG atomically (a fast zlib level: these pictures are mostly flat)."""
        from PIL.PngImagePlugin import PngInfo

        from .plots import PNG_SOFTWARE

        info = PngInfo()
        info.add_text("Software", PNG_SOFTWARE)  # see denselab.plots.is_our_png
        return fileio.write_with(
            out, lambda tmp: self.image.save(tmp, "PNG", compress_level=3, pnginfo=info)
        )
