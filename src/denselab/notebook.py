"""How denselab's objects show in a notebook: the HTML behind their ``_repr_html_``.

``Run``, ``DenseNetwork``, ``Explanation``, ``NeuronExplanation`` and the deploy report each
call one function here, so a notebook shows a table, a picture and a formula, never a dump
of arrays. :func:`picture` shows a run's PNG and :func:`page` an explorer page. The
terminal's text for the same results is :mod:`denselab.views`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .views import deploy_rows, target_line


def html_table(columns, rows, title: str | None = None) -> str:
    """An HTML table (every cell escaped); ``title`` becomes its caption."""
    from html import escape

    caption = f'<caption style="text-align:left">{escape(title)}</caption>' if title else ""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Picture:
    """A PNG for a notebook, shrunk to ``width`` pixels and 64 colours (a small notebook)."""

    def __init__(self, path, width: int = 720):
        self.path, self.width = path, width

    def __repr__(self) -> str:
        return f"Picture({str(self.path)!r})"

    def png(self) -> bytes:
        import io

        from PIL import Image

        with Image.open(self.path) as image:
            image = image.convert("RGB")
            if image.width > self.width:
                height = round(image.height * self.width / image.width)
                image = image.resize((self.width, height), Image.LANCZOS)
            buffer = io.BytesIO()
            image.quantize(colors=64).save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def html(self) -> str:
        import base64

        return f'<img src="data:image/png;base64,{base64.b64encode(self.png()).decode()}">'


def picture(path, width: int = 720) -> Picture:
    """Show a PNG in a notebook (``picture(run.path / "weights.png")``), at most ``width`` wide."""
    return Picture(path, width)


def network_html(network) -> str:
    """A :class:`~denselab.model.DenseNetwork` as a layer table with the lesson's counts."""
    from .explain import neuron_name

    rows = [
        (
            f"{number}: {layer.name}",
            f"{layer.n_inputs} → {layer.n_neurons}",
            layer.activation,
            tuple(layer.kernel.shape),
            f"{layer.kernel.size:,}",
            f"{layer.bias.size:,}",
            f"{neuron_name(number, 0)} … {neuron_name(number, layer.n_neurons - 1)}",
        )
        for number, layer in enumerate(network.layers, start=1)
    ]
    columns = ["layer", "inputs → neurons", "activation", "kernel shape", "[0].size", "[1].size"]
    title = f"{network!r}: {network.n_params:,} parameters (get_weights()[0] is the kernel)"
    return html_table(columns + ["neurons"], rows, title)


def run_html(run) -> str:
    """A :class:`~denselab.runs.Run`: its numbers, learning curves and layer table."""
    from html import escape

    from .data import stand_in_note
    from .model import dense_network

    metrics = run.metrics
    shown = [
        f"{key} {metrics[key]:.4f}"
        for key in ("train_accuracy", "val_accuracy", "train_mae", "val_mae", "train_loss")
        if isinstance(metrics.get(key), float)
    ][:3]
    head = (
        f"<p><b>Run</b> <code>{escape(str(run.path))}</code>: {escape(run.config.dataset)}, "
        f"{metrics.get('epochs_done', '?')} epochs; {', '.join(shown)}</p>"
    )
    note = stand_in_note(run.config.dataset)
    parts = [head] + ([f"<p><i>{escape(note)}.</i></p>"] if note else [])
    curves = run.path / "curves.png"
    if curves.exists():
        parts.append(Picture(curves, width=640).html())
    parts.append(network_html(dense_network(run.model)))
    if run.pictures:
        names = ", ".join(escape(p.name) for p in run.pictures)
        parts.append(f"<p>pictures in the run folder: {names}</p>")
    return "\n".join(parts)


