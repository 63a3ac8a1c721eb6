"""Safe file handling: atomic writes, and reads that a damaged file cannot hang or crash.

Every artifact goes to a temporary file beside its target, then is renamed, so an interrupted
command never leaves a truncated file where a good one stood. HDF5 files are first read in a
child process (:class:`Hdf5Probe`), because the HDF5 C library can hang on a damaged file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import DenselabError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or fail with a clear message when it cannot be a folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DenselabError(f"output folder {folder} is a file; choose another --out")
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
    target = Path(target)
    if target.is_dir():
        raise DenselabError(f"{target} is a folder; give a file name instead")
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
        _fsync(tmp)
        os.replace(tmp, target)
    except OSError as error:
        raise DenselabError(_cannot_write(target, error)) from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()
    _fsync_folder(target.parent)


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
    return write_text(target, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def write_with(target: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Atomically write ``target`` through ``writer(tmp_path)`` (e.g. ``model.save``)."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (``history.json``, ``report.json``, ...) or say it is missing or damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DenselabError(f"{path} is missing") from None
    except OSError as error:
        raise DenselabError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DenselabError(
            f"{path} is damaged ({str(error)[:80]}); delete it or run the step that writes it"
        ) from None


def _jsonable(value: Any) -> Any:
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


def _fsync(path: Path) -> None:
    """Put the bytes on disk before the rename, so a power cut cannot leave an empty file."""
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _cannot_write(target: Path, error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        advice = "free some space and run it again"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose another --out"
    else:
        advice = "check the folder and run it again"
    return f"cannot write {target}: {reason}; nothing was changed there, {advice}"


# --- reading HDF5 in quarantine -------------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_PROBE_SECONDS = 60.0
HDF5_PROBE_MEMORY = 4 << 30  # bytes of address space for the probe process

# Run in a child process: read every attribute and dataset of the file (or of a member of a
# zip), then print the ``model_config`` attribute. The HDF5 C library can loop forever or
# crash on a damaged file; in a child, that costs a timeout, not the user's process.
_HDF5_PROBE = """
import io, resource, sys, zipfile
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import h5py
path, member = sys.argv[1], sys.argv[2]
source = io.BytesIO(zipfile.ZipFile(path).read(member)) if member else path

def read(name, item):
    for key in item.attrs:
        item.attrs[key]
    if isinstance(item, h5py.Dataset):
        item[()]

with h5py.File(source, "r") as file:
    read("/", file)
    file.visititems(read)
    config = file.attrs.get("model_config")
if isinstance(config, bytes):
    config = config.decode()
sys.stdout.write(config if isinstance(config, str) else "")
"""


class Hdf5Probe:
    """Read an HDF5 file completely in a child process, started at once, awaited by ``result``.

    Once the probe has read every byte without trouble, the same library reading the same
    file in this process is safe. Started early, it runs while Keras is imported.
    """

    def __init__(self, path: str | os.PathLike, member: str = ""):
        import subprocess
        import sys

        self.path = Path(path)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-c", _HDF5_PROBE, str(self.path), member, str(HDF5_PROBE_MEMORY)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def result(self, timeout: float | None = None) -> str:
        """The file's ``model_config`` attribute ("" if none), or a DenselabError."""
        import subprocess

        timeout = HDF5_PROBE_SECONDS if timeout is None else timeout

        try:
            out, err = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise DenselabError(
                f"cannot read model {self.path}: the HDF5 library was still reading it after "
                f"{timeout:.0f} s (a damaged file); re-save it"
            ) from None
        if self._process.returncode < 0:
            raise DenselabError(
                f"cannot read model {self.path}: the HDF5 library crashed on it "
                f"(signal {-self._process.returncode}); the file is damaged, re-save it"
            )
        if self._process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or ["unknown error"]
            raise DenselabError(
                f"cannot read model {self.path}: not an HDF5 model ({lines[-1][:160]}); re-save it"
            )
        return out.decode(errors="replace")

    def cancel(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def has_hdf5_signature(path: str | os.PathLike) -> bool:
    """Whether the file starts like HDF5 (the signature sits at 0, 512, 1024, 2048, ...)."""
    with open(path, "rb") as stream:
        offset = 0
        while True:
            stream.seek(offset)
            head = stream.read(8)
            if len(head) < 8:
                return False
            if head == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2


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
