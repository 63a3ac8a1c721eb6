"""The ``denselab`` command: a thin layer that parses arguments and calls the library.

Exit status: 0 success, 1 a check failed (e.g. ``verify`` found differences), 2 bad input or
usage, 130 interrupted. Imports are lazy so that ``denselab --help`` starts at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """\
From one neuron to a microcontroller: the TinyML course's dense networks on Keras 3.

  denselab tour                       lessons 1, 1b and 2 end to end, offline
  denselab neuron [--hidden 2]        one neuron (or two layers) learns y = 2x - 1
  denselab train mnist-5k             the lesson's 784-20-10 digit classifier
  denselab explain RUN --index 0      a prediction recomputed neuron by neuron
  denselab deploy RUN --out fw/       int8 TFLite + C engine bit-exact with TFLite Micro

Every command that reports numbers takes --json. Exit status: 0 ok, 1 a check failed,
2 bad input."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="denselab", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action="version", version=_version())
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

    p = command("train", "lesson 2: train a dense network on a dataset and save the run")
    p.add_argument("dataset", nargs="?", help="a name from `denselab datasets`, or a .npz/.csv")
    p.add_argument("--layers", help="neurons per layer, output last (default 20,<classes>)")
    p.add_argument("--activations", help="one per layer (default relu..., softmax or linear)")
    p.add_argument("--epochs", type=int, default=20, help="default 20, as the lesson")
    p.add_argument("--batch-size", type=int, help="default 32, as Keras's fit")
    p.add_argument("--learning-rate", type=float, help="peak learning rate (default 0.002)")
    p.add_argument(
        "--schedule",
        choices=["cosine", "constant"],
        help="learning rate: cosine decay to 0 (default) or constant (the course's)",
    )
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--target", help="CSV target column, by name or index (default last)")
    p.add_argument("--task", choices=["classification", "regression"], help="default: guessed")
    p.add_argument("--out", help="run folder (default runs/<dataset>-<layers>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder")
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
        p.add_argument("--index", type=int, help="test sample index (default 0)")
        p.add_argument("--input", help="a .npy array or a PNG/JPEG image instead of --index")

    p = command("evaluate", "loss and accuracy on a dataset's test split")
    p.add_argument("model", help="a .keras/.h5 file or a run folder")
    p.add_argument("--data", help="dataset name or .npz/.csv (default: the run's dataset)")

    command("datasets", "the datasets denselab knows and whether each is on this machine")

    p = command("deploy", "int8 TFLite and a C99 engine bit-exact with TFLite Micro")
    p.add_argument("model", help="a .keras/.h5 file or a run folder")
    p.add_argument("--data", help="dataset for calibration and checks (default: the run's)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--name", default="model", help="C prefix and file names (default model)")

    p = command("verify", "rerun deploy's comparisons on a folder it wrote")
    p.add_argument("folder", help="a folder written by `denselab deploy`")
    p.add_argument("--data", help="dataset (default: the one deploy used)")

    p = command("plot", "pictures: learning curves, first-layer weights, confusion, mistakes")
    p.add_argument("model", help="a run folder or a .keras/.h5 file")
    p.add_argument("--data", help="dataset (default: the run's)")
    p.add_argument("--out", help="folder for the PNGs (default: the run folder)")

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

    p = command("explore", "write an offline HTML page: draw a digit, watch every neuron")
    p.add_argument("model", help="a run folder or a .keras/.h5 file")
    p.add_argument("--data", help="dataset for the test-image browser (default: the run's)")
    p.add_argument("--out", help="HTML file (default explorer.html in the run folder)")
    p.add_argument("--open", action="store_true", help="open it in a web browser")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from . import _backend, report
    from .errors import DenselabError

    _backend.lean_keras()  # this process is denselab's own: ~2 s less to import Keras
    report.quiet(args.json)
    try:
        result = _COMMANDS[args.command](args)
    except DenselabError as error:
        print(f"denselab {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"denselab {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a disk or permission problem no reader anticipated
        where = f" ({error.filename})" if error.filename else ""
        print(f"denselab {args.command}: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    status = 0
    if isinstance(result, tuple):
        result, status = result
    if args.json:
        from ._io import _jsonable

        print(json.dumps(result, default=_jsonable))
    return status


# --- commands: each parses nothing more and calls the library ------------------------------


def _tour(args) -> dict:
    from .lessons import tour

    return tour(seed=args.seed, epochs=args.epochs, out=args.out)


def _neuron(args) -> dict:
    from .errors import DenselabError
    from .lessons import neuron_lesson

    if args.hidden < 0 or args.epochs < 1:
        raise DenselabError("--hidden must be 0 or more and --epochs at least 1")
    return neuron_lesson(hidden=args.hidden, epochs=args.epochs, x=args.x, seed=args.seed)


def _train(args) -> dict:
    from . import report
    from ._backend import keras_while
    from .data import load_dataset
    from .errors import DenselabError
    from .train import TrainConfig, default_layers, resume, train

    if args.resume:
        run = resume(args.resume)
    else:
        if not args.dataset:
            raise DenselabError("name a dataset (see `denselab datasets`) or use --resume RUN")
        data = keras_while(load_dataset, args.dataset, target=args.target, task=args.task)
        units, activations = default_layers(data)
        if args.layers:
            units = _int_list(args.layers, "--layers")
            activations = ["relu"] * (len(units) - 1) + [activations[-1]]
        if args.activations:
            activations = [a.strip() for a in args.activations.split(",")]
        config = TrainConfig(
            dataset=args.dataset,
            units=units,
            activations=activations,
            epochs=args.epochs,
            optimizer=args.optimizer,
            seed=args.seed,
            target=args.target,
            task=args.task,
        )
        for flag in ("batch_size", "learning_rate", "schedule"):
            if getattr(args, flag) is not None:
                setattr(config, flag, getattr(args, flag))
        run = train(config, out=args.out, data=data)
    metrics = dict(run.metrics)
    report.table("Result", ["metric", "value"], [(k, _fmt(v)) for k, v in metrics.items()])
    report.say(f"saved to {run.path}")
    result = {**metrics, "model_path": str(run.path / "model.keras"), "run": str(run.path)}
    if metrics.get("interrupted"):
        return result, 130
    if not args.no_plots:
        _pictures(run.path, None, None)
    return result


def _inspect(args) -> dict:
    from . import report
    from .explain import layer_table, neuron_weights
    from .model import dense_network, load_model

    network = dense_network(load_model(args.model))
    rows = layer_table(network)
    report.table(
        f"{args.model}: {network!r}, {network.n_params:,} parameters",
        ["layer", "kernel shape", "bias shape", "params", "activation"],
        [
            (
                r["layer"],
                tuple(r["kernel_shape"]),
                tuple(r["bias_shape"]),
                f"{r['params']:,}",
                r["activation"],
            )
            for r in rows
        ],
    )
    result = {
        "model": str(args.model),
        "input_shape": list(network.input_shape),
        "layers": rows,
        "params": network.n_params,
    }
    if args.layer is not None or args.neuron is not None:
        neuron = neuron_weights(network, args.layer or 1, args.neuron or 0)
        weights = neuron["weights"]
        report.say(
            f"layer {neuron['layer']}, neuron {neuron['neuron']}: {neuron['n_weights']} weights "
            f"(kernel column {neuron['neuron']}: row i is input i) and bias {neuron['bias']:+.6f}"
        )
        import numpy as np

        shown = np.array(weights)
        with np.printoptions(precision=4, suppress=True, linewidth=100, threshold=100):
            report.code(str(shown))
        report.say(
            f"min {shown.min():+.4f}, max {shown.max():+.4f}, mean {shown.mean():+.4f}; "
            f"y = w1*x1 + ... + w{len(shown)}*x{len(shown)} + ({neuron['bias']:+.6f})"
        )
        result["neuron"] = neuron
    return result


def _explain(args) -> dict:
    from . import report
    from .explain import explain
    from .model import dense_network, load_model

    model = load_model(args.model)
    network = dense_network(model)
    x, label, source = _one_input(args, network)
    result = explain(network, model, x)
    report.heading(f"{source}: the forward pass by hand, from get_weights()")
    for number, neurons in enumerate(result.layers, start=1):
        layer = network.layers[number - 1]
        report.say(
            f"[bold]layer {number} ({layer.name})[/]: {layer.n_inputs} inputs -> "
            f"{layer.n_neurons} neurons, {layer.activation}; each = sum(input * weight) + bias"
        )
        names = _input_names(network, number)
        report.code("\n".join(f"n{n.neuron}: {n.formula(names)}" for n in neurons))
        if layer.activation == "softmax":
            report.say("softmax turns the sums into probabilities: p_j = exp(z_j) / sum_k exp(z_k)")
    report.say(f"by hand:       {_vector(result.prediction)}")
    report.say(f"model.predict: {_vector(result.keras_prediction)}")
    report.say(f"largest difference: {result.max_abs_diff:.2e}")
    out = {
        "source": source,
        "label": label,
        "prediction": result.keras_prediction.tolist(),
        "hand_prediction": result.prediction.tolist(),
        "max_abs_diff": result.max_abs_diff,
        "layers": [
            [{"neuron": n.neuron, "z": n.z, "output": n.output, "bias": n.bias} for n in neurons]
            for neurons in result.layers
        ],
    }
    if len(result.prediction) > 1:
        out["predicted_class"] = int(result.prediction.argmax())
    return out


def _predict(args) -> dict:
    from . import report
    from .model import dense_network, load_model

    model = load_model(args.model)
    network = dense_network(model)
    x, label, source = _one_input(args, network)
    output = model.predict(x[None], verbose=0)[0]
    report.heading(f"predict {source}")
    result = {"source": source, "label": label, "output": output.tolist()}
    if len(output) > 1:
        rows = [(i, f"{p:.6f}", "#" * int(round(p * 40))) for i, p in enumerate(output)]
        report.table("class probabilities", ["class", "probability", ""], rows)
        result["predicted_class"] = int(output.argmax())
        truth = "" if label is None else f" (true label {label})"
        report.say(f"predicted class {result['predicted_class']}{truth}")
    else:
        report.say(f"output {output[0]:.6f}" + ("" if label is None else f" (true {label})"))
    return result


def _evaluate(args) -> dict:
    from . import report
    from .model import load_model
    from .train import evaluate

    model = load_model(args.model)
    data = _data_for(args.model, args.data)
    scores = evaluate(model, data)
    report.table(
        f"{args.model} on {data.name}",
        ["metric", "value"],
        [(k, _fmt(v)) for k, v in scores.items()],
    )
    return scores


def _datasets(args) -> dict:
    from . import report
    from .data import DATASETS, available

    rows, result = [], {}
    for name, (_, description) in DATASETS.items():
        here, where = available(name)
        rows.append((name, "yes" if here else "no", description, where))
        result[name] = {"available": here, "where": where, "description": description}
    report.table("datasets", ["name", "here", "what", "where"], rows)
    report.say(
        "Also: your own .csv (target column by --target) or .npz "
        "(x_train, y_train, x_test, y_test)."
    )
    return result


def _deploy(args):
    from .deploy import deploy

    return deploy(args.model, data=args.data, out=args.out, name=args.name)


def _verify(args):
    from .deploy import verify_folder

    return verify_folder(args.folder, data=args.data)


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
    )


def _plot(args) -> dict:
    paths = _pictures(args.model, args.data, args.out)
    return {"pictures": [str(p) for p in paths]}


def _explore(args) -> dict:
    from . import report
    from .explore import write_explorer

    folder = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    out = Path(args.out) if args.out else folder / "explorer.html"
    data = _data_for(args.model, args.data, required=False)
    path = write_explorer(args.model, out, data=data)
    report.say(f"wrote {path}; open it in any browser (it works offline)")
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


# --- helpers ------------------------------------------------------------------------------


def _pictures(model: str | Path, data_name: str | None, out: str | None) -> list[Path]:
    from . import report
    from .plots import write_run_plots

    data = _data_for(model, data_name, required=False)
    paths = write_run_plots(Path(model), data=data, out=Path(out) if out else None)
    if paths:
        report.say("pictures: " + ", ".join(str(p) for p in paths))
    return paths


def _data_for(model: str | Path, name: str | None, required: bool = True):
    from .data import load_dataset
    from .errors import DenselabError
    from .train import read_run_dataset

    name = name or read_run_dataset(model)
    if name is None:
        if not required:
            return None
        raise DenselabError(f"which dataset? {model} is not from a denselab run: add --data NAME")
    return load_dataset(name)


def _one_input(args, network):
    from .data import load_input, test_sample
    from .errors import DenselabError

    if args.input is not None:
        if args.index is not None:
            raise DenselabError("give --index or --input, not both")
        return load_input(args.input, network.input_shape), None, str(args.input)
    data = _data_for(args.model, args.data)
    index = 0 if args.index is None else args.index
    x, label = test_sample(data, index, network.input_shape)
    label = label.item() if hasattr(label, "item") else label
    return x, label, f"{data.name} test sample {index}"


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


def _input_names(network, number: int) -> list[str]:
    """Names as the course uses them: pixels for an image, N<layer><neuron> for hidden outputs."""
    if number > 1:
        return [f"N{number - 1}_{i}" for i in range(network.layers[number - 2].n_neurons)]
    if len(network.input_shape) == 2:
        width = network.input_shape[1]
        return [f"px[{i // width},{i % width}]" for i in range(network.n_inputs)]
    return [f"x{i}" for i in range(network.n_inputs)]


def _vector(values) -> str:
    return "[" + " ".join(f"{v:.6g}" for v in values) + "]"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"denselab {version('denselab')}"
    except PackageNotFoundError:
        return "denselab (not installed)"


if __name__ == "__main__":
    sys.exit(main())
