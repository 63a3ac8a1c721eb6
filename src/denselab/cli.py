"""The ``denselab`` command: a thin layer that parses arguments and calls the library.

Exit status: 0 success, 1 a check failed (e.g. ``verify`` found differences), 2 bad input or
usage, 130 interrupted. Imports are lazy so that ``denselab --help`` starts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

DESCRIPTION = """\
From one neuron to a microcontroller: the TinyML course's dense networks on Keras 3.

  denselab tour                       lessons 1, 1b and 2 end to end, offline
  denselab neuron [--hidden 2]        one neuron (or two layers) learns y = 2x - 1
  denselab train mnist-5k             the lesson's 784-20-10 digit classifier
  denselab explain RUN --index 0      a prediction recomputed neuron by neuron
  denselab deploy RUN --out fw/       int8 TFLite + C engine bit-exact with TFLite Micro

Every command that reports numbers takes --json. Exit status: 0 ok, 1 a check failed,
2 bad input."""


_FORCE_HELP = (
    "write into --out even if it holds files denselab did not write: they are kept, except "
    "those with the name of a file the command writes, which are replaced"
)
_TASK_HELP = "what --data FILE's labels are (default: guessed from them)"
_FORCE_PNG_HELP = "replace pictures of the same names that denselab did not draw"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="denselab", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
        return p

    p = command("tour", "run lessons 1, 1b and 2 end to end, offline")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="run folder for the digit classifier (default runs/tour-...)")
    p.add_argument("--epochs", type=int, default=20, help="epochs for lesson 2 (default 20)")

    p = command("neuron", "lesson 1: one neuron (or --hidden 2: two layers) learns y = 2x - 1")
    p.add_argument("--hidden", type=int, default=0, help="neurons in a first layer (lesson: 2)")
    p.add_argument("--epochs", type=int, default=500, help="epochs of SGD (default 500)")
    p.add_argument("--x", type=float, default=10.0, help="the x to predict (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="also save a run folder, for `denselab explore` and `plot`")

    p = command("train", "lesson 2: train a dense network on a dataset and save the run")
    p.add_argument("dataset", nargs="?", help="a name from `denselab datasets`, or a .npz/.csv")
    p.add_argument("--layers", help="neurons per layer, output last (default 20,<classes>)")
    p.add_argument("--activations", help="one per layer (default relu..., softmax or linear)")
    p.add_argument("--epochs", type=int, help="default 20, as the lesson (line: 500, as lesson 1)")
    p.add_argument("--batch-size", type=int, help="default 32, as Keras's fit")
    p.add_argument("--learning-rate", type=float, help="peak learning rate (default 0.002)")
    p.add_argument(
        "--schedule",
        choices=["cosine", "constant"],
        help="learning rate: cosine decay to 0 (default) or constant (the course's)",
    )
    p.add_argument(
        "--optimizer", choices=["adam", "sgd"], help="default adam (line: sgd, as lesson 1)"
    )
    p.add_argument(
        "--ema-momentum",
        type=float,
        metavar="M",
        help="Keras's use_ema: the weights become their moving average (this momentum) at "
        "each epoch's end (default 0.99; 0: off, as the course; line: 0)",
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--target", help="CSV target column, by name or index (default last)")
    p.add_argument("--task", choices=["classification", "regression"], help="default: guessed")
    p.add_argument("--out", help="run folder (default runs/<dataset>-<layers>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--no-plots", action="store_true", help="do not draw the run's pictures")

    p = command("inspect", "a dense model's layers, and one neuron's weights and bias")
    p.add_argument("model", help="a .keras/.h5 file or a run folder")
    p.add_argument("--layer", help="Dense layer, by 1-based number or name")
    p.add_argument("--neuron", type=int, help="neuron index in that layer (0-based)")

    for name, help in (
        ("explain", "a prediction recomputed by hand from get_weights(), checked against Keras"),
        ("predict", "class probabilities for a test sample or a picture of a digit"),
    ):
        p = command(name, help)
        p.add_argument("model", help="a .keras/.h5 file or a run folder")
        p.add_argument("--data", help="dataset name or .npz/.csv (default: the run's dataset)")
        p.add_argument("--task", choices=["classification", "regression"], help=_TASK_HELP)
        p.add_argument("--index", type=int, help="test sample index (default 0)")
        p.add_argument("--input", help="a .npy array or a PNG/JPEG image instead of --index")
        if name == "explain":
            p.add_argument(
                "--int8",
                action="store_true",
                help="the int8 computation the chip does (MODEL may be a deploy folder), "
                "checked against TFLite Micro",
            )

    p = command("evaluate", "loss and accuracy on a dataset's test split")
    p.add_argument("model", help="a .keras/.h5 file or a run folder")
    p.add_argument("--data", help="dataset name or .npz/.csv (default: the run's dataset)")
    p.add_argument("--task", choices=["classification", "regression"], help=_TASK_HELP)

    command("datasets", "the datasets denselab knows and whether each is on this machine")

    p = command("deploy", "int8 TFLite and a C99 engine bit-exact with TFLite Micro")
    p.add_argument("model", help="a .keras/.h5 file or a run folder")
    p.add_argument("--data", help="dataset for calibration and checks (default: the run's)")
    p.add_argument("--task", choices=["classification", "regression"], help=_TASK_HELP)
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--name", default="model", help="C prefix and file names (default model)")
    p.add_argument(
        "--target",
        default="cortex-m4",
        choices=["cortex-m0plus", "cortex-m4", "cortex-m7", "none"],
        help="also run the engine on this emulated core when arm-none-eabi-gcc and unicorn "
        "are installed (default cortex-m4; none skips it)",
    )
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)

    p = command("verify", "rerun deploy's comparisons on a folder it wrote")
    p.add_argument("folder", help="a folder written by `denselab deploy`")
    p.add_argument("--data", help="dataset (default: the one deploy used)")
    p.add_argument(
        "--target",
        choices=["cortex-m0plus", "cortex-m4", "cortex-m7"],
        help="also build for this core and run every test sample and extreme input on it, "
        "emulated (needs arm-none-eabi-gcc and unicorn)",
    )

    p = command("plot", "pictures: learning curves, first-layer weights, confusion, mistakes")
    p.add_argument("model", help="a run folder or a .keras/.h5 file")
    p.add_argument("--data", help="dataset (default: the run's)")
    p.add_argument("--task", choices=["classification", "regression"], help=_TASK_HELP)
    p.add_argument("--out", help="folder for the PNGs (default: the run folder)")
    p.add_argument("--force", action="store_true", help=_FORCE_PNG_HELP)

    p = command("search", "the smallest network that reaches a target accuracy within budgets")
    p.add_argument("dataset", help="a classification dataset name, or a .npz/.csv")
    p.add_argument(
        "--target-accuracy",
        type=float,
        required=True,
        help="int8 accuracy to reach on the held-out part of training, e.g. 0.92",
    )
    p.add_argument("--max-flash", type=int, metavar="BYTES", help="C engine flash (Cortex-M4)")
    p.add_argument("--max-ram", type=int, metavar="BYTES", help="C engine RAM budget")
    p.add_argument(
        "--trials",
        type=int,
        default=30,
        help="trials in the study in total; a rerun runs the missing ones (30)",
    )
    p.add_argument(
        "--out",
        default="search",
        help="folder: study.db, trials/, chosen/, search.json, search_pareto.png",
    )
    p.add_argument("--ray", metavar="ADDRESS", help="run on Ray: local, auto or HOST:PORT")
    p.add_argument("--workers", type=int, default=2, help="trials at once (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--epochs-max", type=int, default=30, help="most epochs a trial trains")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP.replace("--out", "chosen/"))

    p = command("explore", "write an offline HTML page: draw a digit, watch every neuron")
    p.add_argument(
        "model",
        help="a run folder, a .keras/.h5 file, or a folder `denselab deploy` wrote (the page then "
        "has an int8 mode: the network as the chip computes it)",
    )
    p.add_argument("--data", help="dataset for the test-image browser (default: the run's)")
    p.add_argument("--task", choices=["classification", "regression"], help=_TASK_HELP)
    p.add_argument("--out", help="HTML file (default explorer.html in the run folder)")
    p.add_argument("--open", action="store_true", help="open it in a web browser")
    p.add_argument(
        "--force", action="store_true", help="replace --out even if denselab did not write it"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # this process is the command itself, not a call from Python code
        from .backend import command_process

        command_process()
    status = _main(argv)
    if argv is None:
        _leave(status)
    return status


def _leave(status: int) -> None:
    """End the command's process now: output flushed, every exit handler run (locks, workers,
    temporary files), then no teardown of the interpreter's modules: for XLA and Keras that
    takes ~0.5 s and writes nothing."""
    import atexit
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(status)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from . import backend, report, views
    from .errors import DenselabError

    backend.lean_keras()  # this process is denselab's own: ~2 s less to import Keras
    report.quiet(args.json)
    try:
        with _sigterm_interrupts():
            result = _COMMANDS[args.command](args)
    except DenselabError as error:
        _error_line(args.command, str(error))
        return error.exit_code
    except KeyboardInterrupt:
        _error_line(args.command, "interrupted")
        return 130
    except OSError as error:  # a disk or permission problem no reader anticipated
        where = f" ({error.filename})" if error.filename else ""
        _error_line(args.command, f"{error.strerror or error}{where}")
        return 2
    status = 0
    if isinstance(result, dict) and result.get("interrupted"):
        status = 130
    elif isinstance(result, dict) and result.get("agrees") is False:
        status = 1  # explain: the hand computation is not the model's (a check failed)
    if args.json:
        from .fileio import to_json

        print(to_json(result))
    elif hasattr(views, args.command):
        getattr(views, args.command)(result)
    return status


def _error_line(command: str, message: str) -> None:
    """One line on standard error; text from a file cannot move the cursor or retitle the
    terminal (control characters are shown escaped)."""
    from .report import printable

    print(f"denselab {command}: {printable(message, keep='')}", file=sys.stderr)


@contextlib.contextmanager
def _sigterm_interrupts():
    """``kill`` (SIGTERM) stops every command as Ctrl-C does: cleanly, exit status 130."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# --- commands: each calls one library function; views.py shows the result -----------------


