"""Samplers hit their target proportions, are pure functions of (seed, step), and resume."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polytask.config import SamplerConfig
from polytask.errors import ConfigError
from polytask.sampling.samplers import (
    SAMPLERS,
    Annealed,
    Proportional,
    RoundRobin,
    TaskSampler,
    Temperature,
    build_sampler,
)

DRAWS = 20_000
TOLERANCE = 0.02
NAMES = ["proportional", "temperature", "uniform", "round_robin", "annealed"]

group_sizes = st.lists(st.integers(1, 50_000), min_size=1, max_size=5).map(
    lambda sizes: {f"g{i}": n for i, n in enumerate(sizes)}
)
seeds = st.integers(-(2**40), 2**40)


def make(name: str, groups: dict[str, int], seed: int = 0, total_steps: int = DRAWS,
         temperature: float = 2.0) -> TaskSampler:
    return build_sampler(SamplerConfig(name=name, temperature=temperature), groups, seed, total_steps)


def sequence(sampler: TaskSampler, start: int, stop: int) -> list[str]:
    return [sampler.next_group(step) for step in range(start, stop)]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=3, deadline=None)
@given(groups=group_sizes, seed=seeds)
def test_empirical_frequencies_match_probabilities(name, groups, seed):
    sampler = make(name, groups, seed)
    counts = Counter(sequence(sampler, 0, DRAWS))
    # Where probabilities change with the step, the target is their mean over the run; annealed
    # ones change smoothly, so every 10th step estimates that mean well enough.
    stride = {"annealed": 10, "round_robin": 1}.get(name, DRAWS)
    steps = range(0, DRAWS, stride)
    expected = {g: np.mean([sampler.probabilities(s)[g] for s in steps]) for g in groups}
    for group in groups:
        assert abs(counts[group] / DRAWS - expected[group]) < TOLERANCE, (group, counts, expected)


@pytest.mark.parametrize("name", NAMES)
@given(groups=group_sizes, step=st.integers(0, 10**9))
def test_probabilities_sum_to_one_in_group_order(name, groups, step):
    probs = make(name, groups).probabilities(step)
    assert list(probs) == list(groups)
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-9)
    assert all(0.0 <= p <= 1.0 for p in probs.values())


@given(groups=group_sizes, step=st.integers(0, 1000))
def test_temperature_one_is_proportional(groups, step):
    hot = make("temperature", groups, temperature=1.0).probabilities(step)
    proportional = make("proportional", groups).probabilities(step)
    total = sum(groups.values())
    for group, n in groups.items():
        assert math.isclose(hot[group], proportional[group], rel_tol=1e-9)
        assert math.isclose(proportional[group], n / total, rel_tol=1e-9)


@given(groups=group_sizes)
def test_large_temperature_approaches_uniform(groups):
    probs = make("temperature", groups, temperature=1e6).probabilities(0)
    for p in probs.values():
        assert abs(p - 1 / len(groups)) < 1e-3


def test_temperature_between_proportional_and_uniform():
    groups = {"big": 9000, "small": 1000}
    share = [make("temperature", groups, temperature=t).probabilities(0)["small"] for t in (1, 2, 5)]
    assert 0.1 == pytest.approx(share[0]) and share[0] < share[1] < share[2] < 0.5
    assert share[1] == pytest.approx(1 / (1 + 3))  # sqrt(9000) / sqrt(1000) = 3


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None)
@given(groups=group_sizes, seed=seeds, k=st.integers(0, 300))
def test_resumed_sequence_is_tail_of_full_sequence(name, groups, seed, k):
    full = sequence(make(name, groups, seed, total_steps=400), 0, 400)
    # A fresh sampler stands for a restarted process: nothing carries over but the seed.
    assert sequence(make(name, groups, seed, total_steps=400), k, 400) == full[k:]


@pytest.mark.parametrize("name", ["proportional", "temperature", "uniform", "annealed"])
def test_same_seed_same_sequence_other_seed_differs(name):
    groups = {"a": 100, "b": 100, "c": 100}
    first = sequence(make(name, groups, seed=7), 0, 500)
    assert sequence(make(name, groups, seed=7), 0, 500) == first
    assert sequence(make(name, groups, seed=8), 0, 500) != first


def test_round_robin_cycles_groups_in_order():
    sampler = make("round_robin", {"x": 5, "y": 1000, "z": 1}, seed=3)
    assert isinstance(sampler, RoundRobin)
    assert sequence(sampler, 0, 7) == ["x", "y", "z", "x", "y", "z", "x"]
    assert sampler.probabilities(4) == {"x": 0.0, "y": 1.0, "z": 0.0}


def test_annealed_alpha_endpoints():
    groups = {"big": 8000, "small": 125}
    sampler = make("annealed", groups, total_steps=101)
    assert isinstance(sampler, Annealed)
    assert sampler.alpha(0) == pytest.approx(1.0)
    assert sampler.alpha(50) == pytest.approx(0.6)
    assert sampler.alpha(100) == pytest.approx(0.2)
    assert sampler.alpha(10_000) == pytest.approx(0.2)  # past the end: stays at the floor
    assert sampler.probabilities(0) == pytest.approx(make("proportional", groups).probabilities(0))
    # alpha = 0.2: 8000^0.2 = 6.06..., 125^0.2 = 2.63...; ratio (8000/125)^0.2 = 64^0.2
    last = sampler.probabilities(100)
    assert last["big"] / last["small"] == pytest.approx(64**0.2)


def test_annealed_single_step_run_is_defined():
    sampler = make("annealed", {"a": 10, "b": 20}, total_steps=1)
    assert sampler.alpha(0) == pytest.approx(1.0)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    groups = {"a": 300, "b": 20, "c": 1}
    saved = make(name, groups, seed=11)
    state = saved.state_dict()
    assert state == {"name": name, "seed": 11}
    restored = make(name, groups, seed=999)
    restored.load_state_dict(state)
    assert sequence(restored, 50, 250) == sequence(saved, 50, 250)


def test_load_state_dict_rejects_other_sampler():
    sampler = make("uniform", {"a": 1})
    with pytest.raises(ValueError, match="proportional"):
        sampler.load_state_dict(make("proportional", {"a": 1}).state_dict())


def test_unknown_sampler_name_raises_config_error():
    with pytest.raises(ConfigError, match="temperature"):
        make("temprature", {"a": 1})


def test_registry_holds_every_sampler():
    assert set(NAMES) <= set(SAMPLERS.names())
    assert isinstance(make("proportional", {"a": 1}), Proportional)
    assert isinstance(make("temperature", {"a": 1}), Temperature)


@pytest.mark.parametrize("groups", [{}, {"a": 10, "empty": 0}])
def test_bad_groups_raise_config_error(groups):
    with pytest.raises(ConfigError):
        make("uniform", groups)


def test_negative_step_is_rejected():
    with pytest.raises(ValueError, match="step"):
        make("proportional", {"a": 1}).next_group(-1)
