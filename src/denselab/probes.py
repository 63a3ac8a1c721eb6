"""Reads a damaged or hostile file cannot hang or crash: HDF5 files are first read in a child
process (:class:`Hdf5Probe`), because the HDF5 C library can hang on a damaged file, and a
``.keras`` zip's weights are checked against their declared sizes before they are unpacked.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DenselabError

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
