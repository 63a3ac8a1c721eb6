"""Safe files: every artifact goes to a temporary file beside its target and is renamed, so an
interrupted command never leaves a truncated file where a good one stood; devices, pipes and
sockets are never replaced; JSON never holds NaN.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import DenselabError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or fail with a clear message when it cannot be a folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        kind = special_kind(folder)
        what = "a file" if kind is None else kind
        raise DenselabError(f"output folder {folder} is {what}; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DenselabError(f"cannot create folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise DenselabError(f"folder {folder} is not writable; choose another --out")
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    If the block raises (a full disk, Ctrl-C, a bug in the writer), the temporary file is
    removed and ``target`` keeps its previous content, or stays absent.
    """
    target = replaceable_file(target)
    ensure_dir(target.parent if str(target.parent) else ".")
    tmp = None
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent
        )
        tmp = Path(tmp_name)
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; an artifact gets the usual 0644
        os.close(fd)
        yield tmp
        fsync(tmp)
        os.replace(tmp, target)
    except OSError as error:
        raise DenselabError(cannot_write(target, error)) from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()
    fsync_folder(target.parent)


def cache_dir() -> Path:
    """denselab's cache folder: ``$DENSELAB_CACHE``, else ``~/.cache/denselab``."""
    base = os.environ.get("DENSELAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "denselab",
    )
    return Path(base)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp, open(tmp, "wb") as stream:
        stream.write(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    return write_text(target, to_json(obj, indent=2) + "\n")


def to_json(obj: Any, indent: int | None = None, compact: bool = False) -> str:
    """``obj`` as JSON text, always valid JSON: NaN and infinity become ``null`` (JSON has no
    NaN; ``json.dumps`` would write a bare ``NaN`` that other readers refuse)."""
    separators = (",", ":") if compact else None
    return json.dumps(
        _finite(obj), indent=indent, separators=separators, default=jsonable, allow_nan=False
    )


def _finite(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def write_with(target: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Atomically write ``target`` through ``writer(tmp_path)`` (e.g. ``model.save``)."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


MAX_JSON_BYTES = 64 << 20  # run.json, history.json, report.json: kilobytes as denselab writes


def check_regular(path: str | os.PathLike) -> Path:
    """``path`` if it is a regular file (or missing: the reader says so); a device, pipe or
    socket in its place is refused, never opened (``/dev/zero`` never ends, a FIFO blocks)."""
    path = Path(path)
    kind = special_kind(path)
    if kind is not None:
        raise DenselabError(f"{path} is {kind}, not a file; give a regular file")
    return path


def load_json(path: str | os.PathLike, limit: int = MAX_JSON_BYTES) -> Any:
    """``json.loads`` of a small regular file. Raises OSError (missing, unreadable) or
    ValueError (not JSON, nested too deeply, larger than ``limit``), as a reader expects;
    a device or pipe is a :class:`DenselabError`."""
    path = check_regular(path)
    with open(path, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (``history.json``, ``report.json``, ...) or say it is missing or damaged."""
    path = Path(path)
    try:
        return load_json(path)
    except FileNotFoundError:
        raise DenselabError(f"{path} is missing") from None
    except OSError as error:
        raise DenselabError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DenselabError(
            f"{path} is damaged ({str(error)[:80]}); delete it or run the step that writes it"
        ) from None


def jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def fsync(path: Path) -> None:
    """Put the bytes on disk before the rename, so a power cut cannot leave an empty file."""
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def cannot_write(target: Path, error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        advice = "free some space and run it again"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose another --out"
    else:
        advice = "check the folder and run it again"
    return (
        f"cannot write {as_the_user_sees_it(target)}: {reason}; nothing was changed there, {advice}"
    )


_SPECIAL_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it is neither a regular file nor a folder (None otherwise)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), None)


def replaceable_file(target: str | os.PathLike) -> Path:
    """The regular file that writing ``target`` replaces: a symbolic link is followed to the
    file it names (so the link stays a link), and a folder, device, pipe or socket is refused:
    a rename would swap ``/dev/null`` itself for a regular file."""
    target = Path(target)
    if target.is_symlink():
        try:
            os.stat(target)
        except OSError as error:
            if error.errno == errno.ELOOP:  # a link to a link ... back to itself
                raise DenselabError(f"{target} is a loop of symbolic links") from None
        real = Path(os.path.realpath(target))
        if not real.parent.is_dir():
            raise DenselabError(f"{target} is a symbolic link to {real}, which cannot be written")
        target = real
    if target.is_dir():
        raise DenselabError(f"{target} is a folder; give a file name instead")
    kind = special_kind(target)
    if kind is not None:
        raise DenselabError(
            f"{target} is {kind}, not a regular file; denselab never replaces one: "
            "choose another --out"
        )
    return target


STAGED: dict[Path, Path] = {}  # staging folder -> the folder it becomes (for messages)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_the_user_sees_it(path: Path) -> Path:
    """A path inside a staging folder, as the user knows it (inside the target)."""
    for staging, target in list(STAGED.items()):
        if path == staging or staging in path.parents:
            return target / path.relative_to(staging)
    return path


@contextlib.contextmanager
def captured_stderr():
    """Capture what C++ code writes to file descriptor 2 into ``captured["text"]``."""
    captured = {"text": ""}
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured["text"] = sink.read().decode(errors="replace")
