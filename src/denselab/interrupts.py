"""Ctrl-C and ``kill``: one way to stop long work, for training, the search and its workers.

Inside :func:`stoppable`, SIGINT (and SIGTERM, where asked) raise ``KeyboardInterrupt`` and
are also remembered: a library in the middle of a C call or a database call may catch the
exception on its way up, so long loops call :func:`check` at safe points to raise it again.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_requested = threading.Event()


def _raise_keyboard_interrupt(signum, frame):
    _requested.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def stoppable(sigterm: bool = True) -> Iterator[None]:
    """Within this block Ctrl-C (and ``kill``, with ``sigterm``) stop the work.

    Outside the main thread signals cannot be handled, so the block only clears the flag.
    """
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)
    previous = {signum: signal.signal(signum, _raise_keyboard_interrupt) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def install_for_worker() -> None:
    """A worker process: Ctrl-C raises ``KeyboardInterrupt`` and is remembered, for good."""
    _requested.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)


def requested() -> bool:
    """Whether a stop was asked for since the current block began."""
    return _requested.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` again if a stop was asked for and something swallowed it."""
    if _requested.is_set():
        raise KeyboardInterrupt
