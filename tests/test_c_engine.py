"""The generated C engine against its references: TFLite Micro (int8) and Keras (float).

"Bit-exact" means the C engine and the TFLM interpreter write the same output bytes for
the same int8 .tflite and input, on every model and every input tried here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to build the generated C", allow_module_level=True)

from random_models import (  # noqa: E402
    random_dense_model,
    random_int8_inputs,
)

from denselab.backend import keras as _keras  # noqa: E402
from denselab.engine import KERNELS, generate_c, samples_header, tflite_c_array  # noqa: E402
from denselab.engine.host import (  # noqa: E402
    C_FLAGS,
    CORTEX_M4_FLAGS,
    c_engine_invoke,
    c_engine_size,
)
from denselab.errors import DenselabError  # noqa: E402
from denselab.int8.convert import operator_names, to_tflite  # noqa: E402
from denselab.int8.tflite import read_int8_tflite  # noqa: E402
from denselab.int8.tflm import tflm_arena_bytes, tflm_invoke  # noqa: E402
from denselab.int8.tflm_math import quantize_multiplier  # noqa: E402
from denselab.model import build_model, dense_network  # noqa: E402

keras = _keras()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "classify_digits"
N_RANDOM_MODELS = 20
ARM_CORES = ("cortex-m0plus", "cortex-m4", "cortex-m7")
needs_arm_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"
)


def converted(seed: int, per_channel: bool = True, **kinds) -> dict:
    model, representative = random_dense_model(seed, **kinds)
    network = dense_network(model)
    float_tflite, int8_tflite = to_tflite(network, representative, per_channel=per_channel)
    return {
        "seed": seed,
        "model": model,
        "network": network,
        "representative": representative,
        "float_tflite": float_tflite,
        "int8_tflite": int8_tflite,
        "sources": generate_c(int8_tflite, "model"),
        "inputs": random_int8_inputs(network.n_inputs, seed),
    }


@pytest.fixture(scope="module")
def random_models() -> list[dict]:
    return [converted(seed) for seed in range(N_RANDOM_MODELS)]


@pytest.fixture(scope="module")
def digits_model() -> dict:
    """A 64-32-10 classifier trained briefly on scikit-learn's 8x8 digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data.astype(np.float32) / 16.0, digits.target
    keras.utils.set_random_seed(0)
    model = build_model((64,), [32, 10], ["relu", "softmax"], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], epochs=40, batch_size=32, verbose=0)
    float_tflite, int8_tflite = to_tflite(dense_network(model), x[:300])
    quantized = read_int8_tflite(int8_tflite)
    x_test = x[1400:]
    q = np.round(x_test / quantized.input_scale) + quantized.input_zero_point
    return {
        "model": model,
        "quantized": quantized,
        "int8_tflite": int8_tflite,
        "x_test": x_test,
        "x_test_int8": np.clip(q, -128, 127).astype(np.int8),
        "y_test": y[1400:],
    }


def test_c_engine_matches_tflite_micro_on_random_dense_models(random_models):
    differing = {}
    for case in random_models:
        expected = tflm_invoke(case["int8_tflite"], case["inputs"])
        actual = c_engine_invoke(case["sources"], case["inputs"])
        differing[f"seed {case['seed']} {case['network']}"] = int(np.sum(actual != expected))
    assert len(differing) >= 20
    assert sum(differing.values()) == 0, differing


def test_random_models_cover_widths_inputs_biases_and_activations(random_models):
    networks = [case["network"] for case in random_models]
    assert {1, 784} <= {network.n_inputs for network in networks}
    assert {len(network.layers) for network in networks} == {1, 2, 3, 4}
    assert {"relu", "linear", "softmax"} <= {
        layer.activation for network in networks for layer in network.layers
    }
    # The converter folds a linear layer's bias into the next layer's, so check per model.
    for case in random_models:
        layers = read_int8_tflite(case["int8_tflite"]).layers
        assert any(layer.kind == "dense" and layer.bias is not None for layer in layers)


def test_c_engine_is_clean_under_address_and_undefined_sanitizers(random_models):
    for case in random_models:
        inputs = case["inputs"][:100]  # includes the all -128 and all 127 inputs
        actual = c_engine_invoke(case["sources"], inputs, sanitize=True)
        np.testing.assert_array_equal(actual, tflm_invoke(case["int8_tflite"], inputs))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_layers_match_tflite_micro(activation):
    kinds = {"hidden": ("relu", activation), "outputs": (activation,)}
    for seed in (100, 101, 102):
        case = converted(seed, **kinds)
        assert activation.replace("sigmoid", "logistic").upper() in operator_names(
            case["int8_tflite"]
        )
        expected = tflm_invoke(case["int8_tflite"], case["inputs"])
        actual = c_engine_invoke(case["sources"], case["inputs"], sanitize=seed == 100)
        assert np.sum(actual != expected) == 0, f"seed {seed} {case['network']}"


