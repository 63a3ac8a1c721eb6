"""The int8 edges a calibration can reach: refused with one line where TFLite Micro's own
arithmetic is undefined or aborts, defined and the same on every platform elsewhere.

Each case is a model people can make by accident: a layer whose outputs never move in the
calibration data, a softmax over logits that are all equal, an input exactly halfway between
two int8 steps, a model named like a file the engine already writes.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

from denselab.backend import keras as _keras  # noqa: E402
from denselab.cli import main  # noqa: E402
from denselab.engine import c_engine_invoke, generate_c  # noqa: E402
from denselab.engine.generate import check_model_name  # noqa: E402
from denselab.engine.host import C_FLAGS  # noqa: E402
from denselab.errors import DenselabError  # noqa: E402
from denselab.int8 import arithmetic  # noqa: E402
from denselab.int8.convert import to_tflite  # noqa: E402
from denselab.int8.tflite import read_int8_tflite  # noqa: E402
from denselab.model import dense_network  # noqa: E402


def _model(n_inputs: int, kernel, bias, activation=None):
    keras = _keras()
    model = keras.Sequential(
        [keras.Input((n_inputs,)), keras.layers.Dense(len(bias), activation=activation)]
    )
    model.layers[0].set_weights([np.asarray(kernel, "f4"), np.asarray(bias, "f4")])
    return model


def _deploy_refused(tmp_path, capsys, model, x, y) -> str:
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    capsys.readouterr()
    out = tmp_path / "fw"
    args = ["deploy", tmp_path / "m.keras", "--data", tmp_path / "d.npz", "--out", out]
    status = main([str(a) for a in [*args, "--target", "none"]])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing written, nothing half-written
    return err


def test_a_layer_whose_outputs_never_moved_is_refused_not_shifted_by_35_bits(tmp_path, capsys):
    """x1 == x2 in every calibration sample: 2000 x1 - 2000 x2 is always 0, its output scale
    tiny, and the multiplier's left shift 35 bits (undefined in TFLM: x86 and Arm differ)."""
    x = np.random.default_rng(0).uniform(-1200, 1200, (300, 1))
    model = _model(2, [[2000.0], [-2000.0]], [0.0])
    y = np.random.default_rng(1).normal(size=(300, 1)).astype("f4")  # numbers to predict
    err = _deploy_refused(tmp_path, capsys, model, np.hstack([x, x]).astype("f4"), y)
    assert "left shift of 35 bits" in err


def test_a_layer_whose_outputs_moved_is_deployed(tmp_path, cli):
    """Control: the same layer on inputs that differ deploys, bit-exact with TFLM."""
    x = np.random.default_rng(0).uniform(-1, 1, (300, 2)).astype("f4")
    model = _model(2, [[2000.0], [-2000.0]], [0.0])
    model.save(tmp_path / "m.keras")
    y = np.random.default_rng(1).normal(size=(300, 1)).astype("f4")
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    model_file, data_file, out = tmp_path / "m.keras", tmp_path / "d.npz", tmp_path / "fw"
    report = cli("deploy", model_file, "--data", data_file, "--out", out, "--target=none", "--json")
    assert report["c_vs_tflm_differing_samples"] == 0


def test_a_softmax_over_equal_logits_is_refused_not_aborted(tmp_path, capsys):
    """All logits 0 in calibration: TFLM's QuantizeMultiplierGreaterThanOne would abort the
    whole process (exit 134, no message, a half-written folder)."""
    x = np.random.default_rng(1).normal(size=(300, 4)).astype("f4")
    model = _model(4, np.zeros((4, 10)), np.zeros(10), "softmax")
    y = np.arange(300) % 10  # ten classes
    assert "too small for the int8 kernel" in _deploy_refused(tmp_path, capsys, model, x, y)


