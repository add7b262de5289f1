"""Step cost of every weighting method: time and peak memory of one optimizer step, as ratios.

Every registered method (gradient methods with every ``gradients_on`` setting: ``features`` at
the default point, the input of the top two layers; features at the encoder output, the point
before issue 26; the partial Jacobian of the top two layers; ``parameters``) trains three tasks (classification, token classification, regression) that read ONE dataset, so
each step is one encoder forward for all three; batch 16, 128 tokens per example. A step is the
full ``train_step``: forward, the balancer's backward, gradient clipping, the optimizer step.
The reference rows are EW (``equal``, same three tasks) and the single-task step (the
classification task alone, ``equal``).

Each method runs in its own spawned worker process, built once. The parent then asks the workers
for a few steps each, round-robin, for several rounds (one worker computes at a time), so machine
load drifts over all methods alike. ms/step is the median over all timed steps; each ratio is the
median over rounds of (method's round median / reference's round median).

Memory on CPU is the growth of peak RSS (``ru_maxrss``, reset through /proc/self/clear_refs
where the kernel allows) from right before the first step to the end: an approximation that
includes the optimizer state (allocated at the first step). Workers run with glibc's
MALLOC_MMAP_THRESHOLD_ at 1 MiB, so freed large tensors leave RSS instead of staying cached by
malloc (this also keeps idle workers small). On CUDA it is
``torch.cuda.max_memory_allocated`` minus the allocation before the first step.

At most ``--max-workers`` workers live at once (an idle MiniLM worker holds ~0.6 GB): rows are
measured in groups, and every group re-measures the two references alongside its methods.

    python benchmarks/step_cost.py --encoder tiny --rounds 6 --steps-per-round 5 --max-workers 30
    python benchmarks/step_cost.py --encoder embedded --rounds 3 --steps-per-round 2 --warmup 1
    python benchmarks/step_cost.py --encoder tiny --only nash_mtl --output /tmp/nash.md

Beside each ``parameters`` row the FLOP floor of exact per-task parameter gradients is printed:
(1 + 2T)/3 × an EW step (forward ≈ 1, each of the T encoder backward passes ≈ 2).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
WORDS_PER_EXAMPLE = 126  # + [CLS] and [SEP] = 128 tokens with one token per word
MAX_LENGTH = 128
BATCH_SIZE = 16
EXAMPLES = 48
THREE_TASKS = [
    {"name": "color", "type": "classification", "label": "color"},
    {"name": "tags", "type": "token_classification", "label": "tags"},
    {"name": "size", "type": "regression", "label": "size"},
]


#: The gradients_on settings measured for every gradient method, in table order.
GRADIENT_SETTINGS = ("features", {"features": "layer", "layer": -1},
                     {"parameters": "last_layers", "k": 2}, "parameters")


#: ``parameters`` is measured with both engines (the Jacobian, and the Gramian only).
ENGINES = ("autojac", "autogram")


def setting_label(weighting: dict) -> str:
    where = weighting.get("gradients_on", "—")
    if isinstance(where, dict):
        return ", ".join(f"{k}: {v}" for k, v in where.items())
    return f"{where}, {weighting['engine']}" if "engine" in weighting else where


def gradient_settings(name: str) -> list[dict]:
    """The weighting of each row of a gradient method: every setting, ``parameters`` per engine."""
    out = []
    for where in GRADIENT_SETTINGS:
        engines = ENGINES if where == "parameters" else (None,)
        out += [{"name": name, "gradients_on": where, **({"engine": e} if e else {})} for e in engines]
    return out


def flop_floor(row: "Variant") -> str:
    """(1 + 2T)/3 for exact per-task parameter gradients; blank for the cheaper definitions."""
    return f"{(1 + 2 * row.tasks) / 3:.2f}" if row.weighting.get("gradients_on") == "parameters" else "—"


@dataclass(frozen=True)
class Variant:
    """One row of the table: a method and setting to measure, or why it cannot run."""

    label: str
    weighting: dict
    tasks: int = 3
    unavailable: str | None = None


# ---------------------------------------------------------------- set-up (parent)

def synthetic_rows(count: int, seed: int = 0) -> list[dict]:
    """Long examples over the toy vocabulary: labels for all three tasks in every row."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from toy import ANIMALS, COLORS, VOCAB

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = [rng.choice(VOCAB) for _ in range(WORDS_PER_EXAMPLE)]
        tags = ["B-color" if w in COLORS else "B-animal" if w in ANIMALS else "O" for w in words]
        color = next((w for w in words if w in COLORS), COLORS[0])
        rows.append({"tokens": words, "tags": tags, "color": color, "size": float(words.count("very"))})
    return rows