def pruned_dense_model(seed: int):
    """A random_dense_model whose layers ignore 20-90% of their inputs (weight 0 in every
    neuron, as a pruned pixel); seed 305's first layer ignores all of them."""
    model, representative = random_dense_model(seed)
    rng = np.random.default_rng(seed)
    for number, layer in enumerate(model.layers):
        kernel, bias = layer.get_weights()
        unused = rng.random(kernel.shape[0]) < rng.uniform(0.2, 0.9)
        if seed == 305 and number == 0:
            unused[:] = True  # a layer that reads nothing at all: its bias alone
        kernel[unused] = 0.0
        layer.set_weights([kernel, bias])
    return model, representative


def test_unused_inputs_are_not_stored_and_outputs_stay_bit_exact(tmp_path):
    """Inputs with weight 0 in every neuron (a pruned pixel) are skipped, in any layer."""
    for seed in (300, 301, 302, 303, 304, 305):
        model, representative = pruned_dense_model(seed)
        network = dense_network(model)
        _, int8_tflite = to_tflite(network, representative)
        inputs = random_int8_inputs(network.n_inputs, seed)
        sources = generate_c(int8_tflite, "model")
        expected = tflm_invoke(int8_tflite, inputs)
        actual = c_engine_invoke(sources, inputs, sanitize=seed == 300)
        assert np.sum(actual != expected) == 0, f"seed {seed} {network}"

        first = read_int8_tflite(int8_tflite).layers[0]
        used = int(np.any(first.weights != 0, axis=0).sum()) or 1
        # neurons two to an int16 row; the used inputs padded to a multiple of 4, no more
        declaration = f"dense_1_weights[{(first.n_outputs + 1) // 2}][{-(-used // 4) * 4}]"
        assert declaration in sources["model.c"], f"seed {seed}: {declaration} not declared"


def test_per_tensor_weight_scales_match_tflite_micro():
    """One scale per layer: TFLM multiplies input_scale * filter_scale in float, not double."""
    for seed in (200, 201, 202):
        case = converted(seed, per_channel=False)
        assert not read_int8_tflite(case["int8_tflite"]).layers[0].per_channel
        expected = tflm_invoke(case["int8_tflite"], case["inputs"])
        assert np.sum(c_engine_invoke(case["sources"], case["inputs"]) != expected) == 0


def test_generated_c_compiles_cleanly_with_gcc_and_for_cortex_m4(random_models, tmp_path):
    biggest = max(random_models, key=lambda case: case["network"].n_params)
    smallest = min(random_models, key=lambda case: case["network"].n_params)
    compilers = [["gcc", *C_FLAGS], ["gcc", *C_FLAGS, "-O3"]]
    if shutil.which("arm-none-eabi-gcc"):
        compilers.append(["arm-none-eabi-gcc", *CORTEX_M4_FLAGS])
        compilers += [  # the DSP path (M4, M7) and the portable one (M0+), at both levels
            ["arm-none-eabi-gcc", *C_FLAGS, f"-mcpu={core}", "-mthumb", opt]
            for core in ARM_CORES
            for opt in ("-O2", "-Os")
        ]
    for case in (biggest, smallest):
        for name, text in case["sources"].items():
            (tmp_path / name).write_text(text)
        for compiler in compilers:
            for unit in ("model.c", "denselab_kernels.c"):
                result = subprocess.run(
                    [*compiler, "-c", unit, "-o", unit[:-2] + ".o"],
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                )
                assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_arm_gcc
