"""Model files: check a ``.keras`` or ``.h5`` file before anything reads it, then load it.

Nothing in a file runs: its HDF5 part is first read completely in a child process (a damaged
file can hang the HDF5 library), its architecture is read as plain JSON (a ``Lambda`` layer's
code is refused, absurd sizes too), and Keras loads a ``.keras`` in safe mode. An ``.h5`` file,
from any Keras since 2.0, is rebuilt by :mod:`denselab.model.hdf5` without Keras's loader.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

from .. import fileio
from ..backend import keras as _keras
from ..errors import DenselabError
from ..probes import Hdf5Probe, has_hdf5_signature
from .graph import chain


def load_model(path: str | Path):
    """Load a ``.keras`` model with Keras ``safe_mode=True`` (no code from the file), or rebuild
    an ``.h5`` model (Keras 2 or 3) from its config and weights; refuse a graph that is not
    one chain (several inputs or outputs, shared layers, branches).

    The file is first checked by :func:`check_model_file`, so a Lambda layer's code never runs
    and a damaged HDF5 part cannot hang this process.
    """
    path, config = _checked(path)
    if path.suffix != ".keras":
        from .hdf5 import read_hdf5_model

        return read_hdf5_model(path, config)
    keras = _keras()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean "unreadable"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise DenselabError(
                f"{path} contains a Lambda layer (arbitrary code); denselab refuses to run it"
            ) from None
        raise DenselabError(f"cannot read model {path}: {message[:200]}") from None
    chain(model)  # refused here, before any command does work with it
    return model


def check_model_file(path: str | Path) -> Path:
    """The model file at ``path`` (a run folder means its ``model.keras``), checked for Keras.

    Before Keras sees the file, its HDF5 part (the ``.h5``, or the weights inside a ``.keras``)
    is read completely in a child process, and its saved architecture is read as plain JSON:
    a layer that carries Python code (``Lambda``, ``TFSMLayer``) or absurd sizes is refused.
    """
    return _checked(path)[0]


def _checked(path: str | Path) -> tuple[Path, dict]:
    """:func:`check_model_file`, and the saved architecture it read (JSON)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.keras").exists():
            raise DenselabError(f"{path} is a folder without model.keras; give a run folder")
        path = path / "model.keras"
    if not path.exists():
        raise DenselabError(f"no model at {path}; give a .keras/.h5 file or a run folder")
    fileio.check_regular(path)  # /dev/zero never ends, a FIFO never answers
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise DenselabError(f"{path} is not a Keras model; expected a .keras or .h5 file")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise DenselabError(f"{path} is not a valid .keras file (not a zip archive); re-save it")
    probe = _start_probe(path)
    try:
        _keras()  # imported while the probe reads the file
        config = _saved_config(path, probe)
    finally:
        if probe is not None:
            probe.cancel()
    unsafe = code_layer(config)
    if unsafe is not None:
        raise DenselabError(
            f"{path} contains a {unsafe} layer (arbitrary Python code); denselab refuses to "
            "run it: rebuild the model without it"
        )
    _check_sizes(config, path)
    if not isinstance(config, dict):
        raise DenselabError(f"cannot read model {path}: its saved architecture is not an object")
    return path, config


_CODE_LAYERS = ("Lambda", "TFSMLayer")  # layers whose config holds, or loads, Python code


MAX_CONFIG_BYTES = 64 << 20  # config.json of a model is kilobytes; more is a zip bomb