def tiny_encoder(directory: Path) -> str:
    """The test suite's tiny random BERT, re-saved with 128 positions (it is built with 64)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import build_tiny_encoder
    from transformers import BertConfig, BertModel

    build_tiny_encoder(directory)
    config = BertConfig.from_pretrained(directory)
    config.max_position_embeddings = MAX_LENGTH
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return str(directory)


def run_config(encoder: str, data: Path, out: Path, variant: Variant) -> dict:
    return {
        "model": {"encoder": encoder, "max_length": MAX_LENGTH},
        "datasets": {"synthetic": {"train": str(data), "tokens": "tokens"}},
        "tasks": [{**task, "dataset": "synthetic"} for task in THREE_TASKS[:variant.tasks]],
        "weighting": variant.weighting,
        "train": {"batch_size": BATCH_SIZE, "lr": 1e-4, "warmup_ratio": 0.0, "progress": False,
                  "seed": 0, "output_dir": str(out)},
    }


def unavailable_reason(error: Exception) -> str:
    needs = re.search(r'pip install "([^"]+)"', str(error))
    return f"unavailable (needs {needs.group(1)})" if needs else f"rejected: {str(error).split(';')[0]}"


def variants(only: set[str] | None = None) -> list[Variant]:
    """The single-task and EW references, then every registered method (or those in ``only``).
    A method that combines per-task gradients (``supports_fp16`` is False) gets a row per
    ``gradients_on`` setting; a setting it rejects, or a method that cannot be built here, gets
    a row saying why."""
    import polytask.weighting  # noqa: F401  (registers every method)
    from polytask.config import WeightingConfig
    from polytask.errors import ConfigError
    from polytask.weighting.base import BALANCERS, build_balancer

    names = [t["name"] for t in THREE_TASKS]
    found = [Variant("single task (equal)", {"name": "equal"}, tasks=1), Variant("equal", {"name": "equal"})]
    unknown = sorted((only or set()) - set(BALANCERS.names()))
    if unknown:
        raise SystemExit(f"--only: unknown method(s) {unknown}; registered: {', '.join(BALANCERS.names())}")
    for name in BALANCERS.names():
        if only and name not in only:
            continue
        takes_gradients = not BALANCERS.get(name).supports_fp16
        settings = gradient_settings(name)
        for weighting in settings if takes_gradients else [{"name": name}]:
            if weighting == {"name": "equal"}:
                continue
            try:
                build_balancer(WeightingConfig(**weighting), names)
                found.append(Variant(name, weighting))
            except ConfigError as exc:
                found.append(Variant(name, weighting, unavailable=unavailable_reason(exc)))
    return found


# ---------------------------------------------------------------- worker (one per method)

def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak(device: torch.device) -> int:
    """Start a fresh peak measurement; returns the baseline to subtract."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    try:  # Linux >= 4.0: "5" resets the peak RSS, so set-up's peak does not hide the steps'
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return peak_bytes(device)


def build_loop(config_dict: dict, threads: int):
    """A ``Run`` built like the trainer builds it; returns a function timing one train_step."""
    from polytask.config import parse_config
    from polytask.data.batches import GroupStream
    from polytask.sampling.samplers import build_sampler
    from polytask.training.optim import build_optimizer, build_scheduler
    from polytask.device import pick_device
    from polytask.training.setup import prepare
    from polytask.training.trainer import Run, train_step
    from polytask.weighting.base import build_balancer

    torch.set_num_threads(threads)
    config = parse_config(config_dict)
    prepared = prepare(config, splits=("train",))
    device = pick_device(config.train.device)
    prepared.model.to(device)
    streams = {g: GroupStream(g, f, BATCH_SIZE, 0, False) for g, f in prepared.features["train"].items()}
    run = Run(prepared, Path(config.train.output_dir), device, streams, 10**6, 1)
    sampler = build_sampler(config.sampler, {g: len(s.features) for g, s in streams.items()}, 0, 10**6)
    balancer = build_balancer(config.weighting, [t.name for t in prepared.tasks]).to(device)
    # As the trainer does; there is no dev split here, so auto_lambda's dev batches are train ones.
    balancer.attach(prepared.model, prepared.split("dev") or prepared.split("train"))
    optimizer = build_optimizer(prepared.model, balancer, config.train)
    scheduler = build_scheduler(optimizer, config.train, 10**6)

    def step() -> float:
        start = time.perf_counter()
        train_step(run, sampler, balancer, optimizer, scheduler)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        run.state.step += 1
        return time.perf_counter() - start

    return step, device