def test_fully_connected_kernel_uses_smlad_on_cortex_m4_and_m7_only(random_models, tmp_path):
    """Two 16-bit multiply-accumulates per instruction where the core has them (DSP)."""
    for name in KERNELS:
        (tmp_path / name).write_text(random_models[0]["sources"][name])
    for core in ARM_CORES:
        assembly = subprocess.run(
            ["arm-none-eabi-gcc", *C_FLAGS, f"-mcpu={core}", "-mthumb", "-O2", "-S"]
            + ["denselab_kernels.c", "-o", "-"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        functions = _assembly_functions(assembly)
        kernel = _called_from(functions, "denselab_fully_connected_s8")
        uses_smlad = any(re.search(r"\bsmlad\b", functions[name]) for name in kernel)
        assert uses_smlad == (core != "cortex-m0plus"), f"{core}: {sorted(kernel)}"


def _assembly_functions(assembly: str) -> dict[str, str]:
    """gcc's assembly output as function name -> its instructions."""
    return dict(re.findall(r"^(\w+):\n(.*?)^\t\.size\t\1,", assembly, re.MULTILINE | re.DOTALL))


def _called_from(functions: dict[str, str], root: str) -> set[str]:
    """``root`` and every function it calls (bl) or jumps to (b), transitively."""
    reached, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in reached or name not in functions:
            continue
        reached.add(name)
        todo += re.findall(r"^\tb(?:l|\.w)?\t(\w+)$", functions[name], re.MULTILINE)
    return reached


def test_cortex_m4_dsp_kernel_gives_tflite_micros_bytes():
    """The SMLAD path itself, run on an emulated Cortex-M4: odd widths, 1 to 784 inputs, and
    pruned inputs (one run read where it lies, or several gathered)."""
    target = pytest.importorskip("denselab.target")
    ready, why = target.available()
    if not ready:
        pytest.skip(why)
    for seed, pruned in ((0, False), (11, False), (301, True), (305, True)):
        model, representative = pruned_dense_model(seed) if pruned else random_dense_model(seed)
        network = dense_network(model)
        _, int8_tflite = to_tflite(network, representative)
        sources = generate_c(int8_tflite, "model")
        inputs = random_int8_inputs(network.n_inputs, seed)[:100]
        expected = tflm_invoke(int8_tflite, inputs)
        for opt in ("-O2", "-Os"):
            run = target.run_on_target(sources, inputs, "model", target="cortex-m4", opt=opt)
            assert np.sum(run.outputs != expected) == 0, f"seed {seed} {network} {opt}"


def test_two_models_share_one_kernel_library_in_one_program(digits_model, tmp_path):
    """digits_invoke and line_invoke in one host program, linked with one denselab_kernels.c."""
    line = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    line.set_weights([np.array([[2.0]], np.float32), np.array([-1.0], np.float32)])
    representative = np.linspace(-1, 1, 200, dtype=np.float32).reshape(-1, 1)
    _, line_tflite = to_tflite(dense_network(line), representative)
    digits_sources = generate_c(digits_model["int8_tflite"], "digits")
    line_sources = generate_c(line_tflite, "line")
    assert all(digits_sources[name] == line_sources[name] for name in KERNELS)
    for name, text in (digits_sources | line_sources).items():
        (tmp_path / name).write_text(text)
    (tmp_path / "main.c").write_text(
        "/* Reads a digits sample then a line sample until stdin ends; writes both outputs. */\n"
        '#include <stdio.h>\n#include "digits.h"\n#include "line.h"\n\n'
        "int main(void)\n{\n"
        "    static int8_t digits_in[DIGITS_INPUT_SIZE], digits_out[DIGITS_OUTPUT_SIZE];\n"
        "    static int8_t line_in[LINE_INPUT_SIZE], line_out[LINE_OUTPUT_SIZE];\n"
        "    while (fread(digits_in, 1, sizeof digits_in, stdin) == sizeof digits_in &&\n"
        "           fread(line_in, 1, sizeof line_in, stdin) == sizeof line_in) {\n"
        "        digits_invoke(digits_in, digits_out);\n"
        "        line_invoke(line_in, line_out);\n"
        "        fwrite(digits_out, 1, sizeof digits_out, stdout);\n"
        "        fwrite(line_out, 1, sizeof line_out, stdout);\n"
        "    }\n    return 0;\n}\n"
    )
    units = ["main.c", "digits.c", "line.c", "denselab_kernels.c"]
    subprocess.run(["gcc", *C_FLAGS, "-O2", *units, "-o", "both"], cwd=tmp_path, check=True)

    digits_inputs = digits_model["x_test_int8"]
    line_inputs = np.random.default_rng(0).integers(-128, 128, (len(digits_inputs), 1), np.int8)
    stdin = np.concatenate([digits_inputs, line_inputs], axis=1).tobytes()
    stdout = subprocess.run(["./both"], input=stdin, cwd=tmp_path, capture_output=True, check=True)
    outputs = np.frombuffer(stdout.stdout, np.int8).reshape(len(digits_inputs), -1)
    np.testing.assert_array_equal(
        outputs[:, :10], tflm_invoke(digits_model["int8_tflite"], digits_inputs)
    )
    np.testing.assert_array_equal(outputs[:, 10:], tflm_invoke(line_tflite, line_inputs))


def test_float_tflite_agrees_with_the_keras_model(random_models):
    import tensorflow as tf

    for case in random_models[:8]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=case["float_tflite"])
        interpreter.allocate_tensors()
        (input_detail,), (output_detail,) = (
            interpreter.get_input_details(),
            interpreter.get_output_details(),
        )
        samples = case["representative"][:20]
        expected = case["model"].predict(samples, verbose=0)
        for sample, keras_output in zip(samples, expected, strict=True):
            interpreter.set_tensor(input_detail["index"], sample[np.newaxis, :])
            interpreter.invoke()
            tflite_output = interpreter.get_tensor(output_detail["index"])[0]
            scale = max(1.0, float(np.max(np.abs(keras_output))))
            np.testing.assert_allclose(tflite_output, keras_output, rtol=1e-4, atol=1e-4 * scale)


def test_int8_accuracy_stays_close_to_float_on_digits(digits_model):
    y_test = digits_model["y_test"]
    float_predictions = digits_model["model"].predict(digits_model["x_test"], verbose=0)
    float_accuracy = np.mean(np.argmax(float_predictions, axis=1) == y_test)
    sources = generate_c(digits_model["quantized"], "model")
    int8_outputs = c_engine_invoke(sources, digits_model["x_test_int8"])
    int8_accuracy = np.mean(np.argmax(int8_outputs, axis=1) == y_test)
    assert float_accuracy > 0.85  # about 0.91 after 40 epochs on 1,400 digits
    assert int8_accuracy >= float_accuracy - 0.02
    expected = tflm_invoke(digits_model["int8_tflite"], digits_model["x_test_int8"])
    np.testing.assert_array_equal(int8_outputs, expected)


def test_example_builds_and_classifies_the_stored_digits(digits_model, tmp_path):
    for file in ("main.c", "Makefile"):
        shutil.copy(EXAMPLE / file, tmp_path / file)
    files = generate_c(digits_model["quantized"], "model") | samples_header(
        digits_model["x_test_int8"][:10], digits_model["y_test"][:10], "test_samples"
    )
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    build = subprocess.run(["make", "CC=gcc"], cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    run = subprocess.run(["./classify_digits"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert len(lines) == 11 and lines[0].startswith("digit  0: predicted ")
    correct = int(lines[-1].split()[0])
    assert lines[-1] == f"{correct} of 10 correct" and correct >= 8


def test_784_20_10_model_fits_a_small_microcontroller():
    model = build_model((28, 28), [20, 10], ["relu", "softmax"], seed=0)
    representative = np.random.default_rng(0).random((100, 28, 28), dtype=np.float32)
    _, int8_tflite = to_tflite(dense_network(model), representative)
    size = c_engine_size(generate_c(int8_tflite, "mnist"), "mnist")
    weights = 784 * 20 + 20 * 10
    assert weights < size["flash_bytes"] < weights + 8 * 1024
    # the two ping-pong buffers and the kernel's int32 sums, nothing else
    assert size["ram_bytes"] <= 20 + 10 + 4 * 20 + 16
    assert tflm_arena_bytes(int8_tflite) > size["ram_bytes"]


def test_tflite_c_array_holds_the_whole_flatbuffer_16_byte_aligned(random_models, tmp_path):
    int8_tflite = random_models[0]["int8_tflite"]
    for name, text in tflite_c_array(int8_tflite, "model").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "check.c").write_text(
        '#include <stdint.h>\n#include <stdio.h>\n#include "model_tflite.h"\n'
        "int main(void) {\n    unsigned long sum = 0;\n    unsigned int i;\n"
        "    for (i = 0; i < model_tflite_len; i++) sum += model_tflite[i];\n"
        '    printf("%u %lu %d\\n", model_tflite_len, sum, (int)((uintptr_t)model_tflite % 16));\n'
        "    return 0;\n}\n"
    )
    subprocess.run(
        ["gcc", *C_FLAGS, "check.c", "model_tflite.c", "-o", "check"], cwd=tmp_path, check=True
    )
    output = subprocess.run(["./check"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert output.split() == [str(len(int8_tflite)), str(sum(int8_tflite)), "0"]


def test_quantize_multiplier_rounds_like_tflite():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(1 - 2.0**-40) == (1 << 30, 1)  # rounds up to 2^31: renormalized
    assert quantize_multiplier(2.0**-40) == (0, 0)  # shift below -31 flushes to zero
    assert quantize_multiplier(0.75 + 2.0**-32) == (1610612737, 0)  # .5 rounds away, not to even


def test_user_mistakes_are_reported_as_denselab_errors(random_models):
    case = random_models[0]
    with pytest.raises(DenselabError, match="C identifier"):
        generate_c(case["int8_tflite"], "my-model")
    with pytest.raises(DenselabError, match="representative"):
        to_tflite(case["network"], np.zeros((10, case["network"].n_inputs + 1), np.float32))
    with pytest.raises(DenselabError, match="int8"):
        c_engine_invoke(case["sources"], case["inputs"].astype(np.float32))
    with pytest.raises(DenselabError, match="flatbuffer"):
        read_int8_tflite(b"not a model")
