"""SNIPS joint intent + slot filling: polytask joint model vs single-task baselines.

Trains on train, selects on dev, reports test intent accuracy, slot F1 (seqeval), sentence
accuracy (both right for the same utterance), wall time and throughput; mean ± std over seeds.
Every finished run is written to <out>/<variant>-seed<k>.json as it ends, and a rerun skips it,
so the full benchmark survives interruptions; an interrupted run resumes from its newest
checkpoint. Several workers may share one --out (each run is claimed with a lock file), e.g.
two 1-thread workers on a 2-core machine.

    python benchmarks/snips.py --data ../shared/data/snips --quick        # 1 seed, joint only
    python benchmarks/snips.py --data ../shared/data/snips --seeds 3      # joint + 2 baselines
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from polytask.atomic import write_text
from polytask.config import apply_overrides, parse_config
from polytask.training.trainer import train

TRAIN_SIZE = 13084
VARIANTS = {
    "joint": ["intent", "slots"],
    "intent_only": ["intent"],
    "slot_only": ["slots"],
}
SELECT = {"joint": "snips/exact_match", "intent_only": "intent", "slot_only": "slots"}
REPORTED = {"intent/accuracy": "intent acc", "slots/f1": "slot F1", "snips/exact_match": "sentence acc"}


def run_config(data: Path, variant: str, seed: int, out: Path, args: argparse.Namespace) -> dict:
    tasks = {
        "intent": {"name": "intent", "type": "classification", "dataset": "snips", "label": "intent"},
        "slots": {"name": "slots", "type": "token_classification", "dataset": "snips",
                  "label": "slots", "crf": args.crf},
    }
    raw = {
        "model": {"encoder": args.encoder, "max_length": 64},
        "datasets": {"snips": {"format": "intent_slot", "train": str(data / "train"),
                               "dev": str(data / "dev"), "test": str(data / "test")}},
        "tasks": [tasks[name] for name in VARIANTS[variant]],
        "train": {"output_dir": str(out / "runs" / f"{variant}-seed{seed}"), "seed": seed,
                  "epochs": args.epochs, "batch_size": 32, "lr": args.lr, "head_lr": args.head_lr,
                  "warmup_ratio": 0.1, "schedule": "linear", "select_on": SELECT[variant],
                  "num_threads": args.threads, "progress": False},
    }
    return apply_overrides(raw, args.set or [])


def run_one(data: Path, variant: str, seed: int, out: Path, args: argparse.Namespace) -> dict:
    config = parse_config(run_config(data, variant, seed, out, args), "snips-benchmark")
    start = time.perf_counter()
    results = train(config, resume=True)
    wall = time.perf_counter() - start
    return {"variant": variant, "seed": seed, "wall_s": round(wall, 1),
            "utterances_per_s": round(args.epochs * TRAIN_SIZE / wall, 2),
            "dev": _scalars(results.get("dev", {})), "test": _scalars(results.get("test", {})),
            "best_step": results.get("best_step"), "config": config.model_dump(mode="json")}


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def summarise(rows: list[dict]) -> str:
    lines = ["| variant | seeds | intent acc | slot F1 | sentence acc | wall s (mean) | utt/s |",
             "|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        done = [r for r in rows if r["variant"] == variant]
        if not done:
            continue
        cells = []
        for key in REPORTED:
            values = [100 * r["test"][key] for r in done if key in r["test"]]
            cells.append(_mean_std(values))
        wall = statistics.mean(r["wall_s"] for r in done)
        speed = statistics.mean(r["utterances_per_s"] for r in done)
        lines.append(f"| {variant} | {len(done)} | " + " | ".join(cells) + f" | {wall:.0f} | {speed:.1f} |")
    if deltas := delta_m(rows):
        lines.append(f"\nΔm of joint vs single-task baselines (test, %): {_mean_std(deltas)} "
                     f"over {len(deltas)} seed(s)")
    return "\n".join(lines)


def delta_m(rows: list[dict]) -> list[float]:
    """Δm (%) of the joint model vs the single-task baselines of the same seed: the mean over
    tasks of the relative change of each task's primary metric (Maninis et al. 2019)."""
    by_key = {(r["variant"], r["seed"]): r["test"] for r in rows}
    values = []
    for (variant, seed), joint in by_key.items():
        intent, slot = by_key.get(("intent_only", seed)), by_key.get(("slot_only", seed))
        if variant != "joint" or intent is None or slot is None:
            continue
        changes = [(joint["intent/accuracy"] - intent["intent/accuracy"]) / intent["intent/accuracy"],
                   (joint["slots/f1"] - slot["slots/f1"]) / slot["slots/f1"]]
        values.append(100 * sum(changes) / len(changes))
    return values


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def claim(lock: Path) -> bool:
    """Take a run for this worker; several workers can share one --out. A lock whose process
    is gone (an interrupted worker) is taken over."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text() or 0), 0)
            return False
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)
            return claim(lock)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/snips"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/snips"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only-seeds", help="comma-separated seeds to run (e.g. 3), instead of 1..--seeds")
    parser.add_argument("--variants", default="joint,intent_only,slot_only")
    parser.add_argument("--quick", action="store_true", help="1 seed, joint only")
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--lr", type=float, default=2e-4, help="encoder lr (chosen on dev: 2e-4 beat the reference's 1e-4)")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--crf", action="store_true")
    parser.add_argument("--encoder", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", help="extra config override, e.g. model.pooling=mean")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants = ["joint"] if args.quick else args.variants.split(",")
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    if args.only_seeds:
        seeds = [int(seed) for seed in args.only_seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for variant in variants:
            target = args.out / f"{variant}-seed{seed}.json"
            lock = target.with_suffix(".lock")
            if target.exists() or not claim(lock):
                logging.info("skip %s (done or taken by another worker)", target)
                continue
            row = run_one(args.data.resolve(), variant, seed, args.out, args)
            write_text(target, json.dumps(row, indent=2))
            lock.unlink(missing_ok=True)
            # Optimizer-state checkpoints are only for resuming this run: free the disk.
            shutil.rmtree(args.out / "runs" / f"{variant}-seed{seed}" / "checkpoints", ignore_errors=True)
            logging.info("%s seed %d: %s", variant, seed, {k: row["test"].get(k) for k in REPORTED})
    rows = [json.loads(p.read_text()) for p in sorted(args.out.glob("*-seed*.json"))]
    table = summarise(rows)
    write_text(args.out / "results.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
