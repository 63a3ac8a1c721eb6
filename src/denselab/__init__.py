"""denselab: from one neuron to a microcontroller.

The few functions a notebook needs::

    import denselab
    denselab.neuron_lesson()                      # w ~ 2, b ~ -1, prediction ~ 19
    data = denselab.load_dataset("mnist-5k")
    run = denselab.train(denselab.TrainConfig(dataset="mnist-5k"))
    network = denselab.dense_network(run.model)   # the kernels and biases as NumPy arrays
    denselab.explain(network, run.model, data.x_test[0]).max_abs_diff

Everything imports lazily, so ``import denselab`` is instant.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "data",
    "neuron_lesson": "lessons",
    "tour": "lessons",
    "hand_training_loop": "lessons",
    "predict": "lessons",
    "build_model": "model",
    "load_model": "model",
    "dense_network": "model",
    "TrainConfig": "train",
    "train": "train",
    "evaluate": "train",
    "explain": "explain",
    "forward": "explain",
    "deploy": "deploy",
    "DenselabError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'denselab' has no attribute {name!r}")
