"""Output folders as transactions: a command's whole folder (``deploy``, a ``train`` run, the
search's ``chosen/``) is built beside its target and swapped in at once, so it is always
entirely the old one or entirely the new one; a manifest of what denselab wrote (sha256 of
every file) keeps it from replacing or deleting anything else, and a lock keeps two commands
apart.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from . import fileio
from .errors import DenselabError


def check_output_file(
    target: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    force: bool = False,
    ours: Callable[[Path], bool] | None = None,
    recorded: bool = True,
) -> Path:
    """Refuse to replace ``target`` (a single output file, e.g. the explorer page) when it is
    not a regular file, when it is one of the command's ``inputs``, or when denselab did not
    write it (neither recorded in its folder's manifest nor ``ours(path)``) unless ``force``.
    With ``recorded=False`` only ``ours`` counts: a page may replace a page, not a run's
    ``run.json`` or a deploy folder's ``model.c``, which denselab wrote too."""
    target = fileio.replaceable_file(target)
    if not target.exists():
        return target
    for source in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(target, source):
                raise DenselabError(f"--out {target} is this command's input; choose another --out")
    if (
        not force
        and not (recorded and _recorded(target))
        and not (ours is not None and ours(target))
    ):
        raise DenselabError(
            f"{target} exists and denselab did not write it; choose another --out, or add "
            "--force to replace it"
        )
    return target


MANIFEST = ".denselab-manifest.json"  # in every output folder: what denselab wrote, by sha256


FOLDER_KINDS = {
    "run": "a run folder (written by `denselab train`)",
    "deploy": "a deploy folder (written by `denselab deploy`)",
}


@contextlib.contextmanager
def folder_transaction(
    target: str | os.PathLike,
    kind: str,
    force: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Write a command's whole output folder as one transaction::

        with folders.folder_transaction(out, "deploy") as staging:
            fileio.write_bytes(staging / "model.c", ...)      # every file of the new folder

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
    fileio.ensure_dir(target.parent)
    with folder_lock(target, shown):
        kept = _unowned_entries(target, shown, kind, force)  # again, now no one else writes
        _recover(target, shown)
        staging = target.parent / f".{target.name}.partial"
        if os.path.lexists(staging):  # left by a command that was killed
            _remove_ours(staging, shown)
        try:
            staging.mkdir()
            (staging / STAGING_MARK).touch()  # says whose it is, should it be left behind
            if target.is_dir():
                os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
        except OSError as error:
            raise DenselabError(fileio.cannot_write(shown, error)) from None
        fileio.STAGED[staging] = shown
        try:
            yield staging
            with _uninterrupted():
                try:
                    _carry_over(target, staging, kept)
                    write_manifest(staging, kind, exclude=[*kept, STAGING_MARK])  # says whose
                    os.unlink(staging / STAGING_MARK)
                    fileio.fsync_folder(staging)
                    _swap(staging, target)
                except OSError as error:
                    raise DenselabError(fileio.cannot_write(shown, error)) from None
        finally:
            fileio.STAGED.pop(staging, None)
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
        kind_of = fileio.special_kind(shown)
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
    _check_lock_is_ours(lock, shown)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DenselabError(fileio.cannot_write(shown, error)) from None
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


def _check_lock_is_ours(lock: Path, shown: Path) -> None:
    """A ``.<name>.lock`` that is there already must be denselab's: empty, or a process
    number (one killed before it could remove it). A file of the user's is refused."""
    if not os.path.lexists(lock):
        return
    if not lock.is_file() or lock.is_symlink():
        raise DenselabError(f"{lock} is in the way of {shown} and is not a lock; move it away")
    with open(lock, "rb") as stream:
        held = stream.read(33).strip()
    if held and not (len(held) <= 32 and held.isdigit()):
        raise DenselabError(
            f"{lock} is in the way of {shown} and denselab did not make it; move it away"
        )


def write_manifest(folder: Path, kind: str, exclude: Iterable[str] = ()) -> Path:
    """Record every file in ``folder`` (but ``exclude``d names) with its sha256."""
    skipped = {MANIFEST, *exclude}
    files = {
        path.relative_to(folder).as_posix(): fileio.file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not path.is_symlink()
        and path.relative_to(folder).parts[0] not in skipped
    }
    return fileio.write_json(
        folder / MANIFEST, {"written_by": "denselab", "kind": kind, "files": files}
    )


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest ``{"kind", "files": {name: sha256}}``; None when it has none."""
    path = Path(folder) / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        manifest = fileio.load_json(path)
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
        elif fileio.file_sha256(path) != digest:
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
        manifest["files"][name] = fileio.file_sha256(folder / name)
    fileio.write_json(folder / MANIFEST, manifest)


def _recorded(path: Path) -> bool:
    """Whether ``path`` is recorded, with these very bytes, in its folder's manifest."""
    try:
        manifest = read_manifest(path.parent)
    except DenselabError:
        return False
    digest = (manifest or {}).get("files", {}).get(path.name)
    return digest is not None and fileio.file_sha256(path) == digest


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
            fileio.file_sha256(entry.path) != recorded[entry.name]
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
    fileio.fsync_folder(target.parent)


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


def _recover(target: Path, shown: Path | None = None) -> None:
    """After a kill between :func:`_swap`'s two renames, put the old folder back."""
    retired = target.parent / f".{target.name}.old"
    if os.path.lexists(retired):
        _check_ours(retired, shown or target)
        if os.path.lexists(target):
            _remove(retired)
        else:
            os.rename(retired, target)


STAGING_MARK = ".denselab-staging"  # in a folder being built, until its manifest is written


def _remove_ours(path: Path, shown: Path) -> None:
    """Remove ``path`` (``.<name>.partial`` beside an output folder) if a denselab command
    left it; see :func:`_check_ours`."""
    _check_ours(path, shown)
    _remove(path)


def _check_ours(path: Path, shown: Path) -> None:
    """``.<name>.partial`` or ``.<name>.old`` beside an output folder is denselab's if it is a
    folder holding the staging mark or a manifest. Anything else of that name is someone's,
    and in the way: refused, never deleted or moved."""
    if path.is_dir() and not path.is_symlink():
        if (path / STAGING_MARK).is_file() or (path / MANIFEST).is_file():
            return
    raise DenselabError(
        f"{path} is in the way of {shown} and denselab did not make it; move it away"
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


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