def _start_probe(path: Path) -> Hdf5Probe | None:
    """Read the model's HDF5 part (the .h5 file, or the weights inside a .keras) in a child."""
    if path.suffix != ".keras":
        if not has_hdf5_signature(path):
            raise DenselabError(f"cannot read model {path}: not an HDF5 model (no signature)")
        return Hdf5Probe(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise DenselabError(f"{path} is not a valid .keras file ({error}); re-save it") from None
    return Hdf5Probe(path, "model.weights.h5") if "model.weights.h5" in names else None


def _saved_config(path: Path, probe: Hdf5Probe | None):
    """The saved architecture as JSON, read without Keras (so nothing in it can run)."""
    try:
        if path.suffix == ".keras":
            if probe is not None:
                probe.result()
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise DenselabError(f"{path} has no config.json; it is not a saved Keras model")
                if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                    raise DenselabError(f"{path} has a config.json of absurd size")
                text = archive.read("config.json")
        else:
            text = probe.result()
            if not text:
                raise DenselabError(
                    f"{path} holds weights only, no model; save the whole model with model.save"
                )
        return json.loads(text)
    except DenselabError:
        raise
    except Exception as error:  # zip and JSON each fail in their own way on a bad file
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        kind = "a .keras zip" if path.suffix == ".keras" else "an HDF5 model"
        raise DenselabError(
            f"cannot read model {path}: not {kind} ({reason or type(error).__name__}); re-save it"
        ) from None


MAX_WEIGHTS = 1 << 26  # per layer (256 MB of float32): far beyond any microcontroller model
MAX_TOTAL_WEIGHTS = 1 << 27  # all layers together (512 MB of float32)


def _nodes(config):
    """Every dict in a JSON tree, without recursion (a hostile file may nest deep)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_sizes(config, path: Path) -> None:
    """Refuse absurd sizes before Keras allocates (and fills) any weights: every layer's, and
    all of them together, bounded from the saved config alone.

    A layer's kernel is (its input width) x units, and its input is at most the widest tensor
    any other part of the model makes: an input, another layer's units (a Dense fed by a
    Dense), a convolution's channels over the input's pixels, or all of these together where
    a Concatenate joins tensors. So the bound is conservative: a real dense network
    (784 -> 20 -> 10) is nowhere near it.
    """
    widest_input, filters, joins = 1, 1, False
    layers = []  # (name, units, gates); an LSTM has 4 kernels of that size, a GRU 3
    for node in _nodes(config):
        for key in ("batch_shape", "batch_input_shape", "input_shape", "shape"):
            shape = node.get(key)
            if isinstance(shape, list) and all(isinstance(d, int) for d in shape[1:]):
                widest_input = max(widest_input, math.prod(abs(d) for d in shape[1:]))
        kind, settings = node.get("class_name"), node.get("config")
        if not isinstance(kind, str) or not isinstance(settings, dict):
            continue
        joins = joins or kind == "Concatenate"
        filters = max(filters, _size(settings.get("filters")) or 1)
        units = _size(settings.get("units"))
        if units is not None:
            gates = 4 if "LSTM" in kind else 3 if "GRU" in kind else 1
            layers.append((str(settings.get("name", kind)), units, gates))
        embedding = _size(settings.get("input_dim")), _size(settings.get("output_dim"))
        if None not in embedding:
            layers.append((str(settings.get("name", kind)), embedding[0] * embedding[1], 0))
    layers.reverse()  # _nodes walks a list from its end: the first layer first, in messages
    every_units = sum(units for _, units, gates in layers if gates)
    total = 0
    for index, (name, units, gates) in enumerate(layers):
        if not gates:  # an embedding table: its size is its weights
            weights, fed = units, 0
        else:
            others = [u for i, (_, u, g) in enumerate(layers) if g and i != index]
            fed = max(widest_input, widest_input * filters, *others, 1)
            if joins:
                fed = widest_input * filters + every_units - units
            weights = gates * units * (fed + units * (gates > 1) + 1)
        if weights > MAX_WEIGHTS:
            raise DenselabError(
                f"{path} describes layer {name[:60]!r} with up to {weights:,} weights (inputs "
                f"of up to {fed:,} numbers into layers of {units:,} neurons; denselab handles "
                f"at most {MAX_WEIGHTS:,} weights per layer)"
            )
        total += weights
    if total > MAX_TOTAL_WEIGHTS:
        raise DenselabError(
            f"{path} describes up to {total:,} weights in all; denselab handles at most "
            f"{MAX_TOTAL_WEIGHTS:,}"
        )


def _size(value) -> int | None:
    """A size from a config (``units``, ``filters``, ...) as a whole number, None if not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return abs(int(value)) if math.isfinite(value) else None


def code_layer(config) -> str | None:
    """The class name of the first layer in ``config`` that would run Python code, if any."""
    for node in _nodes(config):
        if isinstance(node, dict):
            for key in ("class_name", "registered_name"):
                name = node.get(key)
                if isinstance(name, str) and (name in _CODE_LAYERS or name == "__lambda__"):
                    return "Lambda" if name == "__lambda__" else name
    return None
