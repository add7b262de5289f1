"""``weighting: auto_lambda`` (issue 26, item 6): task weights learned by a one-step look-ahead
on dev batches. The weight of a task whose train step lowers the dev loss rises, that of a task
whose step raises it falls; the method is registered, stateful and resumes bit-exact."""

from __future__ import annotations

import copy

import pytest
import torch
from toy import resume_matches_unbroken, toy_config
from torch.nn import functional as F

import polytask.weighting  # noqa: F401 - registers every method
from polytask.api import list_members
from polytask.config import WeightingConfig, parse_config
from polytask.data.batches import GroupStream, collate
from polytask.errors import ConfigError
from polytask.training.setup import prepare
from polytask.training.trainer import train
from polytask.weighting.base import build_balancer
from polytask.weighting.dev_objective import DevObjective


def auto_lambda(tasks: list[str], **options):
    return build_balancer(WeightingConfig(name="auto_lambda", options=options), tasks)


def test_weight_moves_to_the_task_whose_step_lowers_the_dev_loss():
    """theta in R^2, dev loss (theta_x - 1)^2: "good" pulls theta to (1, 0), "neutral" along the
    other axis (its step leaves the dev loss unchanged), "bad" pushes theta to (-1, 0)."""
    theta = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    balancer = auto_lambda(["good", "neutral", "bad"], lr=1.0, alpha=0.1, normalize=False)
    balancer.use_objective({"theta": theta}, lambda params, draw: (params["theta"][0] - 1) ** 2)
    losses = {"good": ((theta - torch.tensor([1.0, 0.0])) ** 2).sum(),
              "neutral": ((theta - torch.tensor([0.0, 1.0])) ** 2).sum(),
              "bad": ((theta + torch.tensor([1.0, 0.0])) ** 2).sum()}
    logs = balancer.backward(losses, [theta])
    # theta' = theta - 0.1 * (sum of the three gradients) = (0, 0.2); dev gradient there (-2, 0);
    # d L_dev / d w_i = -0.1 * (-2, 0) . grad_i = -0.4, 0, +0.4.
    assert logs["auto_lambda/meta_grad/good"] == pytest.approx(-0.4)
    assert logs["auto_lambda/meta_grad/neutral"] == pytest.approx(0.0)
    assert logs["auto_lambda/meta_grad/bad"] == pytest.approx(0.4)
    assert balancer.lambdas.tolist() == pytest.approx([1.4, 1.0, 0.6])
    assert logs["weight/good"] == pytest.approx(1.4)  # the training step uses the new weights
    assert theta.grad.tolist() == pytest.approx([1.4 * -2 + 0.6 * 2, -2.0])


def test_normalized_steps_move_the_most_affected_weight_by_lr():
    """The same case with the default ``normalize``: the step is meta_grad / max|meta_grad|."""
    theta = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    balancer = auto_lambda(["good", "neutral", "bad"], lr=0.01, alpha=0.1)
    balancer.use_objective({"theta": theta}, lambda params, draw: (params["theta"][0] - 1) ** 2)
    losses = {"good": ((theta - torch.tensor([1.0, 0.0])) ** 2).sum(),
              "neutral": ((theta - torch.tensor([0.0, 1.0])) ** 2).sum(),
              "bad": ((theta + torch.tensor([1.0, 0.0])) ** 2).sum()}
    balancer.backward(losses, [theta])
    assert balancer.lambdas.tolist() == pytest.approx([1.01, 1.0, 0.99])


def test_on_the_tiny_model_the_opposing_task_loses_weight(tmp_path, tiny_encoder):
    """The color head on [CLS], and a task built to oppose it (the negated color loss); the dev
    objective is the color loss on the same examples (so the color step surely lowers it)."""
    prepared = prepare(parse_config(toy_config(tmp_path, tiny_encoder, ["classification"])), ("train", "dev"))
    model = prepared.model
    features = prepared.features["train"]["toy"]
    indices = GroupStream("toy", features, 16, 0, False).next_indices()
    batch = collate([features[i] for i in indices], prepared.groups["toy"], model.tokenizer.pad_token_id)
    balancer = auto_lambda(["color", "anti"], alpha=1e-2)
    dev = {"toy": (prepared.groups["toy"], [features[i] for i in indices])}
    balancer.use_objective(dict(model.named_parameters()), DevObjective(model, dev, 16, ["color"]))
    model.eval()  # no dropout: the dev pass (eval mode) sees the same function
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])["color"]
    color = F.cross_entropy(logits, batch["targets"]["color"])
    balancer.backward({"color": color, "anti": -color}, model.shared_parameters())
    assert balancer.lambdas[0] > 1.0 > balancer.lambdas[1], balancer.lambdas


def test_it_is_listed_and_its_options_are_checked():
    assert "auto_lambda" in list_members()["weighting"]
    with pytest.raises(ConfigError, match="options.primary"):
        auto_lambda(["a", "b"], primary=["c"])
    with pytest.raises(ConfigError, match="options.update_every"):
        auto_lambda(["a", "b"], update_every=0)
    with pytest.raises(ConfigError, match="unknown option"):
        auto_lambda(["a", "b"], beta=1.0)


def test_a_run_without_dev_data_is_refused(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=2)
    del raw["datasets"]["toy"]["dev"]
    raw["weighting"] = {"name": "auto_lambda"}
    with pytest.raises(ConfigError, match="dev"):
        train(parse_config(raw))


def test_dev_batches_are_a_function_of_the_draw(tmp_path, tiny_encoder):
    prepared = prepare(parse_config(toy_config(tmp_path, tiny_encoder, ["classification"])), ("train", "dev"))
    objective = DevObjective(prepared.model, prepared.split("dev"), 8, [])
    first = [objective.batch(d)[0]["input_ids"] for d in range(5)]
    again = DevObjective(prepared.model, prepared.split("dev"), 8, [])
    assert all(torch.equal(x, again.batch(d)[0]["input_ids"]) for d, x in enumerate(first))
    assert not torch.equal(first[0], first[1])  # 32 dev rows: four different batches per pass


def test_auto_lambda_resumes_bit_exact(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=6,
                     eval_every=1, checkpoint_every=3, num_threads=1)
    raw["weighting"] = {"name": "auto_lambda", "options": {"lr": 0.1, "dev_batch_size": 8}}
    unbroken, _ = resume_matches_unbroken(tmp_path, raw)
    log = (unbroken / "metrics.jsonl").read_text()
    assert '"weight/color": 1.0,' not in log  # the weights did move (state to restore)
