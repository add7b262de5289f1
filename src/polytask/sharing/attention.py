"""Task-specific attention over shared features (after MTAN, Liu et al., 2019, and ELMo's
scalar mix, Peters et al., 2018).

The shared encoder runs once; every task then builds its own view of ALL its layers:

    features_t = gamma_t * sum_l softmax(s_t)_l * (h_l ⊙ sigmoid(W_{t,l} h_l + b_{t,l}))

a per-task sigmoid gate on each layer's hidden states (MTAN's attention masks, here one
linear map per layer and task) and a per-task softmax over layers. Sequence tasks then pool
with their own attention over tokens (``softmax_i(v_t · x_i)`` over real tokens), which
replaces ``model.pooling``. Gates start nearly open (bias 4, sigmoid ≈ 0.98), the layer mix
uniform (as ELMo) and the pooling uniform (a mean), so training starts from a plain layer
average. No options.

The shared features are the stacked hidden states [L+1, B, T, H].
"""

from __future__ import annotations

import torch
from torch import nn

from polytask.config import SharingConfig
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing
from polytask.sharing.usage import used_parameters

OPEN_GATE_BIAS = 4.0


class TaskAttention(nn.Module):
    """One task's gates, layer mix and (sequence tasks) attention pooling."""

    def __init__(self, hidden: int, states: int, pools: bool) -> None:
        super().__init__()
        self.gates = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(states))
        for gate in self.gates:
            nn.init.zeros_(gate.weight)
            nn.init.constant_(gate.bias, OPEN_GATE_BIAS)
        self.mix = nn.Parameter(torch.zeros(states))
        self.gamma = nn.Parameter(torch.ones(()))
        self.pool_query = nn.Linear(hidden, 1, bias=False) if pools else None
        if self.pool_query is not None:
            nn.init.zeros_(self.pool_query.weight)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        gated = torch.stack([h * torch.sigmoid(gate(h)) for gate, h in zip(self.gates, stacked)])
        weights = torch.softmax(self.mix.float(), 0).to(gated.dtype)
        return self.gamma * torch.einsum("l,l...->...", weights, gated)

    def pool(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.pool_query(features).squeeze(-1).float()
        scores = scores.masked_fill(attention_mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=1).to(features.dtype)
        return torch.einsum("bt,bth->bh", weights, features)


@SHARINGS.register("attention")
class TaskAttentionSharing(Sharing):
    defaults = {}

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        hidden, states = encoder.config.hidden_size, encoder.config.num_hidden_layers + 1
        self.attention = nn.ModuleDict(
            {t.name: TaskAttention(hidden, states, t.level == "sequence") for t in tasks})

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        states = self.encoder(**inputs, output_hidden_states=True).hidden_states
        stacked = torch.stack(states)
        out = SharedOutput({}, shared=stacked, hidden_states=states)
        for name in tasks:
            module = self.attention[name]
            out.per_task[name] = module(stacked)
            if module.pool_query is not None:
                out.pooled[name] = module.pool(out.per_task[name], inputs["attention_mask"])
        return out

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        return used_parameters(self.encoder) + list(self.attention[task].parameters())
