"""Cost of each sharing strategy relative to hard sharing: training step time, inference time,
parameter counts.

Every strategy trains intent (sequence) + slots (token) on the packaged demo NLU data, in
interleaved rounds within one process (so machine load hits all alike); each round times
``--steps`` training steps and ``--steps`` inference batches per strategy. Prints the median
seconds per step of each, as a ratio to hard sharing, and total / trainable parameters.

    python benchmarks/sharing_cost.py --encoder tiny --rounds 5 --steps 5
    python benchmarks/sharing_cost.py --encoder embedded --rounds 3 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel
from transformers.utils import logging as hf_logging

import polytask.sharing  # noqa: F401 - registers every strategy
from polytask.config import parse_config
from polytask.data.batches import GroupStream, collate
from polytask.models.encoder import embedded_encoder_dir
from polytask.sampling.samplers import build_sampler
from polytask.sharing.base import SHARINGS
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.training.setup import prepare
from polytask.training.trainer import Run, train_step
from polytask.weighting.base import build_balancer

DEMO = Path(polytask.sharing.__file__).parent.parent / "data" / "demo"


def tiny_encoder(directory: Path) -> Path:
    """A random 2-layer BERT (hidden 64) with the packaged MiniLM tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(embedded_encoder_dir())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, max_position_embeddings=128)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class Setup:
    """One strategy's model, optimizer and fixed inference batches."""

    def __init__(self, sharing: str, encoder: str, batch_size: int, out: Path) -> None:
        config = parse_config({
            "model": {"encoder": encoder, "max_length": 64, "sharing": sharing},
            "datasets": {"nlu": {"train": str(DEMO / "nlu_train.jsonl"), "tokens": "tokens"}},
            "tasks": [{"name": "intent", "type": "classification", "dataset": "nlu", "label": "intent"},
                      {"name": "slots", "type": "token_classification", "dataset": "nlu", "label": "slots"}],
            "train": {"batch_size": batch_size, "progress": False, "output_dir": str(out)},
        })
        prepared = prepare(config, splits=("train",))
        features = prepared.features["train"]["nlu"]
        streams = {"nlu": GroupStream("nlu", features, batch_size, 1, True)}
        self.model = prepared.model
        self.run = Run(prepared, out, torch.device("cpu"), streams, 10**6, 1)
        self.sampler = build_sampler(config.sampler, {"nlu": len(features)}, 1, 10**6)
        self.balancer = build_balancer(config.weighting, ["intent", "slots"])
        self.optimizer = build_optimizer(self.model, self.balancer, config.train)
        self.scheduler = build_scheduler(self.optimizer, config.train, 10**6)
        tasks = prepared.groups["nlu"]
        self.batches = [collate(features[i:i + batch_size], tasks, self.model.tokenizer.pad_token_id)
                        for i in range(0, 20 * batch_size, batch_size)]

    def train(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            train_step(self.run, self.sampler, self.balancer, self.optimizer, self.scheduler)
            self.run.state.step += 1
        return (time.perf_counter() - start) / steps

    @torch.no_grad()
    def infer(self, steps: int) -> float:
        self.model.eval()
        start = time.perf_counter()
        for i in range(steps):
            batch = self.batches[i % len(self.batches)]
            self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        return (time.perf_counter() - start) / steps

    def parameters(self) -> tuple[int, int]:
        params = list(self.model.parameters())
        return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="tiny", help="'tiny' (random 2-layer BERT) or 'embedded'")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        encoder = str(tiny_encoder(Path(tmp) / "tiny")) if args.encoder == "tiny" else args.encoder
        setups = {name: Setup(name, encoder, args.batch_size, Path(tmp) / name) for name in SHARINGS.names()}
        times: dict[str, dict[str, list[float]]] = {n: {"train": [], "infer": []} for n in setups}
        for setup in setups.values():  # warm-up: allocator, first-call overheads
            setup.train(1), setup.infer(1)
        for _ in range(args.rounds):
            for name, setup in setups.items():
                times[name]["train"].append(setup.train(args.steps))
                times[name]["infer"].append(setup.infer(args.steps))
    median = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    base = median["hard"]
    print("| sharing | train step (x hard) | inference (x hard) | total params | trainable params |")
    print("|---|---|---|---|---|")
    for name, setup in sorted(setups.items(), key=lambda item: item[0] != "hard"):
        total, trainable = setup.parameters()
        print(f"| {name} | {median[name]['train'] / base['train']:.2f} | "
              f"{median[name]['infer'] / base['infer']:.2f} | {total:,} | {trainable:,} |")
    print(f"\nhard sharing: {base['train'] * 1000:.1f} ms per training step, "
          f"{base['infer'] * 1000:.1f} ms per inference batch (batch {args.batch_size})")


if __name__ == "__main__":
    main()
