"""Start-up cost of the CLI and the package: median wall time of each command over N runs.

    python benchmarks/startup.py [--runs 10] [CHECKOUT [BASELINE_CHECKOUT]]

A checkout is a polytask source tree; its ``src`` goes first on PYTHONPATH (default: this one).
With two, each command runs in turn on the checkout and the baseline (A B A B ...), so a drift
of the machine's speed touches both alike, and the table gives the ratio of the medians.
Targets (issue 19, idle machine): ``polytask --help`` <= 1.0 s, ``import polytask`` <= 1.5 s.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "import polytask": ["-c", "import polytask"],
    "import polytask.cli": ["-c", "import polytask.cli"],
    "polytask --help": ["-m", "polytask", "--help"],
    "polytask --version": ["-m", "polytask", "--version"],
    "polytask train --help": ["-m", "polytask", "train", "--help"],
    "import polytask.api": ["-c", "import polytask.api"],
}


def wall_time(checkout: Path, args: list[str]) -> float:
    """Seconds from start to exit of one fresh interpreter running ``args`` against ``checkout``
    (NaN if it fails, e.g. an option the older checkout does not have)."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    return time.perf_counter() - start if done.returncode == 0 else math.nan


def measure(checkouts: list[Path], runs: int) -> dict[str, list[list[float]]]:
    """command -> per checkout, the wall times of ``runs`` runs (after one warm-up each)."""
    times: dict[str, list[list[float]]] = {}
    for name, args in COMMANDS.items():
        for checkout in checkouts:
            wall_time(checkout, args)  # warm the file cache: the first run reads every .pyc
        times[name] = [[] for _ in checkouts]
        for _ in range(runs):
            for i, checkout in enumerate(checkouts):
                times[name][i].append(wall_time(checkout, args))
    return times


def table(times: dict[str, list[list[float]]], checkouts: list[Path]) -> str:
    heads = ["command"] + [f"median s ({c.name})" for c in checkouts]
    heads += ["ratio"] if len(checkouts) == 2 else []
    rows = []
    for name, per_checkout in times.items():
        medians = [statistics.median(t) for t in per_checkout]
        cells = [name] + [f"{m:.3f}" if m == m else "fails" for m in medians]
        if len(medians) == 2:
            ratio = medians[0] / medians[1]
            cells.append(f"{ratio:.2f}" if ratio == ratio else "-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [heads, *rows]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path, help="checkout [baseline checkout]")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkouts] or [Path(__file__).resolve().parents[1]]
    if len(checkouts) > 2 or not all((c / "src" / "polytask").is_dir() for c in checkouts):
        parser.error("give one or two polytask checkouts (directories holding src/polytask)")
    print(f"python {sys.version.split()[0]}, {args.runs} runs per command, cpus {os.cpu_count()}")
    print(table(measure(checkouts, args.runs), checkouts))


if __name__ == "__main__":
    main()
