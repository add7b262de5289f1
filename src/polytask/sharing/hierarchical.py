"""Hierarchical sharing (Søgaard & Goldberg, 2016; Hashimoto et al., 2017): each task reads the
encoder layer the config names, and a task may read an earlier task's prediction.

Options:

- ``layers: {task: index}`` — 0 is the embedding output, 1..L the Transformer layers; negative
  indices count from the top (-1 = the top, the default for unnamed tasks). Low-level tasks
  (tagging) are typically read lower than high-level ones.
- ``feed: {later_task: earlier_task}`` — the earlier task's predicted distribution (softmax of
  its logits, per token or per sequence) is concatenated to the later task's head input and
  projected back to the hidden size. The projection starts as the identity on the features
  and zero on the distribution. A token-level distribution fed into a sequence task is
  averaged over the real tokens; a sequence-level one fed into a token task is repeated at
  every token. The earlier task's head then runs whenever the later task is asked for.

The shared features are the stacked hidden states of all layers ([L+1, B, T, H]); every task
reads one slice of it, so feature-gradient balancers work unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from polytask.config import SharingConfig, TaskConfig
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing, check_option
from polytask.sharing.usage import used_parameters

FEEDABLE = ("classification", "token_classification")  # single-label: softmax is their distribution


@SHARINGS.register("hierarchical")
class Hierarchical(Sharing):
    defaults = {"layers": {}, "feed": {}}

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        depth = encoder.config.num_hidden_layers
        chosen = self.options["layers"]
        for name, index in chosen.items():
            check_option(-depth - 1 <= index <= depth, config, "layers",
                         f"indices in [{-depth - 1}, {depth}] (the encoder has {depth} layers); {name}: {index}")
        self.layer_of = {name: chosen.get(name, -1) % (depth + 1) for name in self.task_names}
        self.feed: dict[str, str] = dict(self.options["feed"])
        hidden, outputs = encoder.config.hidden_size, {t.name: t.num_outputs for t in tasks}
        self.projections = nn.ModuleDict(
            {later: _identity_projection(hidden, outputs[earlier]) for later, earlier in self.feed.items()})

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        names, types = [t.name for t in tasks], {t.name: t.type for t in tasks}
        layers, feed = options["layers"], options["feed"]
        check_option(isinstance(layers, dict) and set(layers) <= set(names)
                     and all(isinstance(v, int) and not isinstance(v, bool) for v in layers.values()),
                     config, "layers", f"a mapping from task names {names} to layer indices")
        check_option(isinstance(feed, dict) and set(feed) | set(feed.values()) <= set(names), config,
                     "feed", f"a mapping later_task: earlier_task between task names {names}")
        check_option(all(types[e] in FEEDABLE for e in feed.values()), config, "feed",
                     f"fed from tasks of type {' or '.join(FEEDABLE)}")
        for start in feed:
            seen, task = {start}, feed[start]
            while task in feed:
                check_option(task not in seen, config, "feed", "free of cycles")
                seen.add(task)
                task = feed[task]
        return options

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        states = self.encoder(**inputs, output_hidden_states=True).hidden_states
        stacked = torch.stack(states)  # [L+1, B, T, H]
        return SharedOutput({name: stacked[self.layer_of[name]] for name in tasks}, shared=stacked,
                            hidden_states=states)

    def required_tasks(self, tasks: list[str]) -> list[str]:
        order: list[str] = []

        def visit(name: str) -> None:
            if name not in order:
                if name in self.feed:
                    visit(self.feed[name])
                order.append(name)

        for name in tasks:
            visit(name)
        return order

    def head_input(self, task: str, features: torch.Tensor, outputs: dict[str, torch.Tensor],
                   attention_mask: torch.Tensor) -> torch.Tensor:
        if task not in self.feed:
            return features
        dist = F.softmax(outputs[self.feed[task]].float(), dim=-1).to(features.dtype)
        if dist.dim() == 3 and features.dim() == 2:  # token distribution -> one per sequence
            mask = attention_mask.unsqueeze(-1).to(dist.dtype)
            dist = (dist * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        elif dist.dim() == 2 and features.dim() == 3:  # sequence distribution -> every token
            dist = dist.unsqueeze(1).expand(-1, features.shape[1], -1)
        return self.projections[task](torch.cat([features, dist], dim=-1))

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        """The encoder layers up to the one ``task`` reads, and (through ``feed``) those of every
        task it reads from, with their projections."""
        params: list[nn.Parameter] = []
        for name in self.required_tasks([task]):
            params += used_parameters(self.encoder, self.layer_of[name])
            if name in self.projections:
                params += list(self.projections[name].parameters())
        return list({id(p): p for p in params}.values())


def _identity_projection(hidden: int, extra: int) -> nn.Linear:
    projection = nn.Linear(hidden + extra, hidden)
    with torch.no_grad():
        projection.weight.zero_()
        projection.weight[:, :hidden].copy_(torch.eye(hidden))
        projection.bias.zero_()
    return projection
