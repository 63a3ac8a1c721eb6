"""Fuzzing: garbage into every reader gives a DenselabError, and the C engine agrees with TFLM.

Each reader gets random bytes and mutations (truncated, bytes flipped, bytes inserted, or a
field of the saved config changed) of a valid file. The only acceptable outcomes are a
correct result or :class:`DenselabError`; any other exception, or a crash, fails.

The same properties run much longer with ``python scripts/fuzz.py --minutes 10``. Here each
gets a bounded number of examples (about 40 s in all on a 2-core machine).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fuzzing import (  # noqa: F401 (scripts/fuzz.py reaches them through this module)
    CSV_TEXT,
    Seeds,
    _have,
    _leaves,
    _replaced,
    any_array,
    edited_config,
    garbage_or_mutated,
    h5_with_config,
    idx_files,
    images,
    keras_with_config,
    make_seeds,
    model_files,
    mutated,
    npz_files,
    tflite_files,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from denselab.errors import DenselabError

CASES_RUN: Counter = Counter()  # per target; scripts/fuzz.py reports it
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


# --- the properties: a right answer or a DenselabError, nothing else -------------------------


def _file(seeds: Seeds, suffix: str, data: bytes) -> Path:
    path = seeds.folder / f"fuzzed{suffix}"
    path.write_bytes(data)
    return path


HDF5_PROBE_SECONDS = 5.0  # a damaged HDF5 file can make the library loop forever


def check_model(seeds: Seeds, case: tuple[str, bytes]) -> None:
    from denselab import probes
    from denselab.model import dense_network, load_model

    suffix, data = case
    probes.HDF5_PROBE_SECONDS = HDF5_PROBE_SECONDS
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
