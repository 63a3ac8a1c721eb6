"""The course in a notebook: examples/course.ipynb runs top to bottom, and the public functions
behave in a notebook (a cell run twice, objects that display as tables and pictures)."""

from __future__ import annotations

import importlib
import inspect
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "course.ipynb"


def _needs_deploy_tools():
    missing = [name for name in ("tensorflow", "tflite_micro") if find_spec(name) is None]
    if missing or shutil.which("gcc") is None:
        pytest.skip(f"deploy needs {', '.join(missing) or 'gcc'}: pip install 'denselab[deploy]'")


def test_train_explain_deploy_stay_functions_when_a_notebook_cell_runs_twice(tmp_path):
    """Importing denselab.train (the module) must not replace denselab.train (the function)."""
    _needs_deploy_tools()
    import denselab

    data = denselab.load_dataset("digits")
    for attempt in range(2):
        # What a notebook cell may hold, run twice: the submodules imported, the names called.
        importlib.import_module("denselab.train")
        importlib.import_module("denselab.explain")
        importlib.import_module("denselab.deploy")
        import denselab.deploy  # noqa: F401
        import denselab.explain  # noqa: F401
        import denselab.train  # noqa: F401

        for name in ("train", "explain", "deploy"):
            assert inspect.isfunction(getattr(denselab, name)), f"denselab.{name} became a module"
        config = denselab.TrainConfig(dataset="digits", units=[8, 10], epochs=1, seed=attempt)
        run = denselab.train(config, out=tmp_path / f"run-{attempt}", data=data, plots=False)
        why = denselab.explain(denselab.dense_network(run.model), run.model, data.x_test[0])
        assert why.max_abs_diff < 1e-5
        report = denselab.deploy(run.path, out=tmp_path / f"fw-{attempt}", target=None)
        assert report["c_vs_tflm_differing_samples"] == 0
    assert denselab.train.__doc__.startswith("Build the model")  # help() shows the function


def test_notebook_objects_show_tables_and_pictures_not_arrays(lesson_run):
    """A run shows its curves and layer table; an explanation its winning neuron's top terms,
    in a few kilobytes, never a 784-number dump."""
    import denselab

    data = denselab.load_dataset("mnist-5k")
    html = lesson_run._repr_html_()
    assert "data:image/png;base64," in html and "15,680" in html and "N1_1 … N1_20" in html
    assert "mnist-5k stands in" in html
    network = denselab.dense_network(lesson_run.model)
    assert "<table>" in network._repr_html_() and "[0].size" in network._repr_html_()
    why = denselab.explain(network, lesson_run.model, data.x_test[0])
    assert len(repr(why)) < 120 and repr(why).startswith("Explanation(784-20-10, predicted N2_")
    assert len(why._repr_html_()) < 5_000
    assert "the other 12 inputs" in why._repr_html_()
    neuron = why.layers[0][3]
    assert repr(neuron).startswith("NeuronExplanation(N1_4, 784 inputs")
    assert neuron.name == "N1_4" and "px[" in neuron.formula()
    assert "N1_" in why.layers[1][0].formula()


def test_progress_in_a_notebook_is_a_few_plain_lines(capsys, monkeypatch):
    """In Jupyter rich's live bar asks for ipywidgets; denselab prints a few lines instead."""
    from denselab import report

    monkeypatch.setattr(report, "_quiet", False)  # an earlier --json command may have quieted it
    monkeypatch.setattr(report, "in_notebook", lambda: True)
    with report.progress("epochs", 20) as bar:
        for _ in range(20):
            bar.advance(1, status="loss 0.1")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["5/20", "10/20", "15/20", "20/20"]


def test_neuron_lesson_shows_the_lesson_or_only_returns_its_numbers(capsys, monkeypatch):
    import denselab
    from denselab import report

    monkeypatch.setattr(report, "_quiet", False)

    quiet = denselab.neuron_lesson(show=False)
    assert capsys.readouterr().out == ""
    assert abs(quiet["w"] - 2) < 0.05 and abs(quiet["prediction"] - 19) < 0.2
    denselab.neuron_lesson(epochs=50)
    assert "get_weights()" in capsys.readouterr().out


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The committed notebook, run top to bottom in a fresh folder with a real kernel."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import nbformat
    from nbclient import NotebookClient

    _needs_deploy_tools()
    folder = tmp_path_factory.mktemp("notebook")
    copy = folder / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": folder}}
    )
    client.execute()
    return folder, notebook


def _outputs(notebook) -> list:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return [output for cell in code for output in cell.outputs]


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    return "".join(str(value) for value in output.get("data", {}).values())


def test_course_notebook_runs_top_to_bottom_offline_on_mnist_5k(executed):
    folder, notebook = executed
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.output_type == "error"]
    shown = "\n".join(_text(o) for o in outputs)
    assert "ipywidgets" not in shown and "stderr" not in {o.get("name") for o in outputs}
    assert "[18.99999" in shown  # the lesson's hand sum, by the course's own cell
    for size in ("15680", "20", "200", "10"):
        assert f"\n{size}\n" in "\n" + shown
    assert "bit-exact" in shown
    for path in ("runs/two-layers/explorer.html", "runs/mnist-5k/explorer.html"):
        assert (folder / path).exists(), path
    assert (folder / "runs/mnist-5k/deploy/model.c").exists()


def test_committed_notebook_has_its_outputs_and_stays_small():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "commit the notebook executed"
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [o for o in _outputs(notebook) if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in _outputs(notebook))
    assert NOTEBOOK.stat().st_size < 600_000
    first = code[0].source
    assert "%pip install" in first, "the first cell installs denselab in Colab"
