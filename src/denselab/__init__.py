"""denselab: from one neuron to a microcontroller.

The few functions a notebook needs::

    import denselab
    denselab.neuron_lesson()                      # w ~ 2, b ~ -1, prediction ~ 19
    data = denselab.load_dataset("mnist-5k")
    run = denselab.train(denselab.TrainConfig(dataset="mnist-5k"))
    network = denselab.dense_network(run.model)   # the kernels and biases as NumPy arrays
    denselab.explain(network, run.model, data.x_test[0]).max_abs_diff

Everything imports lazily, so ``import denselab`` is instant.

The pipeline, one module (or package) per step::

    data -> model -> train (runs) -> explain / plots -> int8 -> engine -> target -> verify
    -> explore; deploy and search run several steps; cli is a thin shell over them.
"""

import sys
import types
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "data",
    "neuron_lesson": "lessons",
    "tour": "tour",
    "hand_training_loop": "lessons",
    "predict": "lessons",
    "build_model": "model",
    "load_model": "model",
    "dense_network": "model",
    "TrainConfig": "runs",
    "Run": "runs",
    "train": "train",
    "evaluate": "evaluate",
    "explain": "explain",
    "forward": "explain",
    "deploy": "deploy",
    "DenselabError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'denselab' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Importing ``denselab.train`` binds the submodule to ``denselab.train``, over the
    function of that name; the public names stay the functions (a rerun notebook cell, and
    ``help(denselab.train)``, get the function)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            self.__dict__.pop(name, None)  # the next access finds the function again
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
