"""Compile: write an int8 ``.tflite`` out as a small C99 engine that a firmware engineer can read.

The engine has no interpreter, no malloc and no float: ``const`` weight tables, two
static ping-pong buffers, and the integer arithmetic of TensorFlow Lite Micro's reference
int8 kernels, reproduced bit for bit. The kernels are a library of their own
(``templates/denselab_kernels.c``); a model is data (``templates/model.c``, ``layers.c``): its
constants come from :mod:`denselab.int8.tflite`, derived exactly as TFLM derives them.
"""

from __future__ import annotations

import re
import textwrap
from importlib import resources
from string import Template

import numpy as np

from ..errors import DenselabError
from ..int8.tflite import QuantizedNetwork, read_int8_tflite

KERNELS = ("denselab_kernels.h", "denselab_kernels.c")  # the library every model shares
KERNELS_VERSION = 2  # DENSELAB_KERNELS_VERSION in denselab_kernels.h
_KERNEL_CALLS = {  # layer kind -> the kernel that runs it (denselab_gather_s8 may come first)
    "dense": "denselab_fully_connected_s8",
    "softmax": "denselab_softmax_s8",
    "logistic": "denselab_logistic_s8",
    "tanh": "denselab_tanh_s8",
}


# Names whose {name}.h/.c would replace a file deploy writes or a C standard header.
RESERVED_NAMES = frozenset(
    {"test_samples", "harness", "main", "startup"}
    | {"assert", "ctype", "errno", "float", "limits", "math", "stdarg", "stddef", "stdint"}
    | {"stdio", "stdlib", "string", "time", "inttypes", "stdbool", "arm_acle", "iso646"}
)


MAX_NAME = 64


def generate_c(quantized: QuantizedNetwork | bytes, name: str = "model") -> dict[str, str]:
    """The C99 engine for ``quantized`` (or int8 .tflite bytes), as file name -> text.

    ``{name}.h``/``{name}.c`` hold the model (its tables and the call sequence);
    ``denselab_kernels.h``/``.c`` the kernels, the same for every model.
    ``{name}_invoke(input, output)`` maps int8 ``input`` of shape (n_inputs,) to int8
    ``output`` of shape (n_outputs,), giving the same bytes as the TFLM interpreter.
    """
    if isinstance(quantized, (bytes, bytearray)):
        quantized = read_int8_tflite(quantized)
    check_model_name(name)
    layers = quantized.layers
    names = _layer_names(layers)
    last = len(layers) - 1
    buffers = ["buffer_a", "buffer_b"]
    buffer_sizes = [0, 0]  # ping-pong: layer k writes buffer k % 2, the last writes `output`
    for k, layer in enumerate(layers[:-1]):
        size = layer.n_outputs
        if layers[k + 1].kind == "dense":  # it reads 4 inputs at a time: pad to 4
            size = _round_up_to_4(size)
        buffer_sizes[k % 2] = max(buffer_sizes[k % 2], size)
    readable = [quantized.n_inputs] + [buffer_sizes[k % 2] for k in range(last)]
    gathers = [  # dense layers that gather their used inputs: several runs, or one too near the end
        layer.kind == "dense" and not _reads_in_place(layer.weights, size)
        for layer, size in zip(layers, readable, strict=True)
    ]
    calls = []
    for k, (layer, c_name) in enumerate(zip(layers, names, strict=True)):
        source = "input" if k == 0 else buffers[(k - 1) % 2]
        target = "output" if k == last else buffers[k % 2]
        if gathers[k]:
            runs = f"{c_name}_input_runs, {len(input_runs(layer.weights))}"
            calls.append(f"    denselab_gather_s8({runs}, {source}, gathered);")
            source = "gathered"
        elif layer.kind == "dense" and input_runs(layer.weights)[0][0] > 0:
            source = f"{source} + {input_runs(layer.weights)[0][0]}"  # one run, read in place
        extra = ", scratch" if layer.kind in ("dense", "softmax") else ""
        calls.append(f"    {_KERNEL_CALLS[layer.kind]}(&{c_name}, {source}, {target}{extra});")
    widths = "-".join(
        str(n) for n in [quantized.n_inputs] + [x.n_outputs for x in layers if x.kind == "dense"]
    )
    static = [
        f"static int8_t {buffer}[{size}];\n"
        for buffer, size in zip(buffers, buffer_sizes, strict=True)
        if size
    ]
    gathered = max(
        (_round_up_to_4(_n_used(x)) for x, gather in zip(layers, gathers, strict=True) if gather),
        default=0,
    )
    if gathered:
        static.append(f"static int8_t gathered[{gathered}]; /* used inputs of several runs */\n")
    # the fully connected kernel's sums (4 neurons at a time), softmax's exponentials
    scratch = max(
        [_round_up_to_4(x.n_outputs) for x in layers if x.kind == "dense"]
        + [x.size for x in layers if x.kind == "softmax"],
        default=0,
    )
    if scratch:
        static.append(f"static int32_t scratch[{scratch}]; /* sums, exponentials */\n")
    fields = {
        "name": name,
        "NAME": name.upper(),
        "widths": widths,
        "kernels_version": KERNELS_VERSION,
        "n_inputs": quantized.n_inputs,
        "n_outputs": quantized.n_outputs,
        "input_scale": _c_float(quantized.input_scale),
        "input_zero_point": _c_int(quantized.input_zero_point),
        "output_scale": _c_float(quantized.output_scale),
        "output_zero_point": _c_int(quantized.output_zero_point),
        "layer_lines": "\n".join(
            f" *   {c_name:<11} {_describe(layer)}"
            for layer, c_name in zip(quantized.layers, names, strict=True)
        ),
        "buffer_bytes": f"{buffer_sizes[0]} + {buffer_sizes[1]} bytes of activations"
        + (f", {gathered} bytes of gathered inputs" if gathered else "")
        + (f", {4 * scratch} bytes of int32 scratch" if scratch else ""),
        "tables": "".join(
            _table(layer, c_name, gather)
            for layer, c_name, gather in zip(layers, names, gathers, strict=True)
        ),
        "buffers": "".join(static),
        "invoke_body": "\n".join(calls),
    }
    return {
        f"{name}.h": _template("model.h").substitute(fields),
        f"{name}.c": _template("model.c").substitute(fields),
        **kernel_sources(),
    }


