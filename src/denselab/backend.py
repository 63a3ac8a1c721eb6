"""Pick Keras's backend before Keras is imported.

denselab trains on the JAX backend by default: for these small dense networks it is several
times faster on a CPU than the TensorFlow backend (see BENCHMARKS.md). A user's own choice,
``KERAS_BACKEND=tensorflow``, is respected.
"""

import contextlib
import gc
import importlib.abc
import os
import sys
import threading

# Keras imports these at start-up, when installed, for integrations denselab never uses
# (scikit-learn wrappers, pandas DataFrames in `fit`, matplotlib image galleries): about 2 s
# of a 3 s `import keras` here. Only denselab's own processes (the command line, search
# workers) hide them, only from the thread importing Keras and only while it does; a
# notebook keeps Keras whole.
KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib")
_hidden = None  # the _Hidden finder, once lean_keras() installed it


def lean_keras() -> None:
    """In this process, import Keras without its scikit-learn, pandas and matplotlib extras.

    Call it before starting threads: it adds a finder to ``sys.meta_path`` once, for good
    (adding or removing one while another thread imports could make that import miss a
    finder).
    """
    global _hidden
    if _hidden is None:
        _hidden = _Hidden(KERAS_EXTRAS)
        sys.meta_path.insert(0, _hidden)


def keras():
    """Import and return ``keras`` with denselab's default backend and quiet TensorFlow logs."""
    _settings()
    try:
        if os.environ["KERAS_BACKEND"] == "jax":
            jax()  # JAX first, alone, without its GPU plugin scan
        if _hidden is not None and "keras" not in sys.modules:
            with _hidden.active():
                import keras as _keras
        else:
            import keras as _keras
    except (ImportError, ValueError) as error:  # KERAS_BACKEND=torch without torch, or bogus
        from .errors import DenselabError

        backend = os.environ.get("KERAS_BACKEND")
        raise DenselabError(
            f"Keras cannot start with KERAS_BACKEND={backend!r} ({str(error)[:80]}); denselab "
            "runs on jax (its default) or tensorflow"
        ) from None
    return _keras


def jax():
    """Import and return ``jax`` with denselab's settings (CPU, XLA flags, compile cache):
    all that training needs, about half of ``import keras``."""
    _settings()
    with _no_gpu_plugin_scan():
        import jax as _jax

    return _jax


@contextlib.contextmanager
def _no_gpu_plugin_scan():
    """While this thread imports JAX for the CPU, ``importlib.metadata.distributions()``
    finds nothing in this thread.

    ``import jax`` looks for a ROCm GPU plugin by reading the metadata of every installed
    package (about 115 here, with TensorFlow, Ray and Optuna): about 30 ms of a 240 ms
    import, before the first epoch. On ``JAX_PLATFORMS=cpu`` (denselab's setting, unless
    the user chose other platforms) no GPU plugin is used, found or not. Other threads, and
    this one afterwards, see every package as usual. Only JAX's own import runs inside:
    other packages read entry points at import (matplotlib, its backends), and Keras
    imports them.
    """
    if "jax" in sys.modules or os.environ.get("JAX_PLATFORMS") != "cpu":
        yield
        return
    import importlib.metadata as metadata

    everything, importing = metadata.distributions, threading.get_ident()

    def distributions(**kwargs):
        if threading.get_ident() == importing:
            return iter(())
        return everything(**kwargs)

    metadata.distributions = distributions
    try:
        yield
    finally:
        metadata.distributions = everything


def compiled_training() -> bool:
    """Whether training runs denselab's JAX program (:mod:`denselab.epochs`): on the JAX
    backend, the default. With ``KERAS_BACKEND=tensorflow`` it is ``model.fit``."""
    _settings()
    return os.environ["KERAS_BACKEND"] == "jax"


def keras_while(work, *args, **kwargs):
    """``work(*args, **kwargs)`` on a second thread while this one imports Keras; its result."""
    return while_importing(keras, work, *args, **kwargs)