def worker(connection, config_dict: dict, threads: int, warmup: int) -> None:
    """Build the run, then answer "steps N" with N step times and "memory" with the peak growth."""
    import gc

    try:
        step, device = build_loop(config_dict, threads)
        gc.collect()
        baseline = reset_peak(device)
        for _ in range(warmup):
            step()
        connection.send(("ready", None))
    except Exception as exc:  # reported in the table, not fatal to the benchmark
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        command, value = connection.recv()
        if command == "steps":
            connection.send(("times", [step() for _ in range(value)]))
        elif command == "memory":
            connection.send(("memory", (peak_bytes(device) - baseline) / 2**20))
        else:
            return


# ---------------------------------------------------------------- orchestration (parent)

REFERENCES = (0, 1)  # variants() puts the single-task step and EW first
MIN_AVAILABLE_MB = 4096  # never start a worker that could push the machine into swap/OOM


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def groups(rows: list[Variant], max_workers: int) -> list[list[int]]:
    """Runnable rows in balanced groups of at most ``max_workers`` alive workers; each group
    holds both references, so every ratio is measured side by side with its own references."""
    methods = [i for i, row in enumerate(rows) if i not in REFERENCES and not row.unavailable]
    count = max(1, -(-len(methods) // max(1, max_workers - len(REFERENCES))))
    return [[*REFERENCES, *methods[k::count]] for k in range(count)]


def start_workers(rows: list[Variant], members: list[int], make_config, args: argparse.Namespace,
                  failed: dict[int, str]) -> dict[int, tuple]:
    """One worker per row, started one after the other (set-up is CPU-heavy)."""
    context = multiprocessing.get_context("spawn")
    workers = {}
    for index in members:
        if available_mb() < MIN_AVAILABLE_MB:
            failed[index] = "skipped: too little free memory"
            continue
        mine, theirs = context.Pipe()
        process = context.Process(target=worker, daemon=True,
                                  args=(theirs, make_config(index), args.threads, args.warmup))
        process.start()
        status, message = mine.recv()
        if status == "ready":
            workers[index] = (process, mine)
        else:
            failed[index] = message
            process.join()
    return workers


def measure(workers: dict[int, tuple], rounds: int, steps: int) -> dict[int, list[list[float]]]:
    """Round-robin: each worker runs ``steps`` steps in turn, the order rotated every round."""
    order = list(workers)
    times: dict[int, list[list[float]]] = {index: [] for index in order}
    for round_index in range(rounds):
        shift = round_index % len(order)
        for index in order[shift:] + order[:shift]:
            connection = workers[index][1]
            connection.send(("steps", steps))
            times[index].append(connection.recv()[1])
    return times


def stop_workers(workers: dict[int, tuple]) -> dict[int, float]:
    memory = {}
    for index, (process, connection) in workers.items():
        connection.send(("memory", None))
        memory[index] = connection.recv()[1]
        connection.send(("stop", None))
        process.join()
    return memory


@dataclass
class Measured:
    """One row's step times and memory, with its group's references measured alongside."""

    times: list[list[float]]
    memory: float
    single: list[list[float]]
    ew: list[list[float]]
    ew_memory: float


def round_ratio(mine: list[list[float]], theirs: list[list[float]]) -> float:
    """Median over rounds of the ratio of round medians (load drift cancels within a round)."""
    return statistics.median(statistics.median(a) / statistics.median(b) for a, b in zip(mine, theirs))


def run_groups(rows: list[Variant], make_config, args: argparse.Namespace) -> tuple[dict, dict]:
    results: dict[int, list[Measured]] = {}
    failed: dict[int, str] = {}
    plan = groups(rows, args.max_workers)
    for number, members in enumerate(plan, 1):
        print(f"group {number}/{len(plan)}: {[rows[i].label for i in members]}", flush=True)
        workers = start_workers(rows, members, make_config, args, failed)
        if not all(i in workers for i in REFERENCES):
            raise SystemExit(f"a reference step failed: {[failed.get(i) for i in REFERENCES]}")
        times = measure(workers, args.rounds, args.steps_per_round)
        memory = stop_workers(workers)
        single, ew = REFERENCES
        for index in workers:
            results.setdefault(index, []).append(
                Measured(times[index], memory[index], times[single], times[ew], memory[ew]))
    return results, failed


def table_row(row: Variant, measured: list[Measured]) -> str:
    """Reference rows measured in several groups pool their steps and take medians."""
    steps = [t for m in measured for block in m.times for t in block]
    ms = 1000 * statistics.median(steps)
    x_single = statistics.median(round_ratio(m.times, m.single) for m in measured)
    x_ew = statistics.median(round_ratio(m.times, m.ew) for m in measured)
    memory = statistics.median(m.memory for m in measured)
    x_memory = statistics.median(m.memory / m.ew_memory if m.ew_memory > 0 else float("nan")
                                 for m in measured)
    return (f"| {row.label} | {setting_label(row.weighting)} | {ms:.1f} | {x_single:.2f} | {x_ew:.2f} | "
            f"{flop_floor(row)} | {memory:.1f} | {x_memory:.2f} |")


def table(rows: list[Variant], results: dict, failed: dict) -> str:
    lines = ["| method | gradients_on | ms/step | × single | × EW | floor × EW | memory MB | mem × EW |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for index, row in enumerate(rows):
        reason = row.unavailable or failed.get(index)
        if reason:
            lines.append(f"| {row.label} | {setting_label(row.weighting)} | {reason} | — | — | — | — | — |")
        else:
            lines.append(table_row(row, results[index]))
    return "\n".join(lines)


def header(args: argparse.Namespace, device: str, group_count: int) -> str:
    memory = "max_memory_allocated" if device == "cuda" else "peak RSS growth, an approximation"
    return (f"## Step cost, encoder `{args.encoder}`\n\n"
            f"{datetime.date.today().isoformat()}; device {device}; torch {torch.__version__}; "
            f"threads {args.threads}. Tasks: classification, token classification and regression "
            f"on one dataset; batch {BATCH_SIZE}, {MAX_LENGTH} tokens per example. Per method: "
            f"{args.warmup} warm-up step(s), then {args.rounds} rounds × {args.steps_per_round} "
            f"steps, round-robin over {group_count} group(s) of at most {args.max_workers} live "
            "workers, each group with its own single-task and EW references. ms/step: median of "
            "all timed steps; ratios: median over rounds of the ratio of round medians. Memory: "
            f"growth from right before the first step ({memory}).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=("tiny", "embedded"), default="tiny")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per method first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-workers", type=int, default=12, help="live worker processes at once")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated methods to measure (with the "
                        "references), e.g. nash_mtl; default: every registered method")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # Big tensors go straight to mmap and back to the OS when freed: peak RSS then tracks live
    # tensors rather than the allocator's cache, and idle workers stay small.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(2**20))
    output = args.output or HERE / "results" / f"step_cost_{args.encoder}.md"
    rows = variants({name for name in args.only.split(",") if name} or None)
    with tempfile.TemporaryDirectory(prefix="step-cost-") as folder:
        root = Path(folder)
        data = root / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(EXAMPLES)), encoding="utf-8")
        encoder = tiny_encoder(root / "tiny-bert") if args.encoder == "tiny" else "embedded"
        results, failed = run_groups(
            rows, lambda i: run_config(encoder, data, root / "runs" / str(i), rows[i]), args)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = (header(args, device, len(groups(rows, args.max_workers))) + "\n"
              + table(rows, results, failed) + "\n")
    print(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    print(f"written to {output}")


if __name__ == "__main__":
    main()
