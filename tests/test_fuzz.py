"""Fuzzing: garbage into every reader gives a DenselabError, and the C engine agrees with TFLM.

Each reader gets random bytes and mutations (truncated, bytes flipped, bytes inserted, or a
field of the saved config changed) of a valid file. The only acceptable outcomes are a
correct result or :class:`DenselabError`; any other exception, or a crash, fails.

The same properties run much longer with ``python scripts/fuzz.py --minutes 10``. Here each
gets a bounded number of examples (about 40 s in all on a 2-core machine).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from denselab.errors import DenselabError

CASES_RUN: Counter = Counter()  # per target; scripts/fuzz.py reports it
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


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


# --- the properties: a right answer or a DenselabError, nothing else -------------------------


def _file(seeds: Seeds, suffix: str, data: bytes) -> Path:
    path = seeds.folder / f"fuzzed{suffix}"
    path.write_bytes(data)
    return path


HDF5_PROBE_SECONDS = 5.0  # a damaged HDF5 file can make the library loop forever


def check_model(seeds: Seeds, case: tuple[str, bytes]) -> None:
    from denselab import _io
    from denselab.model import dense_network, load_model

    suffix, data = case
    _io.HDF5_PROBE_SECONDS = HDF5_PROBE_SECONDS
    try:
        dense_network(load_model(_file(seeds, suffix, data)))
    except DenselabError as error:
        if "still reading it after" in str(error) or "crashed on it" in str(error):
            CASES_RUN["model: HDF5 hang or crash contained"] += 1


def check_tflite(seeds: Seeds, data: bytes) -> None:
    from denselab.int8.tflite import read_int8_tflite

    try:
        network = read_int8_tflite(data)
    except DenselabError:
        return
    for before, after in zip(network.layers, network.layers[1:], strict=False):
        assert after.n_outputs >= 1 and before.n_outputs >= 1


def check_npz(seeds: Seeds, data: bytes) -> None:
    from denselab.data import load_dataset

    try:
        dataset = load_dataset(str(_file(seeds, ".npz", data)))
    except DenselabError:
        return
    _check_dataset(dataset)


def check_csv(seeds: Seeds, case: tuple[str, str | None]) -> None:
    from denselab.data import load_dataset

    text, task = case
    path = _file(seeds, ".csv", text.encode("utf-8", errors="surrogatepass"))
    try:
        dataset = load_dataset(str(path), task=task)
    except DenselabError:
        return
    _check_dataset(dataset)


def check_idx(seeds: Seeds, case: tuple[str, bytes]) -> None:
    from denselab.data import read_idx

    suffix, data = case
    try:
        array = read_idx(_file(seeds, suffix, data))
    except DenselabError:
        return
    assert array.dtype == np.uint8


def check_image(seeds: Seeds, case: tuple[str, bytes]) -> None:
    from denselab.data import load_image, load_input

    suffix, data = case
    path = _file(seeds, suffix, data)
    try:
        image = load_image(path)
    except DenselabError:
        pass
    else:
        assert image.shape == (28, 28) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
    try:
        load_input(path, (8, 8))
    except DenselabError:
        pass


def check_npy(seeds: Seeds, case: tuple[np.ndarray | bytes, tuple]) -> None:
    from denselab.data import load_input

    content, input_shape = case
    path = seeds.folder / "fuzzed.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
    try:
        x = load_input(path, input_shape)
    except DenselabError:
        return
    assert x.shape == input_shape and x.dtype == np.float32 and np.isfinite(x).all()


def _check_dataset(dataset) -> None:
    assert dataset.x_train.dtype == np.float32 and dataset.x_test.dtype == np.float32
    assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.x_test).all()
    assert dataset.y_train.shape == (len(dataset.x_train),)
    assert dataset.y_test.shape == (len(dataset.x_test),)
    assert len(dataset.x_train) >= 1 and len(dataset.x_test) >= 1
    if dataset.task == "classification":
        labels = np.concatenate([dataset.y_train, dataset.y_test])
        assert labels.min() >= 0 and labels.max() < dataset.n_classes


@dataclass
class Target:
    """One reader under fuzz: how its inputs are drawn, the property, examples in pytest."""

    strategy: Callable[[Seeds], st.SearchStrategy]
    check: Callable[[Seeds, object], None]
    examples: int


TARGETS = {
    "model": Target(model_files, check_model, 60),
    "tflite": Target(tflite_files, check_tflite, 400),
    "npz": Target(npz_files, check_npz, 150),
    "csv": Target(
        lambda seeds: st.tuples(CSV_TEXT, st.sampled_from([None, "classification", "regression"])),
        check_csv,
        200,
    ),
    "idx": Target(idx_files, check_idx, 200),
    "image": Target(images, check_image, 150),
    "npy": Target(
        lambda seeds: st.tuples(
            st.one_of(any_array(), st.binary(max_size=128)),
            st.sampled_from([(4,), (2, 2), (8, 8)]),
        ),
        check_npy,
        150,
    ),
}


def fuzz(name: str, seeds: Seeds, examples: int) -> Callable[[], None]:
    """The Hypothesis test for one target, ready to call."""
    target = TARGETS[name]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(target.strategy(seeds))
    def run(case):
        CASES_RUN[name] += 1
        target.check(seeds, case)

    return run


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Seeds:
    return make_seeds(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("name", list(TARGETS))
def test_garbage_gives_a_denselab_error_and_nothing_else(seeds, name):
    fuzz(name, seeds, TARGETS[name].examples)()


# --- differential: the generated C engine against TFLite Micro, on drawn models --------------

ACTIVATIONS = ("relu", "linear", "tanh", "sigmoid")
OUTPUTS = ("softmax", "linear", "sigmoid", "tanh", "relu")


@st.composite
def dense_models(draw) -> dict:
    return {
        "n_inputs": draw(st.sampled_from([1, 2, 5, 16, 64, 784])),
        "widths": draw(st.lists(st.integers(1, 64), min_size=1, max_size=4)),
        "hidden": draw(st.sampled_from(ACTIVATIONS)),
        "output": draw(st.sampled_from(OUTPUTS)),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "spread": draw(st.floats(-2, 0.5)),
        "input_range": draw(st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (-5.0, 3.0)])),
        "per_channel": draw(st.booleans()),
        # the fraction of each layer's inputs given weight 0 in every neuron (skipped by C)
        "unused": draw(st.sampled_from([0.0, 0.0, 0.3, 0.9, 1.0])),
    }


def check_c_matches_tflm(spec: dict, n_samples: int = 256) -> None:
    from denselab.engine import c_engine_invoke, generate_c
    from denselab.int8.convert import to_tflite
    from denselab.int8.tflm import tflm_invoke
    from denselab.model import DenseLayer, DenseNetwork

    rng = np.random.default_rng(spec["seed"])
    sizes = [spec["n_inputs"], *spec["widths"]]
    activations = [spec["hidden"]] * (len(spec["widths"]) - 1) + [spec["output"]]
    spread = 10 ** spec["spread"]
    layers = [
        DenseLayer(
            f"dense_{i + 1}",
            rng.normal(0, spread, (sizes[i], sizes[i + 1])).astype(np.float32),
            rng.normal(0, spread, sizes[i + 1]).astype(np.float32),
            activation,
        )
        for i, activation in enumerate(activations)
    ]
    for layer in layers:
        layer.kernel[rng.random(layer.kernel.shape[0]) < spec.get("unused", 0.0)] = 0.0
    network = DenseNetwork((spec["n_inputs"],), layers)
    low, high = spec["input_range"]
    representative = rng.uniform(low, high, (100, spec["n_inputs"])).astype(np.float32)
    _, int8_tflite = to_tflite(network, representative, per_channel=spec["per_channel"])
    inputs = rng.integers(-128, 128, (n_samples, spec["n_inputs"]), dtype=np.int8)
    inputs[0], inputs[1] = -128, 127
    expected = tflm_invoke(int8_tflite, inputs)
    actual = c_engine_invoke(generate_c(int8_tflite, "model"), inputs)
    differing = int(np.any(actual != expected, axis=1).sum())
    assert differing == 0, f"{differing} of {n_samples} samples differ for {spec}"


def fuzz_c_engine(examples: int) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(dense_models())
    def run(spec):
        CASES_RUN["c-vs-tflm"] += 1
        check_c_matches_tflm(spec)

    return run


def test_c_engine_matches_tflite_micro_on_drawn_models():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tflite_micro")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the generated C")
    fuzz_c_engine(examples=4)()
