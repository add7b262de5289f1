"""A saved model's card: its sharing strategy and which parameters each task uses.

A task's parameters are everything its prediction depends on (``MultiTaskModel.parameters_for``,
built on ``Sharing.parameters_for``): the encoder weights its features come from, what its
sharing strategy adds for it (gates, adapters, attention, projections), its head (and the heads
of tasks that feed it). Per task the card counts them all (``total``, frozen ones included), the
trainable ones (``trainable``), and of those the ones every task trains (``shared``) and the
ones no other task uses (``own``; with one task, all of them). ``shared + own`` is
``trainable`` unless some are used by several tasks but not all (hierarchical sharing).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from polytask.models.multitask import MultiTaskModel


def count(params: dict[int, nn.Parameter]) -> int:
    return sum(p.numel() for p in params.values())


def task_counts(model: MultiTaskModel) -> dict[str, dict[str, int]]:
    """Per task: ``total``, ``trainable``, ``shared`` and ``own`` parameter counts (see above)."""
    used = {name: {id(p): p for p in model.parameters_for(name)} for name in model.tasks}
    users: dict[int, int] = {}
    for params in used.values():
        for i, p in params.items():
            if p.requires_grad:
                users[i] = users.get(i, 0) + 1
    counts = {}
    for name, params in used.items():
        trainable = {i: p for i, p in params.items() if p.requires_grad}
        counts[name] = {"total": count(params), "trainable": count(trainable),
                        "shared": count({i: p for i, p in trainable.items() if users[i] == len(used) > 1}),
                        "own": count({i: p for i, p in trainable.items() if users[i] == 1})}
    return counts


def model_card(model: MultiTaskModel) -> dict[str, Any]:
    everything = {id(p): p for p in model.parameters()}
    counts = task_counts(model)
    tasks = {name: {"type": task.config.type, "level": task.level, **counts[name]}
             for name, task in model.tasks.items()}
    encoder = model.encoder.config
    return {
        "encoder": {"type": encoder.model_type, "layers": encoder.num_hidden_layers,
                    "hidden_size": encoder.hidden_size},
        "sharing": model.config.sharing.model_dump(mode="json"),
        "parameters": {"total": count(everything),
                       "trainable": count({i: p for i, p in everything.items() if p.requires_grad})},
        "tasks": tasks,
    }
