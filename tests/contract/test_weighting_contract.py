"""Every registered weighting method trains through the real loop, checkpoints, resumes
bit-identically and leaves a loadable model — with both ``gradients_on`` settings where the
method takes gradients."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from toy import toy_config

import polytask.weighting  # noqa: F401 - registers every method
from polytask.config import parse_config
from polytask.errors import ConfigError
from polytask.models.multitask import MultiTaskModel
from polytask.training.trainer import train
from polytask.weighting.base import BALANCERS, build_balancer
from polytask.weighting.gradient import GradientBalancer

TASKS = ["classification", "regression"]  # tasks "color" and "size"
FINAL = "step-00000006"
# Options that make a method's state matter within six steps (its defaults would keep it idle):
# with a target, validation-adaptive weights move from the first evaluation on.
OPTIONS = {"validation_adaptive": {"targets": {"color": 1.0}}}


def cases() -> list[tuple[str, str | None]]:
    out = []
    for name in BALANCERS.names():
        if BALANCERS.get(name).supports_fp16:  # takes no gradients
            out.append((name, None))
        else:
            out += [(name, "features"), (name, "parameters")]
    return out


def raw_config(folder, encoder, name: str, gradients_on: str | None) -> dict:
    # Evaluating every step lets evaluation-driven state (DWA windows, validation-adaptive
    # weights) change before the step-3 checkpoint, so resume has state to restore.
    raw = toy_config(folder, encoder, TASKS, max_steps=6, eval_every=1, checkpoint_every=3,
                     num_threads=1)
    raw["weighting"] = {"name": name, **({"gradients_on": gradients_on} if gradients_on else {})}
    if name in OPTIONS:
        raw["weighting"]["options"] = OPTIONS[name]
    if name == "static":
        raw["weighting"]["weights"] = {"color": 2.0}
    return raw


def buildable(raw: dict) -> None:
    """Skip a setting that the method rejects at construction, checking the error says why. A
    missing optional dependency is a failure, not a skip: ``polytask[all]`` brings every one."""
    config = parse_config(raw)
    try:
        build_balancer(config.weighting, ["color", "size"])
    except ConfigError as exc:
        message = str(exc)
        assert "gradients_on" in message, message
        pytest.skip(f"rejected at start-up as documented: {message}")


@pytest.mark.parametrize("name,gradients_on", cases())
def test_method_trains_resumes_bit_exact_and_saves(tmp_path, tiny_encoder, name, gradients_on):
    raw = raw_config(tmp_path, tiny_encoder, name, gradients_on)
    buildable(raw)
    unbroken = tmp_path / "run"
    train(parse_config(raw))

    # A crash after the step-3 checkpoint: the same directory without the final checkpoint.
    crashed = tmp_path / "crashed"
    shutil.copytree(unbroken, crashed)
    shutil.rmtree(crashed / "checkpoints" / FINAL)
    raw["train"]["output_dir"] = str(crashed)
    train(parse_config(raw), resume=True)

    expected = load_file(str(unbroken / "checkpoints" / FINAL / "model.safetensors"))
    actual = load_file(str(crashed / "checkpoints" / FINAL / "model.safetensors"))
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    log = lambda run: (run / "metrics.jsonl").read_text()  # noqa: E731
    assert log(unbroken) == log(crashed)

    lines = [json.loads(line) for line in log(unbroken).splitlines() if '"dev"' in line]
    assert {"weight/color", "weight/size"} <= set(lines[-1])
    if issubclass(BALANCERS.get(name), GradientBalancer):
        assert "cosine/color|size" in lines[-1]
    model = MultiTaskModel.from_pretrained(crashed / "model")
    assert set(model.tasks) == {"color", "size"}
