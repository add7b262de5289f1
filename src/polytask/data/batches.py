"""Deterministic batching with dynamic padding.

The order of batches is a pure function of (seed, group, pass), and the position inside a pass
is two integers, so a resumed run draws exactly the batches an uninterrupted run would have.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from polytask.data.features import Feature
from polytask.tasks.base import Task

# Sort-within-megabatch, as in Hugging Face's group_by_length: batches of similar lengths
# waste little compute on padding, while the megabatch shuffle keeps the order random.
MEGABATCH_FACTOR = 50


def epoch_batches(lengths: list[int], batch_size: int, seed: int, group: str, pass_index: int,
                  group_by_length: bool) -> list[list[int]]:
    rng = np.random.default_rng([seed, zlib.crc32(group.encode()), pass_index])
    order = rng.permutation(len(lengths))
    if group_by_length:
        mega = batch_size * MEGABATCH_FACTOR
        order = np.concatenate([
            sorted(order[i:i + mega], key=lambda j: -lengths[j]) for i in range(0, len(order), mega)
        ]) if len(order) else order
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


class GroupStream:
    """Endless stream of training batches from one input group (one dataset)."""

    def __init__(self, group: str, features: list[Feature], batch_size: int, seed: int,
                 group_by_length: bool) -> None:
        self.group, self.features = group, features
        self.batch_size, self.seed, self.group_by_length = batch_size, seed, group_by_length
        self.lengths = [len(f) for f in features]
        self.pass_index, self.offset = 0, 0
        self._batches: list[list[int]] | None = None

    def _current(self) -> list[list[int]]:
        if self._batches is None:
            self._batches = epoch_batches(self.lengths, self.batch_size, self.seed, self.group,
                                          self.pass_index, self.group_by_length)
        return self._batches

    def next_indices(self) -> list[int]:
        if self.offset >= len(self._current()):
            self.pass_index, self.offset, self._batches = self.pass_index + 1, 0, None
        indices = self._current()[self.offset]
        self.offset += 1
        return indices

    def state_dict(self) -> dict[str, int]:
        return {"pass_index": self.pass_index, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.pass_index, self.offset, self._batches = state["pass_index"], state["offset"], None


def shard(indices: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s rows of a global batch under data parallelism: every world_size-th index.
    Every rank draws the same global batch from its own GroupStream (a pure function of seed
    and position), so the stream state stays two integers, identical on all ranks; batches
    are length-sorted, so striding gives shards of similar lengths (little padding anywhere)."""
    return indices[rank::world_size]


def collate(features: list[Feature], tasks: list[Task], pad_id: int,
            with_targets: bool = True) -> dict[str, Any]:
    """Pad to the longest sequence of THIS batch (dynamic padding) and stack targets."""
    width = max(len(f) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    has_types = features[0].token_type_ids is not None
    types = torch.zeros((len(features), width), dtype=torch.long) if has_types else None
    for row, feature in enumerate(features):
        n = len(feature)
        ids[row, :n] = torch.tensor(feature.input_ids)
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = torch.tensor(feature.token_type_ids)
    batch: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
                             "word_ids": [f.word_ids for f in features],
                             "targets": {}, "present": {}}
    if with_targets:
        for task in tasks:
            targets = [f.targets.get(task.name) for f in features]
            batch["targets"][task.name] = task.collate(targets, width)
            batch["present"][task.name] = Task.present(targets)
    return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    moved = dict(batch)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if moved[key] is not None:
            moved[key] = moved[key].to(device, non_blocking=True)
    moved["targets"] = {k: v.to(device, non_blocking=True) for k, v in batch["targets"].items()}
    moved["present"] = {k: v.to(device, non_blocking=True) for k, v in batch["present"].items()}
    return moved
