"""``denselab tour``: lessons 1, 1b and 2 end to end, offline, ending on the emulated chip."""

from __future__ import annotations

from pathlib import Path

from . import folders, report
from .data import load_dataset
from .errors import DenselabError
from .lessons import check_seed, classifier_lesson, neuron_lesson
from .runs import MAX_EPOCHS


def tour(seed: int = 0, epochs: int = 20, out: str | Path | None = None) -> dict:
    """Lessons 1, 1b and 2 end to end, offline: full MNIST if Keras's cache has it, else mnist-5k.

    Writes the classifier's run folder (default ``runs/tour-<dataset>``) with its pictures
    and explorer page, and returns every number the lessons show.
    """
    from .data import available
    from .explore import write_explorer
    from .train import TrainConfig, train

    check_seed(seed)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise DenselabError(f"--epochs must be from 1 to {MAX_EPOCHS:,}")
    if out is not None:  # refused now, not after lessons 1 and 1b
        folders.output_folder(out, "run")
    lesson_1 = neuron_lesson(seed=seed)
    lesson_1b = neuron_lesson(hidden=2, seed=seed)
    dataset = "mnist" if available("mnist")[0] else "mnist-5k"
    report.heading("Lesson 2: the digit classifier, Flatten -> Dense(20, relu) -> Dense(10)")
    if dataset == "mnist-5k":
        report.say(
            "Full MNIST is not on this machine (~/.keras/datasets/mnist.npz), so this tour uses "
            "mnist-5k: 5,000 real MNIST digits (4,000 train / 1,000 validation). Expect about "
            "98% train / 92% validation instead of the lesson's 98% / 96%."
        )
    else:
        report.say("Using full MNIST from the Keras cache, as the lesson does.")
    data = load_dataset(dataset)
    run = train(
        TrainConfig(dataset=dataset, epochs=epochs, seed=seed),
        out=out or Path("runs") / f"tour-{dataset}",
        data=data,
    )
    lesson_2 = classifier_lesson(run, data)
    report.heading("See inside")
    pictures = run.pictures  # train() drew them into the run folder
    report.say("pictures: " + ", ".join(str(p) for p in pictures))
    page = write_explorer(run.path, run.path / "explorer.html", data=data)
    report.say(f"explorer page (works offline; draw a digit, watch every neuron): {page}")
    on_chip = _on_the_chip(run.path, data)
    report.heading("Next")
    report.say(
        f"denselab explain {run.path} --index 0     # test image 0, neuron by neuron\n"
        f"denselab inspect {run.path} --layer 1 --neuron 0\n"
        f"denselab verify {run.path}/deploy --target cortex-m0plus   # the same C on a smaller core"
    )
    return {
        "neuron": lesson_1,
        "two_layers": lesson_1b,
        "classifier": {
            "dataset": dataset,
            "model_path": str(run.path / "model.keras"),
            **run.metrics,
            **lesson_2,
        },
        "pictures": [str(p) for p in pictures],
        "explorer": str(page),
        "on_the_chip": on_chip,
    }


def _on_the_chip(run_folder: Path, data) -> dict:
    """The tour's last step: int8 + C (deploy), run on an emulated Cortex-M4 when the tools are
    installed; otherwise what was skipped and how to install it."""
    from importlib.util import find_spec

    from .deploy import deploy
    from .target import available
    from .views import target_line

    report.heading("On the chip: int8, C, and an emulated Cortex-M4")
    if find_spec("tensorflow") is None or find_spec("tflite_micro") is None:
        why = "TensorFlow and TFLite Micro are not installed; pip install 'denselab[deploy]'"
        report.say(f"skipped: {why}")
        return {"skipped": why}
    ready, why = available()
    folder = run_folder / "deploy"
    with report.quieted():
        result = deploy(run_folder, data=data, out=folder, target="cortex-m4" if ready else None)
    if not ready:
        report.say(f"deployed to {folder}; the emulated Cortex-M4 was skipped: {why}")
        return {"deploy": str(folder), "skipped": why}
    chip = result["target"]  # deploy raised CheckFailed had any byte differed
    report.say(
        f"your network on a Cortex-M4: 0 of {chip['inputs']:,} outputs differ from TensorFlow "
        f"Lite Micro; {chip['instructions']['median']:,} instructions ~ "
        f"{chip['ms_at_64_mhz']:.1f} ms at 64 MHz (deployed to {folder})"
    )
    report.say(target_line(chip))
    return {"deploy": str(folder), "target": chip}