def test_512_equal_maxima_give_each_class_the_lowest_probability_everywhere():
    """Each of 512 equal maxima has p = 1/512, under half a step of 1/256: -128. The sum of
    exps is then 2^28 and the rounding shift 32 bits, which must not reach a C shift."""
    model = _model(8, np.zeros((8, 512)), np.ones(512), "softmax")
    x = np.random.default_rng(0).normal(size=(300, 8)).astype("f4")
    _, int8_tflite = to_tflite(dense_network(model), x)
    quantized = read_int8_tflite(int8_tflite)
    zeros = np.zeros((1, 8), np.int8)
    q = zeros[0]
    for layer in quantized.layers:  # the integer arithmetic, step by step, in Python
        step = {"dense": arithmetic.dense, "softmax": arithmetic.softmax}[layer.kind]
        q, _ = step(layer, q)
    assert np.all(q == -128)
    sources = generate_c(int8_tflite)
    assert np.array_equal(c_engine_invoke(sources, zeros, sanitize=True)[0], q)  # UBSan: no shift
    from denselab.target import available, run_on_target

    if available()[0]:
        on_chip = run_on_target(sources, zeros, target="cortex-m4", count=False).outputs[0]
        assert np.array_equal(on_chip, q)


@pytest.mark.parametrize("name", ["TEST_SAMPLES", "Denselab_Kernels", "STDINT", "Main"])
def test_names_of_files_the_engine_writes_are_refused_in_any_case(name):
    with pytest.raises(DenselabError, match="taken by a file"):
        check_model_name(name)


def test_a_name_unlike_any_file_is_kept():
    check_model_name("Gesture_Model")  # control


def test_quantize_input_rounds_halves_away_from_zero_in_python_c_and_the_page(tmp_path):
    """TFLite quantizes with std::round: -19.5 -> -20, -18.5 -> -19 (NumPy's np.round gives
    -20 and -18). The chip's {name}_quantize_input, denselab's reports and the page agree."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed")
    model = _model(4, np.eye(4)[:, :3], np.zeros(3))
    x = np.random.default_rng(2).uniform(-1, 1, (200, 4)).astype("f4")
    _, int8_tflite = to_tflite(dense_network(model), x)
    quantized = read_int8_tflite(int8_tflite)
    scale = np.float32(quantized.input_scale)
    halves = np.arange(-40, 40, dtype=np.float32) + np.float32(0.5)
    ties = (halves * scale).astype(np.float32)
    exact = (ties / scale) == halves  # exactly halfway once divided again, as the C does
    ties, halves = ties[exact], halves[exact]
    assert len(ties) > 20
    below_half = np.nextafter(np.float32(0.5), np.float32(0)) * scale  # 0.49999997: rounds to 0
    floats = np.concatenate([ties, [below_half, -below_half, np.nan, np.inf, -np.inf]])
    floats = np.resize(floats.astype(np.float32), (-(-len(floats) // 4) * 4,)).reshape(-1, 4)
    ours = quantized.quantize_input(floats)

    sources = generate_c(int8_tflite, "edge")
    for file, text in sources.items():
        (tmp_path / file).write_text(text)
    (tmp_path / "q.c").write_text(
        '#include <stdio.h>\n#include "edge.h"\n'
        "int main(void) { float x[4]; int8_t q[4];\n"
        "  while (fread(x, sizeof x, 1, stdin) == 1) {\n"
        "    edge_quantize_input(x, q); fwrite(q, 1, 4, stdout); }\n  return 0; }\n"
    )
    units = ["q.c", *sorted(f for f in sources if f.endswith(".c"))]
    subprocess.run(["gcc", *C_FLAGS, "-O2", *units, "-o", "q"], cwd=tmp_path, check=True)
    run = subprocess.run(
        [str(tmp_path / "q")], input=floats.tobytes(), capture_output=True, check=True
    )
    c = np.frombuffer(run.stdout, np.int8).reshape(ours.shape)
    assert np.array_equal(c, ours)
    zero_point = quantized.input_zero_point
    away = np.clip(np.trunc(halves) + np.sign(halves) + zero_point, -128, 127)
    to_even = np.clip(np.round(halves) + zero_point, -128, 127)
    assert np.array_equal(ours.reshape(-1)[: len(ties)], away)
    assert not np.array_equal(away, to_even)  # the control: NumPy's rounding is another one
    assert list(ours.reshape(-1)[len(ties) : len(ties) + 5]) == [
        zero_point,
        zero_point,
        -128,
        127,
        -128,  # 0.49999997 and its negative: the zero point
    ]
