"""Nash-MTL's solver state survives a checkpoint: the JSON round trip of its extra state."""

from __future__ import annotations

import json

import torch

import polytask.weighting  # noqa: F401 - registers every method
from polytask.config import WeightingConfig
from polytask.weighting.base import build_balancer

NAMES = ["a", "b", "c"]
# Re-solving every other step makes the step counter part of the state: a balancer that lost it
# would solve on a step where the original reuses its previous weights.
CONFIG = WeightingConfig(name="nash_mtl", options={"update_weights_every": 2})


def matrices(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(len(NAMES), 7, generator=generator) for _ in range(count)]


def test_nash_mtl_resumes_with_the_weights_and_step_of_the_original():
    first, *later = matrices(6)
    original = build_balancer(CONFIG, NAMES)
    for matrix in (first, *later[:2]):
        original.weigh(NAMES, matrix)
    state = json.loads(json.dumps(original.extra_state_dict()))  # as state.json stores it
    resumed = build_balancer(CONFIG, NAMES)
    resumed.load_extra_state_dict(state)
    fresh = build_balancer(CONFIG, NAMES)

    reused = original.weigh(NAMES, later[2])  # step 4 reuses the weights solved at step 3
    assert torch.equal(resumed.weigh(NAMES, later[2]), reused)
    assert not torch.allclose(fresh.weigh(NAMES, later[2]), reused)  # a fresh one solves
    for matrix in later[3:]:  # steps that solve again, warm-started from the saved weights
        assert torch.equal(resumed.weigh(NAMES, matrix), original.weigh(NAMES, matrix))
    assert resumed.aggregator.weighting.step == original.aggregator.weighting.step == 6


def test_nash_mtl_without_state_starts_fresh():
    balancer = build_balancer(CONFIG, NAMES)
    balancer.load_extra_state_dict({})  # a checkpoint written before any step
    assert balancer.aggregator.weighting.step == 0
    assert balancer.weigh(NAMES, matrices(1)[0]).shape == (len(NAMES),)
