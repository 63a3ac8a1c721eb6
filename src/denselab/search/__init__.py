"""Search: the smallest dense network that reaches a target accuracy and fits the budgets.

Optuna's TPE sampler proposes networks (1-3 hidden layers, widths, activations the C engine
runs, which rarely non-zero inputs to ignore, learning rate, batch size, epochs); each trial
trains with Keras, ships to int8 C and is scored on the validation part held out of the
training split (:mod:`.trial`, which also gives the score). Hopeless trials are pruned from
their learning curves (median rule). Trials run in local worker processes sharing one
SQLite study (:mod:`.runners`), or on a Ray cluster with Ray Tune (:mod:`.ray`); the study
lives in ``out/study.db``, so rerunning the same command after Ctrl-C continues where it
stopped.

The answer is the Pareto front of int8 accuracy vs flash (:mod:`.result`: ``search.json``, a
table and ``search_pareto.png``) and the chosen model (:mod:`.choose`), a normal run folder
``out/chosen`` that ``denselab deploy`` takes: the smallest flash that meets the target
within the budgets, else the most accurate within them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import fileio, folders, report
from ..data import Dataset, load_dataset
from ..errors import DenselabError
from ..lessons import check_seed
from . import choose, result, runners
from .result import pareto_front
from .trial import INPUT_USE, WIDTHS, SearchSpec, flash_estimate, used_inputs, widest_layer

__all__ = ["VALIDATION_FRACTION", "pareto_front", "search", "validation_view"]

VALIDATION_FRACTION = 0.2  # of the training split, held out to score trials
EPOCHS_MAX = 30
LESSON_WIDTH = 20  # the lesson's hidden layer: the starting width when there is no budget
STARTING_INPUT_USE = (0.0, 0.05, 0.1, 0.2)  # one starting trial per level of input pruning


def search(
    dataset: str,
    target_accuracy: float,
    max_flash: int | None = None,
    max_ram: int | None = None,
    trials: int = 30,
    out: str | Path = "search",
    ray_address: str | None = None,
    workers: int = 2,
    seed: int = 0,
    epochs_max: int = EPOCHS_MAX,
    force: bool = False,
) -> dict:
    """Search for the smallest network with int8 validation accuracy >= ``target_accuracy``.

    Parameters
    ----------
    dataset : a classification dataset name or file, as :func:`denselab.data.load_dataset`.
    target_accuracy : in (0, 1], of the int8 C engine on the validation part held out of the
        training split.
    max_flash, max_ram : budgets in bytes of the C engine (Cortex-M4 ``size``); None: none.
    trials : the study's total; a rerun on the same ``out`` only runs the ones missing.
    out : folder for ``study.db``, ``trials/NNNN`` run folders, ``chosen/``, ``search.json``
        and ``search_pareto.png``.
    ray_address : None runs ``workers`` local processes; ``"local"`` starts a Ray instance on
        this machine with ``workers`` CPUs; ``"HOST:PORT"`` (or ``"auto"``) joins a cluster.
    workers : trials run at once (local processes, or Ray's concurrency limit).
    force : write ``out/chosen`` even if it holds files denselab did not write (kept);
        without it such a ``chosen/`` is refused before the first trial.

    Returns the content of ``search.json``: ``pareto_front``, ``chosen``, ``trials`` ...
    """
    _check_arguments(target_accuracy, max_flash, max_ram, trials, workers, epochs_max)
    check_seed(seed)
    if ray_address:  # before any work: Ray would retry an address where nothing listens
        from .ray import check_ray_address

        check_ray_address(ray_address)
    data = load_dataset(dataset)
    if data.task != "classification":
        raise DenselabError(f"search needs a classification dataset; {data.name} is regression")
    view = validation_view(data, VALIDATION_FRACTION, seed)
    folders.output_folder(Path(out) / "chosen", "run", force)  # refused now, not after the trials
    _check_outputs(Path(out), force)
    folder = fileio.ensure_dir(out).resolve()
    # the fewest inputs a trial may read: the widest first layer the flash leaves room for
    n_inputs = int(used_inputs(view.x_train, max(INPUT_USE)).sum()) or 1
    max_width = widest_layer(n_inputs, max_flash)
    if max_width < WIDTHS[0]:
        raise DenselabError(
            f"--max-flash {max_flash:,} bytes cannot hold even {WIDTHS[0]} neurons on "
            f"{n_inputs} inputs ({WIDTHS[0] * n_inputs:,} bytes of int8 weights)"
        )
    spec = SearchSpec(
        data.name,
        target_accuracy,
        max_flash,
        max_ram,
        epochs_max,
        seed,
        str(folder / "trials"),
        max_width,
    )
    storage_url = f"sqlite:///{folder / 'study.db'}"
    study = runners.open_study(storage_url, spec, starting_points(spec, view))
    done = runners.n_finished(study)
    remaining = max(0, trials - done)
    budgets = ", ".join(
        f"{name} <= {value:,} bytes"
        for name, value in (("flash", max_flash), ("RAM", max_ram))
        if value is not None
    )
    report.say(
        f"searching {report.plain(data.name)} for int8 accuracy >= {target_accuracy:.3f}"
        f"{' with ' + budgets if budgets else ''}: {remaining} of {trials} trials to run "
        f"({done} already in {report.plain(folder / 'study.db')}); {len(view.x_train):,} "
        f"samples to fit, {len(view.x_test):,} held out of the training split to score"
    )
    if remaining:
        with report.progress("trials", trials) as bar:
            bar.advance(done)
            try:
                if ray_address:
                    from .ray import run_on_ray

                    run_on_ray(
                        storage_url, spec, view, remaining, trials, workers, ray_address, bar
                    )
                else:
                    runners.run_locally(study, storage_url, spec, view, remaining, workers, bar)
            except KeyboardInterrupt:
                report.warn(
                    f"interrupted after {runners.n_finished(study)} of {trials} trials; rerun "
                    "the same command to continue"
                )
                raise
            finally:
                runners.fail_unfinished(study, runners.open_storage(storage_url))
    rows = result.measured(study, folder)
    feasible = [row for row in rows if row["within_budget"]]
    chosen, confirmed = choose.choose(feasible, spec, data, view, folder, force=force)
    return result.write(study, spec, data, view, folder, trials, rows, chosen, confirmed)


def validation_view(data: Dataset, fraction: float, seed: int) -> Dataset:
    """The training split cut in two: ``x_train`` to fit, ``x_test`` the validation part held
    out of the training split, to score.

    The dataset's test split is not touched, so the chosen model's test accuracy is honest.
    """
    order = np.random.default_rng(seed).permutation(len(data.x_train))
    n_validation = max(1, round(len(order) * fraction))
    held_out, fit = order[:n_validation], order[n_validation:]
    return Dataset(
        data.name,
        data.x_train[fit],
        data.y_train[fit],
        data.x_train[held_out],
        data.y_train[held_out],
        data.task,
        f"{data.source}; {n_validation:,} training samples held out for validation",
        data.class_names,
    )


def starting_points(spec: SearchSpec, view: Dataset) -> list[dict]:
    """The first trials: the lesson's recipe (one relu layer, Adam 2e-3, batch 32) at each
    level of input pruning, as wide as the flash budget allows (else the lesson's 20).

    A known-good start that TPE then shrinks from, instead of 10 random guesses alone.
    """
    from ..runs import DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE

    points = []
    for input_use in STARTING_INPUT_USE:
        n_used = int(used_inputs(view.x_train, input_use).sum())
        width = LESSON_WIDTH
        if spec.max_flash is not None:
            fits = (
                w
                for w in range(spec.max_width, WIDTHS[0] - 1, -1)
                if flash_estimate(n_used, [w, view.n_classes])[1] <= spec.max_flash
            )
            width = next(fits, WIDTHS[0])
        points.append(
            {
                "n_hidden": 1,
                "units_1": min(width, spec.max_width),
                "activation_1": "relu",
                "input_use": input_use,
                "learning_rate": DEFAULT_LEARNING_RATE,
                "batch_size": DEFAULT_BATCH_SIZE,
                "epochs": spec.epochs_max,
            }
        )
    return points


SQLITE_HEADER = b"SQLite format 3\x00"


def _check_outputs(out: Path, force: bool) -> None:
    """Before the first trial: ``search.json`` and ``search_pareto.png`` in ``out`` are a
    search's own (or ``force``), and ``study.db`` is a regular SQLite file, or absent."""
    from ..plots import is_our_png

    def our_result(path: Path) -> bool:
        try:
            result = fileio.load_json(path)
        except (OSError, ValueError, DenselabError):
            return False
        return isinstance(result, dict) and {"pareto_front", "chosen"} <= set(result)

    folders.check_output_file(out / "search.json", force=force, ours=our_result)
    folders.check_output_file(out / "search_pareto.png", force=force, ours=is_our_png)
    study = fileio.check_regular(out / "study.db")
    if study.exists():
        with open(study, "rb") as stream:
            if stream.read(16) != SQLITE_HEADER:
                raise DenselabError(
                    f"{study} is not a study database (SQLite); move it away or choose "
                    "another --out"
                )


def _check_arguments(target_accuracy, max_flash, max_ram, trials, workers, epochs_max) -> None:
    if not 0.0 < target_accuracy <= 1.0:
        raise DenselabError(f"--target-accuracy must be in (0, 1], not {target_accuracy}")
    for name, value in (("--max-flash", max_flash), ("--max-ram", max_ram)):
        if value is not None and value < 1:
            raise DenselabError(f"{name} must be a positive number of bytes")
    if trials < 1 or workers < 1 or epochs_max < 1:
        raise DenselabError("--trials, --workers and the maximum epochs must be at least 1")