def kernel_sources() -> dict[str, str]:
    """The kernel library, ``denselab_kernels.h`` and ``.c``: one copy serves every model."""
    return {filename: _template(filename).template for filename in KERNELS}


def tflite_c_array(int8_tflite: bytes, name: str = "model") -> dict[str, str]:
    """The flatbuffer as a 16-byte aligned ``const unsigned char {name}_tflite[]`` (for TFLM)."""
    check_c_name(name)
    array = f"{name}_tflite"
    data = np.frombuffer(bytes(int8_tflite), np.uint8)
    fields = {
        "array": array,
        "ARRAY": array.upper(),
        "length": len(data),
        "data": _c_array([f"0x{byte:02x}" for byte in data], per_line=16),
    }
    return {
        f"{array}.h": _template("tflite_array.h").substitute(fields),
        f"{array}.c": _template("tflite_array.c").substitute(fields),
    }


def samples_header(
    inputs_int8: np.ndarray, labels: np.ndarray, name: str = "test_samples"
) -> dict[str, str]:
    """A header ``{name}.h`` with int8 inputs of shape (n_samples, n_inputs) and their labels."""
    check_c_name(name)
    inputs_int8 = np.asarray(inputs_int8)
    labels = np.asarray(labels).reshape(-1)
    if inputs_int8.dtype != np.int8 or inputs_int8.ndim != 2:
        raise DenselabError("test inputs must be int8 of shape (n_samples, n_inputs)")
    if len(labels) != len(inputs_int8) or len(labels) == 0:
        raise DenselabError(f"{len(inputs_int8)} test inputs but {len(labels)} labels")
    rows = ",\n".join(
        f"    {{ /* sample {i}: label {int(label)} */\n{_c_array(row, indent=8)}\n    }}"
        for i, (row, label) in enumerate(zip(inputs_int8, labels, strict=True))
    )
    fields = {
        "name": name,
        "NAME": name.upper(),
        "count": len(labels),
        "input_size": inputs_int8.shape[1],
        "rows": rows,
        "labels": _c_array(labels.astype(int)),
    }
    return {f"{name}.h": _template("test_samples.h").substitute(fields)}


def _layer_names(layers) -> list[str]:
    """C names: dense_1, dense_2, ... and an activation layer takes its dense layer's number."""
    names, dense_count = [], 0
    for layer in layers:
        dense_count += layer.kind == "dense"
        names.append(f"{layer.kind}_{dense_count}")
    return names


