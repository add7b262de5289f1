"""Where do a sentence task's and a token task's gradients meet? The cosine of the intent and
slots gradients (the demo's nlu data: intent reads [CLS] or the mean, slots the words) w.r.t.
every hidden state of the shared encoder, and w.r.t. the shared parameters for reference.

The run trains the two tasks with equal weighting for ``--steps`` steps (the trainer's own
``train_step``) and, before each step, in eval mode, measures on a fresh batch. Printed: the
mean and mean |cosine| per point. The default ``gradients_on: features`` point
(``DEFAULT_FEATURE_LAYER``) was chosen from this table (docs/weighting.md, section 4).

    python benchmarks/feature_point.py --encoder tiny --steps 30
    python benchmarks/feature_point.py --encoder embedded --steps 10 --pooling mean
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from polytask.models.multitask import pool

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "src" / "polytask" / "data" / "demo"


def demo_words() -> list[str]:
    words = set()
    for line in (DEMO / "nlu_train.jsonl").read_text(encoding="utf-8").splitlines():
        words.update(json.loads(line)["tokens"])
    return sorted(words)


def run_config(encoder: str, pooling: str, out: Path) -> dict:
    nlu = {split: str(DEMO / f"nlu_{split}.jsonl") for split in ("train", "dev")}
    return {"model": {"encoder": encoder, "max_length": 64, "pooling": pooling},
            "datasets": {"nlu": {**nlu, "tokens": "tokens"}},
            "tasks": [{"name": "intent", "type": "classification", "dataset": "nlu", "label": "intent"},
                      {"name": "slots", "type": "token_classification", "dataset": "nlu", "label": "slots"}],
            "train": {"batch_size": 16, "lr": 1e-4, "head_lr": 1e-3, "warmup_ratio": 0.0,
                      "progress": False, "seed": 0, "output_dir": str(out)}}


def cosines(prepared, batch) -> list[float]:
    """Cosine of the two tasks' gradients at each hidden state, then at the shared parameters."""
    model, tasks = prepared.model, prepared.groups["nlu"]
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    shared = model.sharing(inputs, [t.name for t in tasks])  # keeps every hidden state
    states = list(shared.hidden_states)
    losses = []
    for t in tasks:
        x = shared.per_task[t.name]
        if t.level != "token":
            x = pool(x, batch["attention_mask"], model.config.pooling)
        losses.append(t.loss(model.heads[t.name](x), batch["targets"][t.name], batch["present"][t.name],
                             batch["attention_mask"], head=model.heads[t.name]))
    params = [p for p in model.shared_parameters() if p.requires_grad]
    grads = [torch.autograd.grad(loss, states + params, retain_graph=True, allow_unused=True) for loss in losses]
    values = []
    for i in range(len(states) + 1):
        pieces = range(i, i + 1) if i < len(states) else range(len(states), len(states) + len(params))
        a, b = ([g[j].reshape(-1) for j in pieces if g[j] is not None] for g in grads)
        a, b = torch.cat(a), torch.cat(b)
        values.append(float(a @ b / (a.norm() * b.norm()).clamp(min=1e-30)))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=("tiny", "embedded"), default="tiny")
    parser.add_argument("--pooling", choices=("cls", "mean"), default="cls")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from polytask.config import parse_config
    from polytask.data.batches import GroupStream, collate, to_device
    from polytask.sampling.samplers import build_sampler
    from polytask.training.optim import build_optimizer, build_scheduler
    from polytask.training.setup import prepare
    from polytask.training.trainer import Run, train_step
    from polytask.weighting.base import build_balancer

    with tempfile.TemporaryDirectory(prefix="feature-point-") as folder:
        encoder = "embedded"
        if args.encoder == "tiny":
            sys.path.insert(0, str(HERE.parent / "tests"))
            from conftest import build_tiny_encoder
            encoder = str(build_tiny_encoder(Path(folder) / "tiny", demo_words()))
        config = parse_config(run_config(encoder, args.pooling, Path(folder) / "run"))
        prepared = prepare(config, ("train",))
        features = prepared.features["train"]["nlu"]
        stream = GroupStream("nlu", features, 16, 0, False)
        probe = GroupStream("nlu", features, 16, 1, False)
        run = Run(prepared, Path(folder) / "run", torch.device("cpu"), {"nlu": stream}, 10**6, 1)
        sampler = build_sampler(config.sampler, {"nlu": len(features)}, 0, 10**6)
        balancer = build_balancer(config.weighting, ["intent", "slots"])
        optimizer = build_optimizer(prepared.model, balancer, config.train)
        scheduler = build_scheduler(optimizer, config.train, 10**6)
        rows = []
        for _ in range(args.steps):
            prepared.model.eval()
            batch = collate([features[i] for i in probe.next_indices()], prepared.groups["nlu"],
                            prepared.model.tokenizer.pad_token_id)
            with torch.enable_grad():
                rows.append(cosines(prepared, to_device(batch, torch.device("cpu"))))
            train_step(run, sampler, balancer, optimizer, scheduler)
            run.state.step += 1
    depth = len(rows[0]) - 1
    print(f"encoder {args.encoder}, pooling {args.pooling}, {args.steps} EW steps, batch 16\n")
    print("| point | layer index | mean cosine | mean abs cosine |\n|---|---:|---:|---:|")
    for i in range(depth + 1):
        column = [r[i] for r in rows]
        name = ("parameters" if i == depth else "embedding output" if i == 0
                else "encoder output" if i == depth - 1 else f"output of layer {i}")
        index = "—" if i == depth else f"{i - depth}"
        print(f"| {name} | {index} | {statistics.mean(column):+.4f} | "
              f"{statistics.mean(abs(c) for c in column):.4f} |")


if __name__ == "__main__":
    main()
