"""What the fuzz tests feed the readers: valid files to mutate, and how garbage is made.

Used by ``test_fuzz.py`` and ``scripts/fuzz.py``; it holds no tests itself.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# --- valid files to mutate ------------------------------------------------------------------


@dataclass(repr=False)
class Seeds:
    """Valid examples of every format, and a folder to write fuzzed files into."""

    folder: Path
    keras_file: bytes
    h5_file: bytes
    npz_file: bytes
    idx_file: bytes
    png_file: bytes
    jpeg_file: bytes
    int8_tflite: bytes | None

    def __repr__(self) -> str:  # Hypothesis prints it with every failure
        return f"Seeds({str(self.folder)!r})"


def make_seeds(folder: Path, with_tflite: bool = True) -> Seeds:
    from PIL import Image

    from denselab.model import build_model, dense_network

    model = build_model((4,), [5, 3], ["relu", "softmax"], seed=0)
    model.save(folder / "seed.keras")
    model.save(folder / "seed.h5")
    rng = np.random.default_rng(0)
    np.savez(
        folder / "seed.npz",
        x_train=rng.uniform(0, 1, (6, 4)).astype(np.float32),
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_test=rng.uniform(0, 1, (3, 4)).astype(np.float32),
        y_test=np.array([2, 1, 0]),
    )
    idx = b"\0\0\x08\x03" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") * 2 + bytes(18)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    png, jpeg = io.BytesIO(), io.BytesIO()
    Image.fromarray(digit).save(png, format="PNG")
    Image.fromarray(digit).save(jpeg, format="JPEG")
    int8_tflite = None
    if with_tflite and _have("tensorflow") and _have("tflite_micro"):
        from denselab.int8.convert import to_tflite

        _, int8_tflite = to_tflite(dense_network(model), rng.uniform(0, 1, (50, 4)))
    return Seeds(
        folder=folder,
        keras_file=(folder / "seed.keras").read_bytes(),
        h5_file=(folder / "seed.h5").read_bytes(),
        npz_file=(folder / "seed.npz").read_bytes(),
        idx_file=idx,
        png_file=png.getvalue(),
        jpeg_file=jpeg.getvalue(),
        int8_tflite=int8_tflite,
    )


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --- how garbage is made --------------------------------------------------------------------


def mutated(blob: bytes) -> st.SearchStrategy[bytes]:
    """``blob`` truncated, with bytes overwritten, or with bytes inserted."""
    n = len(blob)

    def overwrite(edits):
        data = bytearray(blob)
        for position, value in edits:
            data[position % n] = value
        return bytes(data)

    def insert(args):
        position, extra = args
        return blob[:position] + extra + blob[position:]

    return st.one_of(
        st.integers(0, n - 1).map(lambda cut: blob[:cut]),
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=16
        ).map(overwrite),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(insert),
    )


def garbage_or_mutated(blob: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), mutated(blob))


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["Dense", "Lambda", "__lambda__", "relu", "softmax", "keras.layers", "Conv2D", "float16"]
    ),
    st.lists(st.one_of(st.none(), st.integers(-3, 100_000)), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _leaves(value, (*path, index))
    yield path


def _replaced(tree, path, value):
    if not path:
        return value
    tree = json.loads(json.dumps(tree))
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


@st.composite
def edited_config(draw, config: dict) -> dict:
    """``config`` with one to three of its values (or whole sub-trees) replaced."""
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_leaves(config))
        config = _replaced(config, draw(st.sampled_from(paths)), draw(JSON_VALUES))
    return config


def keras_with_config(keras_file: bytes, config: dict) -> bytes:
    """A ``.keras`` zip like ``keras_file`` but with this ``config.json`` (valid CRCs)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(keras_file)) as source,
        zipfile.ZipFile(out, "w") as target,
    ):
        for name in source.namelist():
            data = json.dumps(config) if name == "config.json" else source.read(name)
            target.writestr(name, data)
    return out.getvalue()


def h5_with_config(h5_file: bytes, config, folder: Path) -> bytes:
    import h5py

    with tempfile.NamedTemporaryFile(suffix=".h5", dir=folder, delete=False) as stream:
        stream.write(h5_file)
    try:
        with h5py.File(stream.name, "r+") as file:
            file.attrs["model_config"] = json.dumps(config)
        return Path(stream.name).read_bytes()
    finally:
        Path(stream.name).unlink()


