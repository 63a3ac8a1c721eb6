"""Safe file handling: atomic files, output folders as transactions, and reads that a damaged
file cannot hang or crash.

Every artifact goes to a temporary file beside its target, then is renamed, so an interrupted
command never leaves a truncated file where a good one stood. A command's whole output folder
(``deploy``, a ``train`` run, the search's ``chosen/``) is built beside its target and swapped
in at once (:func:`folder_transaction`), so the folder is always entirely the old one or
entirely the new one; a manifest of what denselab wrote keeps it from replacing anything else.
HDF5 files are first read in a child process (:class:`Hdf5Probe`), because the HDF5 C library
can hang on a damaged file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import DenselabError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or fail with a clear message when it cannot be a folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        kind = _special_kind(folder)
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
    return write_text(target, to_json(obj, indent=2) + "\n")


def to_json(obj: Any, indent: int | None = None, compact: bool = False) -> str:
    """``obj`` as JSON text, always valid JSON: NaN and infinity become ``null`` (JSON has no
    NaN; ``json.dumps`` would write a bare ``NaN`` that other readers refuse)."""
    separators = (",", ":") if compact else None
    return json.dumps(
        _finite(obj), indent=indent, separators=separators, default=_jsonable, allow_nan=False
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
    return f"cannot write {_shown(target)}: {reason}; nothing was changed there, {advice}"


# --- what may be replaced: regular files only, never what denselab did not write ------------

_SPECIAL_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def _special_kind(path: Path) -> str | None:
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
        real = Path(os.path.realpath(target))
        if not real.parent.is_dir():
            raise DenselabError(f"{target} is a symbolic link to {real}, which cannot be written")
        target = real
    if target.is_dir():
        raise DenselabError(f"{target} is a folder; give a file name instead")
    kind = _special_kind(target)
    if kind is not None:
        raise DenselabError(
            f"{target} is {kind}, not a regular file; denselab never replaces one: "
            "choose another --out"
        )
    return target


def check_output_file(
    target: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    force: bool = False,
    ours: Callable[[Path], bool] | None = None,
) -> Path:
    """Refuse to replace ``target`` (a single output file, e.g. the explorer page) when it is
    not a regular file, when it is one of the command's ``inputs``, or when denselab did not
    write it (neither recorded in its folder's manifest nor ``ours(path)``) unless ``force``."""
    target = replaceable_file(target)
    if not target.exists():
        return target
    for source in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(target, source):
                raise DenselabError(f"--out {target} is this command's input; choose another --out")
    if not force and not _recorded(target) and not (ours is not None and ours(target)):
        raise DenselabError(
            f"{target} exists and denselab did not write it; choose another --out, or add "
            "--force to replace it"
        )
    return target


# --- output folders: one transaction each ---------------------------------------------------

MANIFEST = ".denselab-manifest.json"  # in every output folder: what denselab wrote, by sha256
FOLDER_KINDS = {
    "run": "a run folder (written by `denselab train`)",
    "deploy": "a deploy folder (written by `denselab deploy`)",
}
_STAGED: dict[Path, Path] = {}  # staging folder -> the folder it becomes (for messages)


@contextlib.contextmanager
def folder_transaction(
    target: str | os.PathLike,
    kind: str,
    force: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Write a command's whole output folder as one transaction::

        with _io.folder_transaction(out, "deploy") as staging:
            write_bytes(staging / "model.c", ...)      # every file of the new folder

    The block writes into ``staging``, a new folder beside ``target``
    (``.<name>.partial``). When the block ends, a manifest of every file in it (sha256) is
    added and the folder is swapped with ``target`` in one ``renameat2(RENAME_EXCHANGE)``;
    if the block raises (a full disk, Ctrl-C, a failed check), the staging folder goes and
    ``target`` is untouched. So ``target`` is always wholly the old folder or wholly the new.

    Refused before anything is written: a ``target`` that is not a folder, a folder of another
    ``kind``, one holding any of ``inputs``, one in use by another denselab command (a lock),
    and one holding files denselab did not write or that changed since (its manifest says
    which) unless ``force``; then those files are kept, unless the new folder has the name.
    """
    shown = Path(target)
    target = output_folder(target, kind, force, inputs)
    ensure_dir(target.parent)
    with folder_lock(target, shown):
        kept = _unowned_entries(target, shown, kind, force)  # again, now no one else writes
        _recover(target)
        staging = target.parent / f".{target.name}.partial"
        if os.path.lexists(staging):  # left by a command that was killed
            _remove(staging)
        try:
            staging.mkdir()
            if target.is_dir():
                os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
        except OSError as error:
            raise DenselabError(_cannot_write(shown, error)) from None
        _STAGED[staging] = shown
        try:
            yield staging
            with _uninterrupted():
                try:
                    _carry_over(target, staging, kept)
                    write_manifest(staging, kind, exclude=kept)
                    _fsync_folder(staging)
                    _swap(staging, target)
                except OSError as error:
                    raise DenselabError(_cannot_write(shown, error)) from None
        finally:
            _STAGED.pop(staging, None)
            _remove(staging)  # the new folder if the block failed; the old one after a swap


def output_folder(
    target: str | os.PathLike,
    kind: str,
    force: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Check ``target`` as :func:`folder_transaction` will, before any work (a search checks
    its ``chosen/`` before its trials). Returns the real folder (symbolic links followed)."""
    shown = Path(target)
    if shown.is_symlink() and not shown.exists():
        raise DenselabError(
            f"output folder {shown} is a symbolic link to nothing; fix or remove it"
        )
    if os.path.lexists(shown) and not shown.is_dir():
        kind_of = _special_kind(shown)
        raise DenselabError(f"output folder {shown} is {kind_of or 'a file'}; choose another --out")
    real = Path(os.path.realpath(shown))
    if real == Path(os.getcwd()) or real in Path(os.getcwd()).parents:
        raise DenselabError(f"output folder {shown} holds the current folder; choose another --out")
    if real.is_dir() and os.path.ismount(real):
        raise DenselabError(f"{shown} is a mount point; give a folder inside it as --out")
    for source in inputs:
        source = Path(os.path.realpath(source))
        if source == real or real in source.parents:
            raise DenselabError(
                f"output folder {shown} holds {source.name}, which this command reads; "
                "choose another --out"
            )
    _unowned_entries(real, shown, kind, force)
    return real


@contextlib.contextmanager
def folder_lock(target: Path, shown: Path | None = None) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``target``: a second denselab command writing the same
    folder is refused at once (the lock goes with its holder, even after ``kill -9``)."""
    shown = target if shown is None else shown
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DenselabError(_cannot_write(shown, error)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise DenselabError(
                f"{shown} is being written by another denselab command{who}; wait for it "
                "to finish, or choose another --out"
            ) from None
        try:  # the previous holder may have removed the file we locked: lock the one there
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def write_manifest(folder: Path, kind: str, exclude: Iterable[str] = ()) -> Path:
    """Record every file in ``folder`` (but ``exclude``d names) with its sha256."""
    skipped = {MANIFEST, *exclude}
    files = {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not path.is_symlink()
        and path.relative_to(folder).parts[0] not in skipped
    }
    return write_json(folder / MANIFEST, {"written_by": "denselab", "kind": kind, "files": files})


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest ``{"kind", "files": {name: sha256}}``; None when it has none."""
    path = Path(folder) / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        manifest = json.loads(path.read_bytes())
        files = manifest["files"]
        valid = (
            isinstance(manifest.get("kind"), str)
            and isinstance(files, dict)
            and all(
                isinstance(name, str)
                and isinstance(digest, str)
                and len(digest) == 64
                and not Path(name).is_absolute()
                and ".." not in Path(name).parts
                for name, digest in files.items()
            )
        )
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise DenselabError(f"{path} is damaged; denselab cannot tell which files it wrote")
    return manifest


def manifest_differences(folder: str | os.PathLike, manifest: dict) -> tuple[list, list]:
    """``(missing, changed)``: recorded files that are gone, and those whose bytes differ."""
    folder = Path(folder)
    missing, changed = [], []
    for name, digest in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file() or path.is_symlink():
            missing.append(name)
        elif file_sha256(path) != digest:
            changed.append(name)
    return missing, changed


def add_to_manifest(folder: str | os.PathLike, *names: str) -> None:
    """Record files just written into a folder that has a manifest (a picture or the explorer
    page added to a run folder); a folder without one is left as it is."""
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except DenselabError:
        return
    if manifest is None:
        return
    for name in names:
        manifest["files"][name] = file_sha256(folder / name)
    write_json(folder / MANIFEST, manifest)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded(path: Path) -> bool:
    """Whether ``path`` is recorded, with these very bytes, in its folder's manifest."""
    try:
        manifest = read_manifest(path.parent)
    except DenselabError:
        return False
    digest = (manifest or {}).get("files", {}).get(path.name)
    return digest is not None and file_sha256(path) == digest


def _unowned_entries(target: Path, shown: Path, kind: str, force: bool) -> list[str]:
    """The names in ``target`` (``shown`` so in messages) that denselab did not write, or that
    changed since; refused unless ``force`` (a folder of another kind is refused even then)."""
    if not target.is_dir():
        return []
    try:
        manifest = read_manifest(target)
    except DenselabError:
        manifest = None  # damaged: nothing in the folder can be shown to be denselab's
    if manifest is not None and manifest["kind"] != kind:
        raise DenselabError(
            f"{shown} is {FOLDER_KINDS.get(manifest['kind'], 'another kind of folder')}, "
            f"not {FOLDER_KINDS.get(kind, kind).split(' (')[0]}; choose another --out"
        )
    recorded = manifest["files"] if manifest else {}
    foreign, changed = [], []
    try:
        entries = sorted(os.scandir(target), key=lambda entry: entry.name)
    except OSError as error:
        raise DenselabError(f"cannot read folder {shown}: {error.strerror}") from None
    for entry in entries:
        if entry.name in (MANIFEST,):
            continue
        if entry.name not in recorded:
            foreign.append(entry.name)
        elif not entry.is_file(follow_symlinks=False) or (
            file_sha256(entry.path) != recorded[entry.name]
        ):
            changed.append(entry.name)
    if (foreign or changed) and not force:
        parts = []
        if foreign:
            parts.append(f"files denselab did not write ({_names(foreign)})")
        if changed:
            parts.append(f"files changed since denselab wrote them ({_names(changed)})")
        raise DenselabError(
            f"output folder {shown} holds {' and '.join(parts)}; move them away, choose "
            "another --out, or add --force to write there and keep them"
        )
    return foreign + changed


def _names(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _carry_over(target: Path, staging: Path, names: list[str]) -> None:
    """Keep the user's own files (``--force``): hard-linked (or copied) into the new folder,
    unless the new folder has a file of the same name."""
    for name in names:
        source, copy = target / name, staging / name
        if os.path.lexists(copy):
            continue
        if source.is_symlink():
            os.symlink(os.readlink(source), copy)
        elif source.is_dir():
            shutil.copytree(source, copy, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, copy)


def _link_or_copy(source, copy) -> None:
    try:
        os.link(source, copy)
    except OSError:
        shutil.copy2(source, copy)


def _swap(staging: Path, target: Path) -> None:
    """Put ``staging`` where ``target`` is, in one step; ``staging`` then holds the old one."""
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif not _exchange(staging, target):  # a file system without RENAME_EXCHANGE: two renames
        retired = target.parent / f".{target.name}.old"
        _remove(retired)
        os.rename(target, retired)
        os.rename(staging, target)  # a kill between the two: _recover puts the old one back
        _remove(retired)
    _fsync_folder(target.parent)


def _exchange(first: Path, second: Path) -> bool:
    """``renameat2(first, second, RENAME_EXCHANGE)``: swap two paths atomically (Linux)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange):
        error = ctypes.get_errno()
        if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return False
        raise OSError(error, os.strerror(error), str(second))
    return True


def _recover(target: Path) -> None:
    """After a kill between :func:`_swap`'s two renames, put the old folder back."""
    retired = target.parent / f".{target.name}.old"
    if os.path.lexists(retired):
        if os.path.lexists(target):
            _remove(retired)
        else:
            os.rename(retired, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _shown(path: Path) -> Path:
    """A path inside a staging folder, as the user knows it (inside the target)."""
    for staging, target in list(_STAGED.items()):
        if path == staging or staging in path.parents:
            return target / path.relative_to(staging)
    return path


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (a swap must not stop half way); then
    they are delivered as they would have been."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: a handler set outside Python, left alone
            previous[signum] = signal.signal(signum, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        signal.raise_signal(caught[0])


# --- reading HDF5 in quarantine -------------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_PROBE_SECONDS = 60.0
HDF5_PROBE_MEMORY = 4 << 30  # bytes of address space for the probe process
# A model's weights inside a .keras zip: at most 1 GiB unpacked (the size guard allows 2^27
# float32 weights in all, 512 MB), and not packed more than 100:1 (Keras stores them
# uncompressed; random-looking floats hardly compress): more is a zip bomb.
MAX_ZIP_MEMBER_BYTES = 1 << 30
MAX_ZIP_RATIO = 100
ZIP_RATIO_FREE_BYTES = 1 << 20  # small members may compress well (zeros): no ratio check

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
        if member:
            check_zip_member(self.path, member)  # from the declared sizes, before unpacking
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


def check_zip_member(path: str | os.PathLike, member: str) -> None:
    """Refuse a zip member that would unpack to more than MAX_ZIP_MEMBER_BYTES, or that is
    packed more than MAX_ZIP_RATIO to 1, from the zip's own directory (nothing unpacked).

    The declared size bounds what :mod:`zipfile` ever unpacks: a member whose data unpacks to
    more fails its CRC check at the declared size.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise DenselabError(f"{path} is not a valid .keras file ({error}); re-save it") from None
    size, packed = info.file_size, max(1, info.compress_size)
    if size > MAX_ZIP_MEMBER_BYTES:
        raise DenselabError(
            f"cannot read model {path}: its {member} would unpack to {size:,} bytes; denselab "
            f"reads at most {MAX_ZIP_MEMBER_BYTES:,}"
        )
    if size > ZIP_RATIO_FREE_BYTES and size / packed > MAX_ZIP_RATIO:
        raise DenselabError(
            f"cannot read model {path}: its {member} is packed {size / packed:,.0f} to 1 "
            f"({packed:,} bytes unpacking to {size:,}); a zip bomb, not a model"
        )


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
