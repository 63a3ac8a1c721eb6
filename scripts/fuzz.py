"""Fuzz denselab's readers (and the C engine against TFLite Micro) for as long as you like.

    python scripts/fuzz.py --minutes 10            # every target, round robin
    python scripts/fuzz.py --minutes 2 --only tflite,image
    python scripts/fuzz.py --minutes 10 --no-c     # skip the (slow) C-vs-TFLM property

The properties are the ones in ``tests/test_fuzz.py``: garbage into a reader gives a correct
result or a DenselabError, never another exception; the generated C engine writes the same
bytes as TFLite Micro. Each round gives every target a batch of fresh Hypothesis examples.
Prints how many cases ran per target; exit status 0 if none failed, 1 otherwise (a crash
of the process itself shows as a signal exit status).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("DENSELAB_OFFLINE", "1")

BATCH = {  # examples per round: roughly a few seconds each
    "model": 40,
    "tflite": 400,
    "npz": 150,
    "csv": 300,
    "idx": 300,
    "image": 150,
    "npy": 200,
    "c-vs-tflm": 2,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--only", help="comma-separated targets (default: all)")
    parser.add_argument("--no-c", action="store_true", help="skip the C engine vs TFLM property")
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=120,
        help="print every thread's stack if one batch takes longer (a hang), default 120",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Generating overly large repr")
    warnings.filterwarnings("ignore", category=RuntimeWarning)

    import test_fuzz

    names = list(test_fuzz.TARGETS) + ([] if args.no_c else ["c-vs-tflm"])
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        unknown = set(names) - set(BATCH)
        if unknown:
            parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(BATCH)}")
    deadline = time.monotonic() + args.minutes * 60
    failures: list[tuple[str, str]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="denselab-fuzz-") as folder:
        seeds = test_fuzz.make_seeds(Path(folder), with_tflite=True)
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            for name in names:
                if time.monotonic() >= deadline:
                    break
                if name == "c-vs-tflm":
                    run = test_fuzz.fuzz_c_engine(BATCH[name])
                else:
                    run = test_fuzz.fuzz(name, seeds, BATCH[name])
                faulthandler.dump_traceback_later(args.hang_seconds)
                try:
                    run()
                except Exception:
                    failures.append((name, traceback.format_exc()))
                    print(f"FAILED {name}:\n{failures[-1][1]}", file=sys.stderr, flush=True)
                finally:
                    faulthandler.cancel_dump_traceback_later()
            counts = ", ".join(f"{n} {test_fuzz.CASES_RUN[n]:,}" for n in names)
            print(f"round {rounds}, {time.monotonic() - started:.0f} s: {counts}", flush=True)
    total = sum(test_fuzz.CASES_RUN[name] for name in names)
    print(f"{total:,} cases in {time.monotonic() - started:.0f} s; {len(failures)} failed")
    for name, count in test_fuzz.CASES_RUN.items():
        print(f"  {name:<10} {count:>8,}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
