"""The one place denselab talks to a person: headings, sentences, tables and progress bars.

Library code never calls ``print``; it calls these functions. ``quiet()`` silences them (the
CLI's ``--json`` mode, where standard output must hold exactly one JSON object).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_console = Console(highlight=False)
_quiet = False


def quiet(enabled: bool = True) -> None:
    """Silence (or restore) everything this module would show."""
    global _quiet
    _quiet = enabled


@contextlib.contextmanager
def quieted() -> Iterator[None]:
    """Nothing shows inside this block: a step whose own lines would repeat a summary, or a
    library call whose numbers are wanted, not its text."""
    global _quiet
    before, _quiet = _quiet, True
    try:
        yield
    finally:
        _quiet = before


def is_quiet() -> bool:
    return _quiet


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (rich then draws into the notebook)."""
    return _console.is_jupyter


def plain(text: str) -> str:
    """Text from a file, safe to show: rich markup escaped, control characters as escapes."""
    from rich.markup import escape

    return escape(printable(text))


def printable(text: str, keep: str = "\n\t") -> str:
    """``text`` with every control character (but those in ``keep``) shown as an escape, so
    that a name from a file cannot retitle the terminal or move its cursor (``ESC ]0;``)."""
    return "".join(
        ch if ch.isprintable() or ch in keep else ch.encode("unicode_escape").decode("ascii")
        for ch in str(text)
    )


# Below, ``say``, ``warn`` and ``heading`` take rich markup (``[bold]``): a name from a file
# goes in through :func:`plain`. Control characters are escaped in everything shown, and
# text whose markup does not parse is shown as it is, never as a traceback.


def heading(text: str) -> None:
    if not _quiet:
        _print(_console, f"[bold]{printable(text)}", rule=True)


def say(text: str = "", style: str | None = None) -> None:
    if not _quiet:
        _print(_console, printable(text), style=style, markup=style is None, soft_wrap=True)


def code(text: str) -> None:
    """Show arithmetic or code verbatim (no markup), indented."""
    if not _quiet:
        for line in printable(text).splitlines():
            _console.print("    " + line, markup=False, highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    if not _quiet:
        console = Console(stderr=True, highlight=False)
        _print(console, f"[yellow]note:[/] {printable(text)}", soft_wrap=True)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table; every cell and the title are plain text (no markup)."""
    from rich.text import Text

    if _quiet:
        return
    grid = Table(title=Text(printable(title)), title_justify="left", show_lines=False)
    for index, column in enumerate(columns):
        numeric = all(_looks_numeric(row[index]) for row in rows)
        grid.add_column(
            Text(printable(column)), justify="right" if numeric else "left", overflow="fold"
        )
    for row in rows:
        grid.add_row(*(Text(printable(str(cell))) for cell in row))
    _console.print(grid)


def _print(console: Console, text: str, rule: bool = False, **options: Any) -> None:
    from rich.errors import MarkupError
    from rich.text import Text

    try:
        if rule:
            console.rule(text)
        else:
            console.print(text, **options)
    except MarkupError:  # a "[" from a file that did not go through plain(): shown as it is
        if rule:
            console.rule(Text(text))
        else:
            console.print(text, **{**options, "markup": False})


def _looks_numeric(cell: Any) -> bool:
    text = str(cell).replace(",", "").replace("%", "").strip()
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None):
        self._progress, self._task = progress, task

    def advance(self, steps: int = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, **fields)

    def update(self, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, **fields)


class _Lines:
    """A progress "bar" for notebooks: one line at each quarter of the work, and at its end."""

    def __init__(self, description: str, total: int):
        self._description, self._total, self._done = description, max(1, total), 0
        self._started = time.perf_counter()
        self._next = self._total / 4

    def advance(self, steps: int = 1, **fields: Any) -> None:
        self._done += steps
        if self._done >= min(self._next, self._total) and not _quiet:
            while self._next <= self._done:
                self._next += self._total / 4
            seconds = time.perf_counter() - self._started
            status = fields.get("status", "")
            print(f"{self._description} {self._done}/{self._total}  {status}  ({seconds:.1f} s)")

    def update(self, **fields: Any) -> None:
        pass


@contextlib.contextmanager
def progress(description: str, total: int, unit: str = "") -> Iterator[_Bar]:
    """A progress bar on standard error; ``bar.advance(status="loss 0.31")`` moves it."""
    if _quiet or not sys.stderr:
        yield _Bar(None, None)
        return
    if in_notebook():  # rich's live bar needs ipywidgets there; a few plain lines need nothing
        yield _Lines(description, total)
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, status="")
        yield _Bar(bar, task)