def model_files(seeds: Seeds) -> st.SearchStrategy[tuple[str, bytes]]:
    keras_config = json.loads(zipfile.ZipFile(io.BytesIO(seeds.keras_file)).read("config.json"))
    import h5py

    with h5py.File(io.BytesIO(seeds.h5_file), "r") as file:
        h5_config = json.loads(file.attrs["model_config"])
    return st.one_of(
        st.tuples(st.just(".keras"), garbage_or_mutated(seeds.keras_file)),
        st.tuples(st.just(".h5"), garbage_or_mutated(seeds.h5_file)),
        st.tuples(
            st.just(".keras"),
            edited_config(keras_config).map(lambda c: keras_with_config(seeds.keras_file, c)),
        ),
        st.tuples(
            st.just(".h5"),
            edited_config(h5_config).map(lambda c: h5_with_config(seeds.h5_file, c, seeds.folder)),
        ),
    )


REAL_DTYPES = st.sampled_from(
    ["float32", "float64", "float16", "int8", "uint8", "int64", "bool", "complex64", "<U3", "O"]
)


@st.composite
def any_array(draw, max_dims: int = 3) -> np.ndarray:
    """An array of any common dtype (text and Python objects too), NaN and infinity included."""
    dtype = draw(REAL_DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    if dtype == "O":
        return np.array(draw(st.lists(st.integers(), min_size=1, max_size=4)) + [None], object)
    return draw(hnp.arrays(np.dtype(dtype), shape))


@st.composite
def npz_files(draw, seeds: Seeds) -> bytes:
    if draw(st.booleans()):
        return draw(garbage_or_mutated(seeds.npz_file))
    keys = draw(
        st.sets(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "other"]), min_size=1)
    )
    arrays = {key: draw(any_array()) for key in keys}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


CSV_TEXT = st.one_of(
    st.text(alphabet="0123456789.,-+e \tnaif\n", max_size=200),
    st.lists(
        st.lists(
            st.one_of(
                st.integers(-5, 200).map(str),
                st.floats(allow_nan=True, allow_infinity=True).map(repr),
                st.sampled_from(["", "x", "label", " 1 ", "1e999", "0x10", "1_0"]),
            ),
            min_size=1,
            max_size=5,
        ).map(",".join),
        max_size=12,
    ).map("\n".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@st.composite
def idx_files(draw, seeds: Seeds) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["garbage", "header", "gzip"]))
    if kind == "garbage":
        return ".idx", draw(garbage_or_mutated(seeds.idx_file))
    dims = draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 5), max_size=4))
    header = b"\0\0" + bytes([draw(st.sampled_from([8, 9, 13])), len(dims)])
    header += b"".join(d.to_bytes(4, "big") for d in dims)
    body = header + draw(st.binary(max_size=64))
    if kind == "header":
        return ".idx", body
    packed = gzip.compress(body)
    return ".gz", packed[: draw(st.integers(0, len(packed)))]


@st.composite
def images(draw, seeds: Seeds) -> tuple[str, bytes]:
    from PIL import Image

    kind = draw(st.sampled_from(["png", "jpeg", "drawn"]))
    if kind == "png":
        return ".png", draw(garbage_or_mutated(seeds.png_file))
    if kind == "jpeg":
        return ".jpg", draw(garbage_or_mutated(seeds.jpeg_file))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "1", "I", "F", "P"]))
    size = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    image = Image.new(mode, size)
    pixels = draw(st.binary(min_size=len(image.tobytes()), max_size=len(image.tobytes())))
    image.frombytes(pixels)
    form = draw(st.sampled_from(["PNG", "GIF", "BMP", "TIFF"]))
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=form)
    except (OSError, KeyError):  # not every format stores every mode; TIFF stores them all
        form, buffer = "TIFF", io.BytesIO()
        image.save(buffer, format=form)
    return f".{form.lower()}", buffer.getvalue()


def tflite_files(seeds: Seeds) -> st.SearchStrategy[bytes]:
    header = st.binary(max_size=256).map(lambda b: b"\x1c\0\0\0TFL3" + b)
    if seeds.int8_tflite is None:
        return st.one_of(st.binary(max_size=256), header)
    return st.one_of(header, garbage_or_mutated(seeds.int8_tflite))
