"""fp16 with a gradient scaler (torch.amp.GradScaler, on CPU here): loss-weighting methods train
through it, their own parameters get correctly unscaled gradients, its state is checkpointed;
gradient methods stay rejected."""

from __future__ import annotations

import json

import pytest
import torch
from toy import toy_config

from polytask.config import WeightingConfig, parse_config
from polytask.errors import ConfigError
from polytask.training.checkpoint import checkpoints
from polytask.training.trainer import check_combination, train
from polytask.weighting.base import build_balancer


def fp16_supported() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.Linear(2, 2)(torch.ones(1, 2))
        torch.amp.GradScaler("cpu")
        return True
    except (RuntimeError, TypeError, AssertionError):
        return False


pytestmark = pytest.mark.skipif(not fp16_supported(), reason="this torch has no fp16 autocast/GradScaler on CPU")


@pytest.mark.parametrize("method", ["equal", "uncertainty", "famo"])
def test_scaled_backward_gives_the_unscaled_gradients(method):
    """Balancer.run_backward multiplies by the scale; unscale_ divides it out again, including
    for the balancer's own parameters (uncertainty's log-variances)."""
    torch.manual_seed(0)
    grads = []
    for scale in (None, 1024.0):
        balancer = build_balancer(WeightingConfig(name=method), ["a", "b"])
        torch.manual_seed(0)
        layer = torch.nn.Linear(3, 2)
        params = [*layer.parameters(), *balancer.parameters()]
        optimizer = torch.optim.SGD(params, lr=0.1)
        if scale is not None:
            balancer.grad_scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        out = layer(torch.ones(4, 3))
        balancer.backward({"a": out[:, 0].pow(2).mean(), "b": out[:, 1].abs().mean()}, list(layer.parameters()))
        if scale is not None:
            raw = layer.weight.grad.clone()
            balancer.grad_scaler.unscale_(optimizer)
            assert torch.allclose(raw, layer.weight.grad * scale)
        grads.append([p.grad.clone() for p in params if p.grad is not None])
    assert len(grads[0]) == len(grads[1])
    for plain, unscaled in zip(*grads):
        torch.testing.assert_close(plain, unscaled)


def test_fp16_training_with_scaler_runs_and_checkpoints_the_scale(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=6, eval_every=3,
                     precision="fp16", device="cpu")
    raw["weighting"] = "uncertainty"
    results = train(parse_config(raw))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    dev = [x for x in lines if x["split"] == "dev"]
    assert all(x["amp/scale"] > 0 for x in dev) and "weight/color" in dev[0]
    assert 0 <= results["test"]["color/accuracy"] <= 1
    state = torch.load(checkpoints(tmp_path / "run" / "checkpoints")[-1] / "state.pt", weights_only=True)
    # The scale after the last step: unchanged, or halved if that step overflowed.
    assert state["grad_scaler"]["scale"] in (dev[-1]["amp/scale"], dev[-1]["amp/scale"] / 2)
    resumed = train(parse_config({**raw, "train": {**raw["train"], "max_steps": 6}}), resume=True)
    assert resumed["test"] == results["test"]  # nothing left to train: same best model


def test_fp16_still_rejected_for_gradient_methods(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], precision="fp16")
    raw["weighting"] = "upgrad"
    with pytest.raises(ConfigError, match="fp16"):
        check_combination(parse_config(raw))
