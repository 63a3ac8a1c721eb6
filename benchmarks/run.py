"""denselab against the course's code, side by side in one run; writes BENCHMARKS.md.

    python benchmarks/run.py                 # the full run (10-20 minutes on 2 cores)
    python benchmarks/run.py --quick --out /tmp/B.md   # tiny settings, for the smoke test

Every figure is a median of repeats measured in this one run, beside its baseline from the
same run. The rooms: ``training.py`` (whole training processes, time to accuracy, the one
neuron), ``inference.py``, ``startup.py``, and ``target.py`` (the emulated Cortex-M, when
that module is present); ``course_code.py`` is the course's code, the baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from common import ROOT
from inference import inference_rows
from startup import startup_rows
from training import neuron_section, training_section

try:  # the emulated Cortex-M rows live in their own module, which may be absent
    from target import target_rows
except ModuleNotFoundError as error:
    if error.name != "target":
        raise
    target_rows = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--repeats", type=int, help="repeats per row (default 3; quick 1)")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    from denselab.data import available

    dataset = "fashion-mnist" if available("fashion-mnist")[0] and not args.quick else "mnist-5k"
    epochs = 2 if args.quick else 20
    work = Path(tempfile.mkdtemp(prefix="denselab-bench-"))
    try:
        training, run_folder = training_section(dataset, epochs, repeats, work)
        neuron_epochs = 50 if args.quick else 500
        sections = [
            training,
            _attempt("Lesson 1: one neuron", lambda: neuron_section(neuron_epochs, repeats)),
            _attempt(
                "Inference and start-up",
                lambda: _rows_section(
                    "Inference and start-up",
                    inference_rows(run_folder, dataset, work, quick=args.quick)
                    + startup_rows(run_folder, 1 if args.quick else max(3, repeats)),
                ),
            ),
        ]
        if target_rows is not None:
            title = "On the emulated Cortex-M"
            sections.append(
                _attempt(title, lambda: _dicts_section(title, target_rows(work, args.quick)))
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_markdown(Path(args.out), sections, dataset, epochs, repeats, args.quick)
    print(f"wrote {args.out}")
    return 1 if any(section.get("failed") for section in sections) else 0


def _attempt(title: str, make_section) -> dict:
    """``make_section()``, or a section saying it failed: the other figures still stand."""
    try:
        return make_section()
    except Exception as error:
        traceback.print_exc()
        message = f"{type(error).__name__}: {error}".replace("|", "/").replace("\n", " ")
        return {
            "title": title,
            "columns": ["failed"],
            "rows": [[message[:300]]],
            "notes": [],
            "failed": True,
        }


def _rows_section(title: str, rows: list[dict]) -> dict:
    """Rows of (group, what, baseline, denselab, ratio, note) as a section."""
    cells = [
        [r["group"], r["what"], r["baseline"], r["denselab"], f"**{r['ratio']:.1f}x**", r["note"]]
        for r in rows
    ]
    columns = ["", "what", "baseline", "denselab", "ratio", "note"]
    return {"title": title, "columns": columns, "rows": cells, "notes": []}


def _dicts_section(title: str, rows: list[dict]) -> dict:
    """Any rows of dicts as a table: every key seen becomes a column, in the order seen."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(key, "")) for key in columns] for row in rows]
    return {"title": title, "columns": columns, "rows": cells, "notes": []}


def _cell(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def write_markdown(path: Path, sections: list[dict], dataset, epochs, repeats, quick) -> None:
    lines = [
        "# Benchmarks",
        "",
        "denselab against the course's code, measured side by side in one run of "
        "`python benchmarks/run.py` (this file is its output; rerun it to reproduce).",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {_memory()}, no GPU; load average at "
        f"the end {os.getloadavg()[0]:.1f} (another program running makes every figure slower)",
        f"- versions: {_versions()}",
        f"- settings: {dataset}, {epochs} epochs, median of {repeats} repeat(s)"
        + (" (QUICK smoke-test settings: not representative)" if quick else ""),
    ]
    for section in sections:
        lines += ["", f"## {section['title']}", ""]
        lines.append("| " + " | ".join(section["columns"]) + " |")
        lines.append("|" + " --- |" * len(section["columns"]))
        lines += ["| " + " | ".join(row) + " |" for row in section["rows"]]
        if section["notes"]:
            lines += [""] + [f"- {note}" for note in section["notes"]]
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/run.py` (10-20 minutes).", ""]
    path.write_text("\n".join(lines))


def _versions() -> str:
    from importlib.metadata import version

    names = ("keras", "jax", "tensorflow-cpu", "tflite-micro", "numpy", "matplotlib", "pillow")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except Exception:
            continue
    return f"Python {platform.python_version()}, " + ", ".join(found)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown memory"


if __name__ == "__main__":
    sys.exit(main())