def _tour(args) -> dict:
    from .tour import tour

    return tour(seed=args.seed, epochs=args.epochs, out=args.out)


def _neuron(args) -> dict:
    from .lessons import neuron_lesson

    return neuron_lesson(
        hidden=args.hidden, epochs=args.epochs, x=args.x, seed=args.seed, out=args.out
    )


def _train(args) -> dict:
    from .train import train_command

    return train_command(
        args.dataset,
        resume_run=args.resume,
        out=args.out,
        plots=not args.no_plots,
        force=args.force,
        layers=_int_list(args.layers, "--layers") if args.layers else None,
        activations=[a.strip() for a in args.activations.split(",")] if args.activations else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        schedule=args.schedule,
        optimizer=args.optimizer,
        ema_momentum=args.ema_momentum,
        seed=args.seed,
        target=args.target,
        task=args.task,
    )


def _inspect(args) -> dict:
    from .explain import inspect_model

    return inspect_model(args.model, layer=args.layer, neuron=args.neuron)


def _data(args):
    """``--data`` as given, or, with ``--task``, the file read as that task."""
    task = getattr(args, "task", None)
    if task is None:
        return args.data
    if not args.data:
        from .errors import DenselabError

        raise DenselabError("--task says what --data FILE's labels are: give --data too")
    from .data import load_dataset

    return load_dataset(args.data, task=task)


