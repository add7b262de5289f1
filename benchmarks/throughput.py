"""Training throughput: polytask vs a hand-written PyTorch + transformers loop, side by side.

Both train the embedded all-MiniLM-L6-v2 on SNIPS intent + slots (batch 32, AdamW, dynamic
padding) in the same process, in alternating blocks of steps, so machine load affects both
alike. Prints utterances/s of each and the ratio.

    python benchmarks/throughput.py --data ../shared/data/snips --blocks 4 --steps 25
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, AutoTokenizer

from polytask.config import parse_config
from polytask.data.batches import GroupStream
from polytask.models.encoder import embedded_encoder_dir
from polytask.sampling.samplers import build_sampler
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.training.setup import prepare
from polytask.training.trainer import Run, train_step
from polytask.weighting.base import build_balancer


class ReferenceLoop:
    """The hand-written loop the issue measured: [CLS] intent head, first-sub-token slot head,
    summed cross-entropy, random batches padded to their longest sequence."""

    def __init__(self, data: Path, batch_size: int) -> None:
        path = embedded_encoder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path)
        words = [line.split() for line in (data / "train" / "seq.in").read_text().splitlines()]
        tags = [line.split() for line in (data / "train" / "seq.out").read_text().splitlines()]
        intents = (data / "train" / "label").read_text().splitlines()
        self.tag_ids = {t: i for i, t in enumerate(sorted({t for row in tags for t in row}))}
        self.intent_ids = {t: i for i, t in enumerate(sorted(set(intents)))}
        self.rows = list(zip(words, tags, intents))
        hidden = self.encoder.config.hidden_size
        self.intent_head = nn.Linear(hidden, len(self.intent_ids))
        self.slot_head = nn.Linear(hidden, len(self.tag_ids))
        params = [*self.encoder.parameters(), *self.intent_head.parameters(), *self.slot_head.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4)
        self.batch_size = batch_size
        self.rng = random.Random(0)

    def step(self) -> int:
        batch = self.rng.sample(self.rows, self.batch_size)
        enc = self.tokenizer([w for w, _, _ in batch], is_split_into_words=True, padding=True,
                             truncation=True, max_length=64, return_tensors="pt")
        labels = torch.full(enc["input_ids"].shape, -100)
        for row, (_, tags, _) in enumerate(batch):
            seen = set()
            for pos, word in enumerate(enc.word_ids(row)):
                if word is not None and word not in seen:
                    seen.add(word)
                    labels[row, pos] = self.tag_ids[tags[word]]
        intents = torch.tensor([self.intent_ids[i] for _, _, i in batch])
        hidden = self.encoder(**enc).last_hidden_state
        loss = F.cross_entropy(self.intent_head(hidden[:, 0]), intents) + F.cross_entropy(
            self.slot_head(hidden).flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return self.batch_size


class PolytaskLoop:
    def __init__(self, data: Path, batch_size: int, crf: bool) -> None:
        config = parse_config({
            "model": {"encoder": "embedded", "max_length": 64},
            "datasets": {"snips": {"format": "intent_slot", "train": str(data / "train")}},
            "tasks": [{"name": "intent", "type": "classification", "dataset": "snips", "label": "intent"},
                      {"name": "slots", "type": "token_classification", "dataset": "snips",
                       "label": "slots", "crf": crf}],
            "train": {"batch_size": batch_size, "lr": 1e-4, "progress": False, "output_dir": "/tmp/unused"},
        })
        prepared = prepare(config, splits=("train",))
        streams = {g: GroupStream(g, f, batch_size, 1, True) for g, f in prepared.features["train"].items()}
        self.run = Run(prepared, Path("/tmp/unused"), torch.device("cpu"), streams, 10**6, 1)
        self.sampler = build_sampler(config.sampler, {"snips": len(streams["snips"].features)}, 1, 10**6)
        self.balancer = build_balancer(config.weighting, ["intent", "slots"])
        self.optimizer = build_optimizer(prepared.model, self.balancer, config.train)
        self.scheduler = build_scheduler(self.optimizer, config.train, 10**6)
        self.batch_size = batch_size

    def step(self) -> int:
        train_step(self.run, self.sampler, self.balancer, self.optimizer, self.scheduler)
        self.run.state.step += 1
        return self.batch_size


def timed(loop, steps: int) -> tuple[int, float]:
    start, seen = time.perf_counter(), 0
    for _ in range(steps):
        seen += loop.step()
    return seen, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/snips"))
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--crf", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loops = {"reference": ReferenceLoop(args.data, 32), "polytask": PolytaskLoop(args.data, 32, args.crf)}
    for loop in loops.values():  # warm-up: allocator, first-call overheads
        timed(loop, 3)
    totals = {name: [0, 0.0] for name in loops}
    for _ in range(args.blocks):
        for name, loop in loops.items():
            seen, seconds = timed(loop, args.steps)
            totals[name][0] += seen
            totals[name][1] += seconds
    speed = {name: seen / seconds for name, (seen, seconds) in totals.items()}
    for name, value in speed.items():
        print(f"{name:10s} {value:7.1f} utterances/s")
    print(f"ratio polytask / reference: {speed['polytask'] / speed['reference']:.2f}")


if __name__ == "__main__":
    main()
