"""Pick Keras's backend before Keras is imported.

denselab trains on the JAX backend by default: for these small dense networks it is several
times faster on a CPU than the TensorFlow backend (see BENCHMARKS.md). A user's own choice,
``KERAS_BACKEND=tensorflow``, is respected.
"""

import contextlib
import os


def keras():
    """Import and return ``keras`` with denselab's default backend and quiet TensorFlow logs."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    _jax_compilation_cache()
    import keras as _keras

    return _keras


def _jax_compilation_cache() -> None:
    """Keep JAX's compiled programs on disk, so a second run skips ~2 s of XLA compilation.

    The folder is ``$DENSELAB_CACHE`` (default ``~/.cache/denselab``)/``jax``; a user's own
    ``JAX_COMPILATION_CACHE_DIR`` wins. Where the folder cannot be made, nothing is cached.
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    from ._io import cache_dir

    folder = str(cache_dir() / "jax")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def tensorflow():
    """Import TensorFlow (only the deploy step needs it: about 7 s)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as _tf

    return _tf


def set_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` without its side effect of importing TensorFlow (~7 s).

    Seeds Python, NumPy and Keras's global seed generator; TensorFlow too if already imported.
    """
    import random
    import sys

    import numpy as np

    keras()
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)


@contextlib.contextmanager
def tensorflow_unprobed():
    """Stop Keras from importing TensorFlow (~7 s) just to ask whether it is installed.

    Keras's serializer checks ``isinstance(obj, tf.TensorShape)`` when TensorFlow is
    importable; an object made without TensorFlow loaded cannot be one, so while TensorFlow is
    not imported we tell Keras it is absent, then restore its own answer.
    """
    import sys

    if "tensorflow" in sys.modules:
        yield
        return
    from keras.src.utils import module_utils

    saved = module_utils.tensorflow._available
    module_utils.tensorflow._available = False
    try:
        yield
    finally:
        module_utils.tensorflow._available = saved
