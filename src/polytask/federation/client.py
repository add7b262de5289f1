"""One federated client: an ordinary polytask run (its tasks, its data) trained a few steps at
a time with the trainer's own step function, between which the server replaces its encoder.

What leaves the client is only the encoder's parameters (``shared_arrays``); the task heads,
the optimizer state and the data stay here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from polytask.config import RunConfig
from polytask.data.batches import GroupStream
from polytask.evaluation.evaluate import evaluate_groups, selection_score
from polytask.sampling.samplers import build_sampler
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.device import pick_device
from polytask.training.setup import prepare
from polytask.training.trainer import Run, check_combination, plan_steps, train_step
from polytask.weighting.base import build_balancer

log = logging.getLogger(__name__)


class LocalClient:
    def __init__(self, name: str, config: RunConfig, total_steps: int) -> None:
        """Validate and tokenize the client's data, build its model and training objects;
        the learning-rate schedule spans ``total_steps`` (all its rounds)."""
        check_combination(config)
        self.name, self.config = name, config
        prepared = prepare(config)
        device = pick_device(config.train.device)
        prepared.model.to(device)
        streams = {g: GroupStream(g, f, config.train.batch_size, config.train.seed, config.train.group_by_length)
                   for g, f in prepared.features["train"].items() if f}
        sizes = {g: len(s.features) for g, s in streams.items()}
        _, per_epoch = plan_steps(config, sizes)
        self.run = Run(prepared, Path(config.train.output_dir), device, streams, total_steps, per_epoch)
        self.sampler = build_sampler(config.sampler, sizes, config.train.seed, total_steps)
        self.balancer = build_balancer(config.weighting, [t.name for t in prepared.tasks]).to(device)
        self.optimizer = build_optimizer(prepared.model, self.balancer, config.train)
        self.scheduler = build_scheduler(self.optimizer, config.train, total_steps)
        self.num_examples = sum(sizes.values())
        self.rounds: list[dict[str, Any]] = []  # per round: train loss, then dev metrics

    @property
    def model(self):
        return self.run.prepared.model

    def shared_arrays(self) -> dict[str, torch.Tensor]:
        """The encoder's trainable parameters: all the server ever sees of this client."""
        return {name: p.detach().cpu() for name, p in self.model.encoder.named_parameters()}

    def load_shared(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.model.encoder.named_parameters())
        if set(state) != set(own):
            raise ValueError(f"client {self.name}: the server's encoder has other parameters "
                             f"({len(state)} vs {len(own)}); every client must use the same model.encoder")
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value.to(own[name].device, own[name].dtype))

    def fit(self, steps: int) -> float:
        """``steps`` optimizer steps of the ordinary trainer; the mean loss over them."""
        self.run.state.running.clear()
        for _ in range(steps):
            train_step(self.run, self.sampler, self.balancer, self.optimizer, self.scheduler)
            self.run.state.step += 1
        losses = [v for values in self.run.state.running.values() for v in values]
        return sum(losses) / len(losses) if losses else 0.0

    def evaluate(self) -> dict[str, Any]:
        """Dev metrics of the client's tasks (``task/metric``) and its selection ``score``."""
        groups = self.run.prepared.split("dev")
        if not groups:
            raise ValueError(f"client {self.name}: no dev data to evaluate on; give its datasets a dev: file")
        metrics = evaluate_groups(self.model, groups, self.config.train.eval_batch_size,
                                  self.config.train.precision)
        score = selection_score(metrics, self.run.prepared.tasks, self.config.train.select_on)
        return {**{k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, "score": score}

    def primary(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Each task's primary metric from ``metrics``: what "learned" is judged on."""
        return {f"{t.name}/{t.primary_metric}": metrics[f"{t.name}/{t.primary_metric}"]
                for t in self.run.prepared.tasks if f"{t.name}/{t.primary_metric}" in metrics}

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory)
