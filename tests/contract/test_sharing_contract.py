"""Every registered sharing strategy trains through the real loop with each task level, saves,
loads with MultiTaskModel.from_pretrained and predicts exactly what it predicted in memory;
and works with a gradient-aggregation method (on the features where it has shared ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from toy import toy_config
from typer.testing import CliRunner

import polytask.sharing  # noqa: F401 - registers every strategy
from polytask.cli import app
from polytask.config import load_config, parse_config
from polytask.data.batches import collate
from polytask.data.features import build_features
from polytask.data.records import Record
from polytask.errors import ConfigError
from polytask.models.multitask import MultiTaskModel
from polytask.sharing.base import SHARINGS
from polytask.training.setup import prepare
from polytask.training.trainer import check_combination, train

LEVELS = ["classification", "token_classification"]  # tasks "color" and "tags"
# Options that make a strategy do what it is for on the toy tasks.
OPTIONS = {
    "hard": {"freeze_layers": 1},
    "soft": {"lambda": 0.1},
    "hierarchical": {"layers": {"tags": 1}, "feed": {"color": "tags"}},
    "mmoe": {"experts": 2, "expert_hidden": 16},
    "ple": {"experts": 1, "task_experts": 1, "expert_hidden": 16},
    "lora": {"r": 2, "alpha": 4},
}


def run(tmp_path, encoder, sharing: str, weighting: str | dict = "equal", steps: int = 4):
    raw = toy_config(tmp_path, encoder, LEVELS, max_steps=steps, num_threads=1, eval_every=steps)
    raw["model"]["sharing"] = {"name": sharing, "options": OPTIONS.get(sharing, {})}
    raw["weighting"] = weighting
    config = parse_config(raw)
    prepared = prepare(config)
    train(config, prepared=prepared)
    return prepared.model.eval()


def logits(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    records = [Record("x", 1, words="i see a red cat near the tree".split()),
               Record("x", 2, words="a very big green dog".split())]
    tasks = list(model.tasks.values())
    batch = collate(build_features(records, tasks, model.tokenizer, 32, False), tasks, 0, False)
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


@pytest.mark.parametrize("sharing", SHARINGS.names())
def test_trains_saves_and_loads_identically(tmp_path, tiny_encoder, sharing):
    model = run(tmp_path, tiny_encoder, sharing)
    before = logits(model)
    model.save_pretrained(tmp_path / "saved")
    loaded = MultiTaskModel.from_pretrained(tmp_path / "saved")
    assert loaded.config.sharing.name == sharing
    after = logits(loaded)
    assert set(after) == {"color", "tags"}
    for name in before:
        assert torch.equal(before[name], after[name]), name


@pytest.mark.parametrize("sharing", SHARINGS.names())
def test_works_with_gradient_aggregation(tmp_path, tiny_encoder, sharing):
    on = "features" if SHARINGS.get(sharing).has_shared_features else "parameters"
    model = run(tmp_path, tiny_encoder, sharing, {"name": "upgrad", "gradients_on": on}, steps=2)
    assert all(torch.isfinite(v).all() for v in logits(model).values())


@pytest.mark.parametrize("sharing", [n for n in SHARINGS.names() if not SHARINGS.get(n).has_shared_features])
def test_feature_gradients_rejected_without_shared_features(tmp_path, tiny_encoder, sharing):
    with pytest.raises(ConfigError, match="gradients_on: parameters"):
        run(tmp_path, tiny_encoder, sharing, {"name": "upgrad", "gradients_on": "features"})


@pytest.mark.parametrize("sharing", SHARINGS.names())
def test_unknown_option_lists_accepted(tmp_path, tiny_encoder, sharing):
    raw = toy_config(tmp_path, tiny_encoder, LEVELS, max_steps=1)
    raw["model"]["sharing"] = {"name": sharing, "bogus": 1}
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['bogus'\]; accepted"):
        train(parse_config(raw))


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sharing"


def test_every_strategy_has_a_valid_example():
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == SHARINGS.names()
    for path in EXAMPLES.glob("*.yaml"):
        config = load_config(path)
        assert config.model.sharing.name == path.stem
        check_combination(config)  # options valid, weighting compatible


def test_info_command_reports_sharing_and_parameters(tmp_path, tiny_encoder):
    model = run(tmp_path, tiny_encoder, "lora", steps=1)
    model.save_pretrained(tmp_path / "saved")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "saved"), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["sharing"]["name"] == "lora"
    assert card["parameters"]["trainable"] < card["parameters"]["total"]
    for task in ("color", "tags"):
        row = card["tasks"][task]
        # The backbone is frozen: each task trains only its adapters and head.
        assert row["shared"] == 0 and row["own"] == row["trainable"] > 0
        assert row["trainable"] < row["total"]
