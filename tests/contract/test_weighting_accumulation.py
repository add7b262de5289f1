"""Gradient accumulation (``train.grad_accum: 2``, batch 8) against the doubled batch (16) with
every stateful weighting method and gradient methods on both ``gradients_on`` settings.

Both runs see the same 16 rows per optimizer step, in the real ``train_step``, with dropout off,
SGD and no clipping, so the parameters after three steps show the update itself. Where the
method allows it (its weights do not depend on the micro-batch) the two runs must agree; the
others combine or update per micro-batch (docs/weighting.md, "Gradient accumulation"), and must
still make an update of the doubled batch's size, not ``grad_accum`` times it."""

from __future__ import annotations

import shutil

import pytest
import torch
from toy import toy_config
from torch import nn
from transformers import BertConfig

import polytask.weighting  # noqa: F401 - registers every method
from polytask.config import parse_config
from polytask.sampling.samplers import build_sampler
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.training.setup import prepare
from polytask.training.trainer import Run, train_step
from polytask.weighting.base import build_balancer

STEPS = 3
# Fake dev metrics, one per step, so evaluation-driven state (DWA windows, validation-adaptive
# weights) moves; both runs get the same.
METRICS = [{"color/accuracy": a, "size/mse": m} for a, m in ((0.4, 2.0), (0.5, 1.5), (0.45, 1.8))]
SAME = [("equal", None), ("static", None), ("uncertainty", None), ("dwa", None),
        ("validation_adaptive", None)]
PER_MICRO_BATCH = [("famo", None), ("gradnorm", "features"), ("db_mtl", "features"),
                   ("mgda_ub", "features"), ("gradvac", "features"), ("nash_mtl", "features"),
                   ("pcgrad", "features"), ("pcgrad", "parameters"), ("upgrad", "features"),
                   ("upgrad", "parameters"), ("auto_lambda", None)]
OPTIONS = {"validation_adaptive": {"targets": {"color": 0.9}}, "famo": {"lr": 0.5}, "nash_mtl": {"max_norm": 0.0},
           "auto_lambda": {"lr": 0.1, "dev_batch_size": 8}}


class FixedStream:
    """Rows [size·k, size·(k+1)) at the k-th draw: micro-batches of 8 cover the doubled batch."""

    def __init__(self, features: list, size: int) -> None:
        self.features, self.size, self.draws = features, size, 0

    def next_indices(self) -> list[int]:
        start, self.draws = self.size * self.draws, self.draws + 1
        return list(range(start, start + self.size))


@pytest.fixture(scope="module")
def still_encoder(tiny_encoder, tmp_path_factory):
    """The tiny encoder without dropout: two passes of 8 rows then equal one pass of 16."""
    folder = tmp_path_factory.mktemp("still-bert")
    shutil.copytree(tiny_encoder, folder, dirs_exist_ok=True)
    config = BertConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(folder)
    return folder


def snapshot(prepared, balancer) -> dict:
    state = {f"model.{k}": v.clone() for k, v in prepared.model.state_dict().items()}
    return {**state, **{f"balancer.{k}": v.clone() for k, v in balancer.state_dict().items()}}


def trained(folder, encoder, name: str, gradients_on: str | None, batch: int,
            accum: int) -> tuple[dict, dict, dict]:
    """(state before, state after STEPS optimizer steps, the balancer's extra state); a state
    holds the model's and the balancer's parameters and buffers."""
    folder.mkdir()
    raw = toy_config(folder, encoder, ["classification", "regression"], batch_size=batch,
                     grad_accum=accum, optimizer="sgd", lr=0.2, max_grad_norm=None,
                     schedule="constant")
    raw["model"]["head_dropout"] = 0.0
    raw["weighting"] = {"name": name, "options": OPTIONS.get(name, {}),
                        **({"gradients_on": gradients_on} if gradients_on else {})}
    if name == "static":
        raw["weighting"] = {"name": name, "weights": {"color": 2.0}}
    config = parse_config(raw)
    prepared = prepare(config, splits=("train", "dev"))
    assert not any(m.p for m in prepared.model.modules() if isinstance(m, nn.Dropout))
    (group, features), = prepared.features["train"].items()
    run = Run(prepared, folder / "unused", torch.device("cpu"), {group: FixedStream(features, batch)},
              STEPS, STEPS)
    sampler = build_sampler(config.sampler, {group: len(features)}, 0, STEPS)
    balancer = build_balancer(config.weighting, ["color", "size"])
    balancer.attach(prepared.model, prepared.split("dev"))  # as the trainer does
    optimizer = build_optimizer(prepared.model, balancer, config.train)
    scheduler = build_scheduler(optimizer, config.train, STEPS)
    before = snapshot(prepared, balancer)
    torch.manual_seed(0)  # rlw's draws
    for metrics in METRICS:
        train_step(run, sampler, balancer, optimizer, scheduler)
        run.state.step += 1
        balancer.on_evaluation(metrics, run.state.step)
    return before, snapshot(prepared, balancer), balancer.extra_state_dict()


def update_norm(after: dict, before: dict) -> float:
    return sum(float((after[k] - before[k]).norm() ** 2) for k in after
               if k.startswith("model.") and after[k].is_floating_point()) ** 0.5


@pytest.mark.parametrize("name,gradients_on", SAME)
def test_accumulation_equals_the_doubled_batch(tmp_path, still_encoder, name, gradients_on):
    _, accumulated, extra = trained(tmp_path / "accum", still_encoder, name, gradients_on, 8, 2)
    _, doubled, doubled_extra = trained(tmp_path / "doubled", still_encoder, name, gradients_on, 16, 1)
    assert doubled.keys() == accumulated.keys()
    for key in doubled:
        torch.testing.assert_close(accumulated[key], doubled[key], rtol=1e-4, atol=1e-6, msg=key)
    if name == "dwa":  # window averages of micro-batch losses: their ratios match
        assert len(extra["history"]) == len(doubled_extra["history"]) == 2


@pytest.mark.parametrize("name,gradients_on", PER_MICRO_BATCH)
def test_per_micro_batch_methods_keep_the_update_size(tmp_path, still_encoder, name, gradients_on):
    start, accumulated, _ = trained(tmp_path / "accum", still_encoder, name, gradients_on, 8, 2)
    _, doubled, _ = trained(tmp_path / "doubled", still_encoder, name, gradients_on, 16, 1)
    # Not the doubled batch's update (docs/weighting.md says why for each)...
    assert any(not torch.allclose(accumulated[k], doubled[k], rtol=1e-4, atol=1e-6)
               for k in doubled if k.startswith("model."))
    # ...but one of its size: a method whose update ignores the loss scale (log-losses,
    # Nash-MTL's bargaining) would otherwise take grad_accum full steps per optimizer step.
    ratio = update_norm(accumulated, start) / update_norm(doubled, start)
    assert 0.67 < ratio < 1.5, ratio