def while_importing(importer, work, *args, **kwargs):
    """``work(*args, **kwargs)`` on a second thread while this one runs ``importer()`` (Keras
    or JAX); the work's result.

    Reading a dataset is mostly NumPy and file reads, which release the GIL, so the two
    overlap on a multi-core machine (about 0.4 s saved on Fashion-MNIST). An error in
    ``work`` is raised here, as if it had been called directly.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="denselab")
    try:
        with prompt_switching():
            future = pool.submit(work, *args, **kwargs)
            importer()
            return future.result()
    finally:  # on Ctrl-C during the import, do not wait for the work to finish
        pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def prompt_switching(seconds: float = 0.0005):
    """Within the block, Python threads switch every ``seconds`` (Python's default: 5 ms).

    An import holds the interpreter for long stretches. A thread beside it that needs it only
    for moments (reading a dataset in many small reads, a training loop between compiled
    calls) waited up to 5 ms each time: the dataset took 0.5 s to read instead of 0.05 s,
    and the first epochs ran about 1.5x slower.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


_paused = False  # whether pause_collector() turned the collector off
_command_process = False  # whether this process is a denselab command (cli.main())


def command_process() -> None:
    """Declare this process a denselab command's own (``denselab ...``), not Python code
    that calls denselab (a notebook, a test): :func:`pause_collector` acts only then."""
    global _command_process
    _command_process = True


def pause_collector() -> None:
    """In a command's own process, turn Python's cyclic garbage collector off until
    :func:`resume_collector` (elsewhere, nothing: a notebook's collector is its own).

    Starting to train (importing JAX, tracing the training program) makes some 100,000
    objects in a burst, and the collector ran over them again and again: about 0.07 s of the
    0.75 s before the first epoch ends. :func:`resume_collector` turns it back on once the
    first epoch computes, and freezes what start-up made (``gc.freeze``): those objects live
    as long as the process, and a full collection over them, 0.05 s, had delayed the second
    epoch. (Cyclic garbage left from start-up stays uncollected: a one-off, not a leak.)
    """
    global _paused
    if _command_process and gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """Turn the collector back on, if :func:`pause_collector` turned it off (never one that a
    user's own code turned off)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()  # what start-up made lives on: later collections need not look at it
        gc.enable()


def _settings() -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    _xla_flags()
    _jax_compilation_cache()


class _Hidden(importlib.abc.MetaPathFinder):
    """While a thread is inside ``active()``, ``import name`` (or a submodule) raises
    ImportError in that thread.

    Keras catches that ImportError and leaves the integration out. Other threads, and this
    one afterwards, import the names as usual; modules already imported are not affected.
    """

    def __init__(self, names):
        self.names = frozenset(names)
        self.threads: set[int] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names and threading.get_ident() in self.threads:
            raise ModuleNotFoundError(f"{fullname} is left out while Keras imports", name=fullname)
        return None

    @contextlib.contextmanager
    def active(self):
        self.threads.add(threading.get_ident())
        try:
            yield
        finally:
            self.threads.discard(threading.get_ident())


def _xla_flags() -> None:
    """XLA's CPU settings for small dense networks, unless the user set them in ``XLA_FLAGS``.

    A training step's weight gradient (for the lesson, a (784, 32) x (32, 20) product) goes to
    Eigen, whose thread pool costs more to hand the product to than the second core gains:
    single-threaded, an epoch of the lesson takes about 10% less time.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def _jax_compilation_cache() -> None:
    """Keep JAX's compiled programs on disk, so a second run skips ~2 s of XLA compilation.

    The folder is ``$DENSELAB_CACHE`` (default ``~/.cache/denselab``)/``jax``; a user's own
    ``JAX_COMPILATION_CACHE_DIR`` wins. Where the folder cannot be made, nothing is cached.
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    from .fileio import cache_dir

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
    seed_numpy(seed)
    seed_keras(seed)


def seed_numpy(seed: int) -> None:
    """Seed Python's and NumPy's global generators (the shuffling of each epoch)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


def seed_keras(seed: int) -> None:
    """Seed Keras's global seed generator (TensorFlow's too, if imported); not NumPy's, so a
    thread that builds the Keras model cannot change the order of a training running beside it."""
    keras()
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
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
