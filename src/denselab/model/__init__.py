"""Dense networks: build the lesson's models, load saved ones safely, and read their layers.

A *dense network* here is what the course teaches: an optional Flatten/Reshape, then Dense
layers, each ``output = activation(dot(input, kernel) + bias)``, one after the other.

- :mod:`.network`: ``DenseLayer``/``DenseNetwork`` (kernels ``(n_inputs, n_neurons)``,
  biases), :func:`build_model`, and :func:`dense_network`, which reads a Keras model as one,
  folding activation and normalisation layers into the Dense layers;
- :mod:`.graph`: the model's graph as one chain of layers, or why it is not one;
- :mod:`.files`: :func:`load_model` and :func:`check_model_file` (nothing in a file runs);
- :mod:`.hdf5`: ``.h5`` files from Keras 2.0 to 3.x, rebuilt without Keras's loader.
"""

from ..backend import keras as _keras  # noqa: F401  (tests reach Keras through here)
from .files import MAX_WEIGHTS, check_model_file, code_layer, load_model
from .network import (
    ACTIVATIONS,
    DenseLayer,
    DenseNetwork,
    build_model,
    dense_network,
    for_pixels_0_1,
)

__all__ = [
    "ACTIVATIONS",
    "MAX_WEIGHTS",
    "code_layer",
    "DenseLayer",
    "DenseNetwork",
    "build_model",
    "check_model_file",
    "dense_network",
    "for_pixels_0_1",
    "load_model",
]
