"""Loss-weighting methods: closed forms, weights that sum as documented, state that survives
a checkpoint, and the backward plumbing shared by the gradient methods."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import polytask.weighting  # noqa: F401 - registers every method
from polytask.config import WeightingConfig
from polytask.weighting.base import BALANCERS, build_balancer
from polytask.weighting.dwa import dwa_weights
from polytask.weighting.famo import famo_objective
from polytask.weighting.gradient import GradientBalancer
from polytask.weighting.uncertainty import uncertainty_objective
from polytask.weighting.validation_adaptive import adaptive_weights

TASKS = ["a", "b"]
positive = st.floats(0.01, 100.0)


class TwoHeads(nn.Module):
    """A shared linear 'encoder' and one head per task, like MultiTaskModel in miniature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(3, 4)
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 1)})

    def losses(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = torch.arange(15.0).reshape(5, 3) / 10
        features = self.encoder(x)
        return {"a": self.heads["a"](features).pow(2).mean(),
                "b": (self.heads["b"](features) + 3).pow(2).mean()}, features


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def run(name: str, **config) -> tuple[TwoHeads, dict[str, float]]:
    model = TwoHeads()
    losses, features = model.losses()
    balancer = build_balancer(WeightingConfig(name=name, **config), TASKS)
    logs = balancer.backward(losses, list(model.encoder.parameters()), features)
    return model, logs


def test_equal_gives_the_gradients_of_the_plain_sum():
    model, logs = run("equal")
    reference = TwoHeads()
    losses, _ = reference.losses()
    sum(losses.values()).backward()
    assert grads(model).keys() == grads(reference).keys()
    for key, value in grads(reference).items():
        torch.testing.assert_close(grads(model)[key], value)
    assert logs == {"weight/a": 1.0, "weight/b": 1.0}


@pytest.mark.parametrize("gradients_on", ["features", "parameters"])
def test_gradient_plumbing_heads_get_their_own_gradient_encoder_the_weighted_one(gradients_on):
    model, logs = run("mgda", gradients_on=gradients_on)
    reference = TwoHeads()
    losses, _ = reference.losses()
    weights = torch.tensor([logs["weight/a"], logs["weight/b"]])
    per_task = [torch.autograd.grad(loss, list(reference.parameters()), retain_graph=True, allow_unused=True)
                for loss in losses.values()]
    names = [n for n, _ in reference.named_parameters()]
    for k, name in enumerate(names):
        got = dict(model.named_parameters())[name].grad
        if name.startswith("heads."):
            task = name.split(".")[1]
            torch.testing.assert_close(got, per_task[TASKS.index(task)][k])
        else:
            expected = sum(w * g[k] for w, g in zip(weights, per_task))
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert "cosine/a|b" in logs and -1 <= logs["cosine/a|b"] <= 1


@given(losses=st.lists(positive, min_size=1, max_size=4), data=st.data())
@settings(max_examples=50, deadline=None)
def test_uncertainty_loss_is_its_closed_form(losses, data):
    log_vars = data.draw(st.lists(st.floats(-3, 3), min_size=len(losses), max_size=len(losses)))
    value = uncertainty_objective(torch.tensor(losses, dtype=torch.float64),
                                  torch.tensor(log_vars, dtype=torch.float64))
    expected = sum(math.exp(-s) * loss + s for loss, s in zip(losses, log_vars))
    assert float(value) == pytest.approx(expected, rel=1e-12)


def test_uncertainty_learns_log_variances_as_parameters():
    _, logs = run("uncertainty", options={"init": 0.5})
    balancer = build_balancer(WeightingConfig(name="uncertainty", options={"init": 0.5}), TASKS)
    assert [n for n, _ in balancer.named_parameters()] == ["log_vars"]
    assert logs["weight/a"] == pytest.approx(math.exp(-0.5))


@given(losses=st.lists(positive, min_size=1, max_size=5), data=st.data())
@settings(max_examples=50, deadline=None)
def test_famo_coefficients_are_positive_and_sum_to_one(losses, data):
    logits = torch.tensor(data.draw(st.lists(st.floats(-5, 5), min_size=len(losses), max_size=len(losses))))
    values = torch.tensor(losses, requires_grad=True)
    objective, coefficients = famo_objective(values, logits)
    assert bool((coefficients > 0).all()) and float(coefficients.sum()) == pytest.approx(1.0, rel=1e-5)
    objective.backward()  # the coefficients are what the gradient of each loss is scaled by
    torch.testing.assert_close(values.grad, coefficients)


def test_famo_raises_the_weight_of_the_task_whose_loss_falls_slower():
    balancer = build_balancer(WeightingConfig(name="famo", options={"lr": 0.1}), TASKS)
    for a, b in [(1.0, 1.0), (0.5, 0.99), (0.25, 0.98)]:  # task a falls fast, b slowly
        losses = {"a": torch.tensor(a, requires_grad=True), "b": torch.tensor(b, requires_grad=True)}
        balancer.backward(losses, [])
    assert balancer.logits[1] > balancer.logits[0]
    assert set(balancer.state_dict()) == {"logits", "exp_avg", "exp_avg_sq", "adam_steps", "previous"}


@given(older=st.lists(st.floats(0.2, 5.0), min_size=1, max_size=5), data=st.data(),
       temperature=st.floats(1.0, 10.0))
@settings(max_examples=50, deadline=None)
def test_dwa_weights_are_positive_and_sum_to_the_task_count(older, data, temperature):
    # Loss ratios within [1/25, 25]: far beyond those, softmax underflows to an exact 0.
    newer = data.draw(st.lists(st.floats(0.2, 5.0), min_size=len(older), max_size=len(older)))
    weights = dwa_weights(older, newer, temperature)
    assert all(w > 0 for w in weights)
    assert sum(weights) == pytest.approx(len(older))


def test_dwa_uses_the_last_two_windows_and_its_history_survives_json():
    balancer = build_balancer(WeightingConfig(name="dwa", options={"window": 1}), TASKS)
    for a, b in [(1.0, 1.0), (0.5, 1.0)]:
        losses = {"a": torch.tensor(a, requires_grad=True), "b": torch.tensor(b, requires_grad=True)}
        assert balancer.backward(losses, []) == {"weight/a": 1.0, "weight/b": 1.0}
    restored = build_balancer(WeightingConfig(name="dwa", options={"window": 1}), TASKS)
    restored.load_extra_state_dict(json.loads(json.dumps(balancer.extra_state_dict())))
    weights = restored.weights({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    assert weights["b"] > weights["a"] and sum(weights.values()) == pytest.approx(2.0)


def test_rlw_is_deterministic_under_the_seed_and_sums_to_one():
    torch.manual_seed(3)
    _, first = run("rlw")
    torch.manual_seed(3)
    _, second = run("rlw")
    assert first == second and sum(first.values()) == pytest.approx(1.0)


def test_gradnorm_and_db_mtl_keep_their_documented_sums():
    gradnorm = build_balancer(WeightingConfig(name="gradnorm", options={"lr": 0.5}), TASKS)
    model = TwoHeads()
    for _ in range(3):
        losses, features = model.losses()
        gradnorm.backward(losses, [], features)
    assert float(gradnorm.task_weights.sum()) == pytest.approx(2.0)
    assert bool((gradnorm.task_weights > 0).all()) and gradnorm.task_weights[0] != gradnorm.task_weights[1]
    _, logs = run("db_mtl")
    assert min(logs.values()) == pytest.approx(1.0) and max(logs.values()) >= 1.0


def test_validation_adaptive_weights_follow_the_lag_and_are_bounded():
    balancer = build_balancer(WeightingConfig(name="validation_adaptive", options={"max_weight": 1.2}),
                              ["a", "b"])
    balancer.on_evaluation({"a/accuracy": 0.8, "a/macro_f1": 0.1, "b/mse": 1.0}, 1)
    assert balancer.current == {"a": 1.0, "b": 1.0}  # first evaluation: every metric is its best
    balancer.on_evaluation({"a/accuracy": 0.4, "a/macro_f1": 0.9, "b/mse": 0.5}, 2)
    # lag_a = (0.8 - 0.4)/0.8 = 0.5 on accuracy (preferred over macro_f1); b improved: lag 0.
    assert balancer.current["b"] == pytest.approx(2 / (1 + math.exp(0.5)))
    assert balancer.current["a"] == pytest.approx(1.2)  # 2e^0.5/(1 + e^0.5) = 1.245, clipped
    weights = adaptive_weights([0.0, 3.0, -1.0], 1.0, 0.0, 100.0)
    assert sum(weights) == pytest.approx(3.0)


def test_unknown_options_weights_and_gradients_on_are_rejected_with_the_accepted_keys():
    from polytask.errors import ConfigError

    with pytest.raises(ConfigError, match="accepted: gamma, lr"):
        build_balancer(WeightingConfig(name="famo", options={"learning_rate": 1}), TASKS)
    with pytest.raises(ConfigError, match="static"):
        build_balancer(WeightingConfig(name="pcgrad", weights={"a": 2.0}), TASKS)
    with pytest.raises(ConfigError, match="gradients_on"):
        build_balancer(WeightingConfig(name="dwa", gradients_on="features"), TASKS)
    with pytest.raises(ConfigError, match="temperature"):
        build_balancer(WeightingConfig(name="dwa", options={"temperature": 0}), TASKS)
    with pytest.raises(ConfigError, match="targets"):
        build_balancer(WeightingConfig(name="validation_adaptive", options={"targets": {"x": 1}}), TASKS)


def test_every_method_that_takes_gradients_declares_fp16_unsupported():
    for name in BALANCERS.names():
        member = BALANCERS.get(name)
        if issubclass(member, GradientBalancer) or name in ("gradnorm", "db_mtl", "mgda_ub"):
            assert member.supports_fp16 is False, name
        else:
            assert member.supports_fp16 is True, name
