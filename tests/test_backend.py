"""How denselab imports Keras: lean in its own processes, whole in a notebook.

Each case runs in a fresh interpreter, because what Keras imports is decided once, when it
is first imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from denselab import backend
{setup}
keras = backend.keras()
from keras.src.trainers.data_adapters import array_slicing
from keras.src.wrappers import fixes
from keras.src.visualization import plot_image_gallery
report = {{
    "keras_sklearn": fixes.sklearn is not None,
    "keras_pandas": array_slicing.pandas is not None,
    "keras_pyplot": plot_image_gallery.plt is not None,
    "imported": sorted(m for m in ("sklearn", "pandas", "matplotlib") if m in sys.modules),
}}
import sklearn, pandas, matplotlib.pyplot  # afterwards, they import as usual
report["later"] = all(m in sys.modules for m in ("sklearn", "pandas", "matplotlib.pyplot"))
print(json.dumps(report))
"""


def _probe(setup: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_notebook_gets_keras_with_all_its_integrations():
    report = _probe("")
    assert report["keras_sklearn"] and report["keras_pandas"] and report["keras_pyplot"]
    assert report["later"]


def test_denselabs_own_processes_import_keras_without_sklearn_pandas_matplotlib():
    report = _probe("backend.lean_keras()")
    assert not (report["keras_sklearn"] or report["keras_pandas"] or report["keras_pyplot"])
    assert report["imported"] == []
    assert report["later"]  # hidden only while Keras was imported


def test_only_the_thread_importing_keras_is_refused():
    # the digits dataset imports scikit-learn on the other thread, while Keras imports
    setup = (
        "backend.lean_keras()\n"
        "from denselab.data import load_dataset\n"
        "data = backend.keras_while(load_dataset, 'digits')\n"
        "assert data.x_train.shape[1:] == (8, 8), data.x_train.shape"
    )
    report = _probe(setup)
    assert "sklearn" in report["imported"]
    assert report["later"]


def test_keras_while_raises_the_works_error_as_its_own():
    code = (
        "from denselab import backend\n"
        "from denselab.data import load_dataset\n"
        "from denselab.errors import DenselabError\n"
        "try:\n"
        "    backend.keras_while(load_dataset, 'no-such-dataset')\n"
        "except DenselabError as error:\n"
        "    print('DenselabError:', error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("DenselabError:") and "no-such-dataset" in done.stdout


SCAN = """
import importlib.metadata as metadata, json, os, sys, threading
{setup}
from denselab import backend
everything, seen = metadata.distributions, {{}}

def counted(**kwargs):
    found = list(everything(**kwargs))
    seen[threading.current_thread().name] = len(found)
    return iter(found)

metadata.distributions = counted
elsewhere = threading.Thread(target=lambda: list(metadata.distributions()), name="other")
backend.jax()
elsewhere.start(); elsewhere.join()
report = {{"seen": dict(seen), "restored": metadata.distributions is counted}}
report["after"] = len(list(metadata.distributions()))
print(json.dumps(report))
"""


def _scan(setup: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCAN.format(setup=setup)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_jax_for_the_cpu_skips_the_gpu_plugin_scan_in_that_thread_only():
    """JAX reads every installed package's metadata looking for a ROCm plugin; on the CPU
    denselab's import skips that, and nothing else loses sight of the packages."""
    report = _scan()
    assert "MainThread" not in report["seen"]  # JAX's scan found nothing to read
    assert report["seen"]["other"] > 10  # another thread sees every package
    assert report["restored"] and report["after"] > 10


def test_with_other_jax_platforms_the_plugin_scan_is_left_alone():
    """Negative control: the probe does see JAX's scan when denselab leaves it alone."""
    report = _scan("os.environ['JAX_PLATFORMS'] = 'cpu,cuda'")
    assert report["seen"]["MainThread"] > 10
