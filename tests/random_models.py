"""Random dense Keras models and random int8 inputs: what the C engine, the emulated chip and
the int8 arithmetic are all held to TFLite Micro on."""

from __future__ import annotations

import numpy as np

from denselab.backend import keras as _keras

keras = _keras()
N_INPUTS_PER_MODEL = 1000


def random_dense_model(seed: int, hidden=("relu", "linear"), outputs=("softmax", "linear")):
    """A plain Keras MLP with 1-4 Dense layers and random (non-zero) weights and biases."""
    rng = np.random.default_rng(seed)
    n_inputs = int(rng.choice([1, 3, 16, 64, 200, 784]))
    widths = [int(rng.integers(1, 129)) for _ in range(rng.integers(1, 5))]
    activations = [str(rng.choice(hidden)) for _ in widths[:-1]] + [str(rng.choice(outputs))]
    model = keras.Sequential(
        [keras.Input((n_inputs,))]
        + [keras.layers.Dense(w, activation=a) for w, a in zip(widths, activations, strict=True)]
    )
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        spread = 10 ** rng.uniform(-2, 0.5)  # from tiny to large weights: varied requant scales
        layer.set_weights(
            [
                rng.normal(0, spread, kernel.shape).astype(np.float32),
                rng.normal(0, spread * rng.uniform(0, 3), bias.shape).astype(np.float32),
            ]
        )
    low, high = sorted(rng.uniform(-3, 3, 2)) if seed % 2 else (0.0, float(rng.uniform(0.1, 5)))
    representative = rng.uniform(low, high, (200, n_inputs)).astype(np.float32)
    return model, representative


def random_int8_inputs(n_inputs: int, seed: int) -> np.ndarray:
    """N_INPUTS_PER_MODEL random int8 inputs; the first two are all -128 and all 127."""
    rng = np.random.default_rng(1000 + seed)
    inputs = rng.integers(-128, 128, (N_INPUTS_PER_MODEL, n_inputs), dtype=np.int8)
    inputs[0], inputs[1] = -128, 127
    return inputs