def _explain(args) -> dict:
    if args.int8:
        from .explain_int8 import explain_int8

        return explain_int8(args.model, _data(args), index=args.index, input_path=args.input)
    from .explain import explain_sample

    return explain_sample(args.model, _data(args), index=args.index, input_path=args.input)


def _predict(args) -> dict:
    from .explain import predict_sample

    return predict_sample(args.model, _data(args), index=args.index, input_path=args.input)


def _evaluate(args) -> dict:
    from .evaluate import evaluate_model

    return evaluate_model(args.model, _data(args))


def _datasets(args) -> dict:
    from .data import datasets_here

    return datasets_here()


def _deploy(args) -> dict:
    from .deploy import deploy

    target = None if args.target == "none" else args.target
    return deploy(
        args.model, data=_data(args), out=args.out, name=args.name, target=target, force=args.force
    )


def _verify(args) -> dict:
    from .verify import verify_folder

    return verify_folder(args.folder, data=args.data, target=args.target)


def _search(args) -> dict:
    from .search import search

    return search(
        args.dataset,
        args.target_accuracy,
        max_flash=args.max_flash,
        max_ram=args.max_ram,
        trials=args.trials,
        out=args.out,
        ray_address=args.ray,
        workers=args.workers,
        seed=args.seed,
        epochs_max=args.epochs_max,
        force=args.force,
    )


def _plot(args) -> dict:
    from .pictures import write_run_plots

    paths = write_run_plots(args.model, data=_data(args), out=args.out, force=args.force)
    return {"pictures": [str(p) for p in paths]}


def _explore(args) -> dict:
    from .explore import write_explorer

    path = write_explorer(args.model, args.out, data=_data(args), force=args.force)
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return {"html": str(path)}


_COMMANDS = {
    "tour": _tour,
    "neuron": _neuron,
    "train": _train,
    "inspect": _inspect,
    "explain": _explain,
    "predict": _predict,
    "evaluate": _evaluate,
    "datasets": _datasets,
    "deploy": _deploy,
    "verify": _verify,
    "plot": _plot,
    "search": _search,
    "explore": _explore,
}


def _int_list(text: str, flag: str) -> list[int]:
    from .errors import DenselabError

    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise DenselabError(
            f"{flag} takes whole numbers separated by commas, e.g. 64,32,10"
        ) from None
    if not values or min(values) < 1:
        raise DenselabError(f"{flag}: every layer needs at least 1 neuron")
    return values


class _Version(argparse.Action):
    """``--version``: looks the version up only when asked (``importlib.metadata`` and the
    lookup cost about 0.03 s, on every command's clock)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"denselab {version('denselab')}"
    except PackageNotFoundError:
        return "denselab (not installed)"


if __name__ == "__main__":
    sys.exit(main())
