"""A saved model's card: its sharing strategy and which parameters each task uses.

A task's parameters are everything its prediction depends on (``MultiTaskModel.parameters_for``):
the encoder weights its features come from, what its sharing strategy adds for it, its head
(and the heads of tasks that feed it). Of those, "shared" are used by every task of the model,
"own" by fewer.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from polytask.models.multitask import MultiTaskModel


def count(params: dict[int, nn.Parameter]) -> int:
    return sum(p.numel() for p in params.values())


def model_card(model: MultiTaskModel) -> dict[str, Any]:
    everything = {id(p): p for p in model.parameters()}
    used = {name: {id(p): p for p in model.parameters_for(name)} for name in model.tasks}
    common = set.intersection(*(set(ids) for ids in used.values())) if len(used) > 1 else set()
    tasks = {}
    for name, params in used.items():
        task = model.tasks[name]
        shared = {i: p for i, p in params.items() if i in common}
        own = {i: p for i, p in params.items() if i not in common}
        tasks[name] = {"type": task.config.type, "level": task.level, "shared": count(shared),
                       "own": count(own), "total": count(params)}
    encoder = model.encoder.config
    return {
        "encoder": {"type": encoder.model_type, "layers": encoder.num_hidden_layers,
                    "hidden_size": encoder.hidden_size},
        "sharing": model.config.sharing.model_dump(mode="json"),
        "parameters": {"total": count(everything),
                       "trainable": count({i: p for i, p in everything.items() if p.requires_grad})},
        "tasks": tasks,
    }