def _describe(layer) -> str:
    if layer.kind == "dense":
        scales = "per-channel" if layer.per_channel else "per-tensor"
        n_used = _n_used(layer)
        reads = "" if n_used == layer.n_inputs else f"reads {n_used} inputs, "
        return (
            f"FULLY_CONNECTED {layer.n_inputs} -> {layer.n_outputs}, {layer.activation}, "
            f"{reads}{n_used * layer.n_outputs} int8 weights ({scales} scales)"
        )
    return f"{layer.kind.upper()} over {layer.size} values"


def _table(layer, c_name: str, gather: bool = False) -> str:
    """The layer's constants as C, from its section of ``templates/layers.c``; a dense layer
    that ``gather``s its used inputs first gets a table of their runs."""
    fields = {
        field: getattr(layer, field)
        for field in vars(layer)
        if isinstance(getattr(layer, field), (int, str))
    }
    fields.update(
        c_name=c_name,
        KIND=layer.kind.upper(),
        input_scale=_c_float(layer.input_scale)[:-1],
        output_scale=_c_float(layer.output_scale)[:-1],
    )
    if layer.kind == "softmax":
        fields["beta"] = f"{layer.beta:g}"
    if layer.kind == "dense":
        runs = input_runs(layer.weights)
        used = np.concatenate([np.arange(start, start + count) for start, count in runs])
        pairs = _paired_weights(layer.weights[:, used])
        if pairs.shape[1] > 65535 or layer.n_outputs > 65535:  # uint16_t in the layer struct
            raise DenselabError(
                f"layer {layer.name}: {len(used):,} used inputs and {layer.n_outputs:,} neurons "
                "are too many for C (at most 65,532 and 65,535)"
            )
        fields.update(
            n_inputs=layer.n_inputs,
            n_neurons=layer.n_outputs,
            n_pairs=len(pairs),
            row_length=pairs.shape[1],
            inputs_comment=_inputs_comment(layer.n_inputs, runs, gather),
            input_runs_table=(
                f"static const uint16_t {c_name}_input_runs[{len(runs)}][2] = {{\n"
                + _c_array([f"{{{start}, {count}}}" for start, count in runs], per_line=8)
                + "\n};\n"
                if gather
                else ""
            ),
            padding_comment=(
                f", and {pairs.shape[1] - len(used)} zero columns pad the row to a multiple of 4"
                if pairs.shape[1] > len(used)
                else ""
            ),
            weights=",\n".join(
                f"    {{ /* {_pair_name(p, layer.n_outputs)} */\n"
                f"{_c_array(row, per_line=8, indent=8)}\n    }}"
                for p, row in enumerate(pairs)
            ),
            folded_bias=_c_array(_folded_bias(layer), per_line=8),
            output_multiplier=_c_array(layer.output_multiplier, per_line=8),
            output_shift=_c_array(layer.output_shift),
        )
    section = "dense" if layer.kind == "dense" else layer.kind
    section = "squash" if section in ("logistic", "tanh") else section
    return Template(_sections("layers.c")[section]).substitute(fields)


def _inputs_comment(n_inputs: int, runs: list[tuple[int, int]], gather: bool) -> str:
    """Which inputs a dense layer reads, and how, as a C comment."""
    n_used = sum(count for _, count in runs)
    how = "gathered first (denselab_gather_s8)" if gather else "read where they lie"
    if n_used == n_inputs:
        text = f"all {n_inputs} inputs are used, {how}"
    else:
        where = f"in {len(runs)} runs" if len(runs) > 1 else f"{runs[0][0]} to {sum(runs[0]) - 1}"
        text = (
            f"{n_used} of the {n_inputs} inputs are used, {where}, {how}; the others have "
            "weight 0 in every neuron, so they are not stored"
        )
    return "/* " + "\n * ".join(textwrap.wrap(text, 92)) + " */"