def neuron_html(neuron) -> str:
    """One neuron's arithmetic: its largest input × weight terms, the rest summed, the bias."""
    names = neuron.input_names or [f"x{i + 1}" for i in range(len(neuron.inputs))]
    terms = neuron.contributions
    order = neuron.top_terms(8) if len(terms) > 10 else np.arange(len(terms))
    rows = [
        (names[i], f"{neuron.inputs[i]:.4f}", f"{neuron.weights[i]:+.4f}", f"{terms[i]:+.4f}")
        for i in order
    ]
    if len(order) < len(terms):
        rest = np.delete(terms, order)
        rows.append((f"the other {len(rest)} inputs", "", "", f"{rest.sum():+.4f}"))
    rows.append(("bias", "", "", f"{neuron.bias:+.4f}"))
    rows.append(("z = sum", "", "", f"{neuron.z:.6f}"))
    if neuron.activation != "linear":
        rows.append((f"output = {neuron.activation}(z)", "", "", f"{neuron.output:.6f}"))
    title = (
        f"{neuron.name} ({neuron.layer}, {neuron.activation}): "
        f"z = x1·w1 + x2·w2 + … + bias, largest terms first"
    )
    return f"<div>{html_table(['input', 'x', 'weight w', 'x × w'], rows, title)}</div>"


def explanation_html(why) -> str:
    """A whole prediction by hand: the outputs beside Keras's, then the winning neuron's sum."""
    best = why.output_neuron
    outputs = [
        (n.name, n.neuron, f"{n.output:.6f}", f"{k:.6f}")
        for n, k in zip(why.layers[-1], why.keras_prediction, strict=True)
    ]
    table = html_table(["output neuron", "index (a class)", "by hand", "model.predict"], outputs)
    head = (
        f"<p><b>Explanation</b>: the largest output is {best.name}, index {best.neuron} (a "
        f"classifier's class {best.neuron}) = {best.output:.6f}; by hand and "
        f"<code>model.predict</code> differ by at most "
        f"{why.max_abs_diff:.1e}. Any neuron: <code>why.layers[l][j]</code>, "
        f"<code>.formula()</code>.</p>"
    )
    return head + table + neuron_html(best)


def deploy_html(result: dict) -> str:
    """The deploy report as a table, and the bit-exactness verdict."""
    from html import escape

    verdict = "bit-exact" if result.get("c_vs_tflm_differing_samples") == 0 else "DIFFERENT"
    lines = [f"C engine vs TFLite Micro on every test sample: <b>{verdict}</b>"]
    if result.get("target"):
        lines.append(escape(target_line(result["target"])))
    title = f"deploy report: {result.get('folder', '')}"
    return html_table(["", "value"], deploy_rows(result), title) + "".join(
        f"<p>{line}</p>" for line in lines
    )


class Page:
    """The explorer page in a notebook: an iframe of the written file, or of its text inline."""

    def __init__(self, path, height: int = 760, inline: bool | None = None):
        self.path, self.height = Path(path), height
        # Colab serves no local files to its outputs, so there the page goes in as text.
        self.inline = "google.colab" in sys.modules if inline is None else inline

    def __repr__(self) -> str:
        return f"Page({str(self.path)!r})"

    def _repr_html_(self) -> str:
        from html import escape

        if self.inline:
            source = f'srcdoc="{escape(self.path.read_text(encoding="utf-8"))}"'
        else:
            source = f'src="{escape(os.path.relpath(self.path).replace(os.sep, "/"))}"'
        return (
            f'<iframe {source} width="100%" height="{self.height}" '
            'style="border: 1px solid #d8dde8; border-radius: 8px"></iframe>'
            f"<p>The explorer page, one offline file: <code>{escape(str(self.path))}</code></p>"
        )


def page(path, height: int = 760, inline: bool | None = None) -> Page:
    """Show an explorer page (``denselab explore``'s file) in a notebook.

    By default the iframe points at the file (small notebooks; Jupyter serves it), and in
    Colab it holds the page's text (``inline=True`` forces that anywhere).
    """
    return Page(path, height, inline)
