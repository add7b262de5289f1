"""The model card's per-task parameter counts (``polytask info``) for every registered sharing
strategy, checked against a count made without the strategy's help: the parameters that get a
non-zero gradient when ONE task's loss alone is backpropagated."""

from __future__ import annotations

import pytest
import torch
from tiny_models import recsys_config, recsys_data
from toy import toy_config

import polytask.sharing  # noqa: F401 - registers every strategy
from polytask.config import parse_config
from polytask.data.batches import collate
from polytask.models.card import model_card, task_counts
from polytask.models.multitask import MultiTaskModel
from polytask.sharing.base import SHARINGS
from polytask.training.setup import prepare

TASKS = ["classification", "token_classification", "regression"]  # color, tags, size
# Options under which tasks share different amounts: groups, frozen layers, layers read, feeds.
OPTIONS = {
    "hard": {"freeze_layers": 1},
    "soft": {"groups": [["color", "size"], ["tags"]]},
    # size reads the embeddings but is fed by tags, which reads layer 1: size depends on layer 1 too
    "hierarchical": {"layers": {"tags": 1, "size": 0}, "feed": {"size": "tags"}},
    "mmoe": {"experts": 2, "expert_hidden": 8},
    "ple": {"experts": 1, "task_experts": 1, "expert_hidden": 8},
    "lora": {"r": 2, "alpha": 4},
}


def counted_by_gradients(model: MultiTaskModel, batch: dict) -> dict[str, dict[str, int]]:
    """Per task, from the gradients of that task's loss alone: trainable, shared, own; and the
    total once every parameter is made trainable."""
    torch.manual_seed(1)
    with torch.no_grad():  # no weight stays exactly zero (LoRA's B, cross-stitch's off-diagonal α)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)

    def touched() -> dict[str, set[int]]:
        result = {}
        for task in model.tasks.values():
            model.zero_grad(set_to_none=True)
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], [task.name])
            task.loss(logits[task.name], batch["targets"][task.name], batch["present"][task.name],
                      batch["attention_mask"], head=model.heads[task.name]).backward()
            result[task.name] = {id(p) for p in model.parameters()
                                 if p.grad is not None and bool(p.grad.ne(0).any())}
        return result

    size = {id(p): p.numel() for p in model.parameters()}
    trained = touched()
    for p in model.parameters():
        p.requires_grad_(True)
    used = touched()
    counts = {}
    for name, ids in trained.items():
        others = [trained[o] for o in trained if o != name]
        counts[name] = {"total": sum(size[i] for i in used[name]),
                        "trainable": sum(size[i] for i in ids),
                        "shared": sum(size[i] for i in ids if all(i in o for o in others)),
                        "own": sum(size[i] for i in ids if not any(i in o for o in others))}
    return counts


def first_batch(prepared) -> dict:
    model = prepared.model.eval()
    group, features = next(iter(prepared.features["train"].items()))
    return collate(features[:8], prepared.groups[group], model.tokenizer.pad_token_id)


@pytest.mark.parametrize("sharing", SHARINGS.names())
def test_per_task_counts_match_the_gradients(tmp_path, tiny_encoder, sharing):
    raw = toy_config(tmp_path, tiny_encoder, TASKS, max_steps=1)
    raw["model"]["sharing"] = {"name": sharing, "options": OPTIONS.get(sharing, {})}
    prepared = prepare(parse_config(raw))
    claimed = task_counts(prepared.model)
    assert claimed == counted_by_gradients(prepared.model, first_batch(prepared))
    feeders = set(OPTIONS.get(sharing, {}).get("feed", {}).values())  # their heads feed others
    assert all(row["own"] > 0 for name, row in claimed.items() if name not in feeders)


@pytest.mark.parametrize("sharing", [
    "hard", {"name": "hierarchical", "layers": {"click": 0}}, {"name": "mmoe", "experts": 2}, "attention"])
def test_tabular_encoder_counts_match_the_gradients(tmp_path, sharing):
    """The tabular encoder names its weights unlike BERT (layers.0, row_mlp, norm): the counts
    must not depend on names (hierarchical once counted only its embeddings)."""
    raw = recsys_config(recsys_data(tmp_path / "data", rows=120), tmp_path / "run", sharing, attention_layers=1)
    prepared = prepare(parse_config(raw))
    claimed = task_counts(prepared.model)
    assert claimed == counted_by_gradients(prepared.model, first_batch(prepared))


def test_card_of_a_model_without_sharing_options(tmp_path, tiny_encoder):
    """Hard sharing: every task uses the whole encoder but BERT's pooler (no head reads it)."""
    prepared = prepare(parse_config(toy_config(tmp_path, tiny_encoder, TASKS[:2], max_steps=1)))
    model = prepared.model
    card = model_card(model)
    pooler = sum(p.numel() for p in model.encoder.pooler.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters()) - pooler
    for name, row in card["tasks"].items():
        head = sum(p.numel() for p in model.heads[name].parameters())
        assert row == {"type": model.tasks[name].config.type, "level": model.tasks[name].level,
                       "total": encoder + head, "trainable": encoder + head, "shared": encoder, "own": head}