def _paired_weights(weights: np.ndarray) -> np.ndarray:
    """int8 ``weights`` of shape (n_neurons, n_used) as the fully connected kernel reads them:
    int16 of shape ((n_neurons + 1) // 2, n_used rounded up to 4).

    Row p is neurons 2p and 2p+1: ``256 * w[2p + 1][i] + w[2p][i] + 128``, whose high byte is
    the odd neuron's weight and low byte the even one's plus 128. Columns are padded with zero
    weights to a multiple of 4, and each four is in the order 0, 2, 1, 3: the order in which
    SXTB16 widens four int8 inputs (a missing odd neuron has zero weights).
    """
    n_neurons, n_used = weights.shape
    padded = np.zeros((2 * ((n_neurons + 1) // 2), _round_up_to_4(n_used)), np.int32)
    padded[:n_neurons, :n_used] = weights
    lanes = np.arange(padded.shape[1]).reshape(-1, 4)[:, [0, 2, 1, 3]].reshape(-1)
    padded = padded[:, lanes]
    return (256 * padded[1::2] + padded[0::2] + 128).astype(np.int16)


def _pair_name(p: int, n_neurons: int) -> str:
    if 2 * p + 1 < n_neurons:
        return f"neurons {2 * p} and {2 * p + 1}"
    return f"neuron {2 * p}, paired with zeros"


def _reads_in_place(weights: np.ndarray, readable: int) -> bool:
    """Whether a dense layer's used inputs are one run that it may read 4 at a time where it
    lies (``readable`` bytes of input), or must be gathered first."""
    runs = input_runs(weights)
    first, count = runs[0]
    return len(runs) == 1 and first + _round_up_to_4(count) <= readable


def _n_used(layer) -> int:
    return sum(count for _, count in input_runs(layer.weights))


def _round_up_to_4(n: int) -> int:
    return (n + 3) // 4 * 4


def input_runs(weights: np.ndarray) -> list[tuple[int, int]]:
    """The inputs a dense layer reads, as ``(first index, count)`` runs: the columns of
    ``weights`` (n_neurons, n_inputs) that are not zero in every neuron.

    A layer whose weights are all zero still reads input 0, so that no C array is empty.
    """
    if weights.shape[1] > 65535:
        raise DenselabError(f"a dense layer with {weights.shape[1]:,} inputs is too wide for C")
    used = np.any(weights != 0, axis=0)
    if not used.any():
        used[0] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], used.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    return [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]


def _folded_bias(layer) -> np.ndarray:
    """``bias[j] - input_zero_point * sum_i weights[j][i]``, exactly, as int32.

    TFLM accumulates ``bias[j] + sum_i w[j][i] * (x[i] - input_zero_point)`` in int32; the
    same integer is ``folded_bias[j] + sum_i w[j][i] * x[i]``, with the constant part done once.
    """
    bias = (
        np.zeros(layer.n_outputs, np.int64) if layer.bias is None else layer.bias.astype(np.int64)
    )
    folded = bias - int(layer.input_zero_point) * layer.weights.astype(np.int64).sum(axis=1)
    if np.abs(folded).max(initial=0) >= 2**31:
        raise DenselabError(f"layer {layer.name}: bias out of the int32 range after folding")
    return folded.astype(np.int32)


def _c_array(values, per_line: int = 16, indent: int = 4) -> str:
    """Comma-separated values, ``per_line`` to a line, right-aligned in columns."""
    texts = [str(int(v)) if not isinstance(v, str) else v for v in values]
    width = max((len(t) for t in texts), default=1)
    lines = [
        " " * indent + ", ".join(t.rjust(width) for t in texts[i : i + per_line])
        for i in range(0, len(texts), per_line)
    ]
    return ",\n".join(lines)


def _c_float(value: float) -> str:
    """A float32 as the shortest C literal that reads back to the same float."""
    text = np.format_float_positional(np.float32(value), unique=True, trim="0")
    if abs(value) < 1e-4 and value != 0:
        text = np.format_float_scientific(np.float32(value), unique=True)
    return f"{text}f"


def _c_int(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def _sections(filename: str) -> dict[str, str]:
    """A template file cut at its ``/* @section name */`` lines."""
    text = _template(filename).template
    parts = re.split(r"^/\* @section (\w+) \*/\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _template(filename: str) -> Template:
    path = resources.files("denselab.engine").joinpath("templates").joinpath(filename)
    return Template(path.read_text(encoding="utf-8"))


def check_c_name(name: str) -> None:
    """Refuse a name that is not a plain (ASCII) C identifier."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise DenselabError(f"{name!r} is not a C identifier; use letters, digits and _")


def check_model_name(name: str) -> None:
    """A model's name: a C identifier whose ``{name}.h``/``.c`` clash with no file the engine
    needs (``denselab_kernels``, ``test_samples``) and no C standard header (``stdint``), in
    any case: ``TEST_SAMPLES.h`` would share ``test_samples.h``'s include guard (and be that
    very file on a case-insensitive disk)."""
    check_c_name(name)
    if len(name) > MAX_NAME:  # {name}_tflite.c and the staging folder must fit a file name
        raise DenselabError(f"the name is {len(name)} characters; give at most {MAX_NAME}")
    if name.lower() in RESERVED_NAMES or name.lower().startswith("denselab_"):
        raise DenselabError(f"{name!r} is taken by a file the engine needs; choose another name")
