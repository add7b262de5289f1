"""Gradient methods see the conflicts of a sentence task and a token task (issue 26).

At the encoder output a [CLS] task and a token task have gradients on disjoint positions
(cosine exactly 0: PCGrad would never project). The default feature point, the input of the
top two layers, is where attention has mixed them. The partial Jacobian
(``gradients_on: {parameters: last_layers, k}``) is exact at both ends: k = 0 is equal
weighting, k covering every trainable layer is ``gradients_on: parameters``.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from toy import resume_matches_unbroken, toy_config
from torch.nn import functional as F

import polytask.weighting  # noqa: F401 - registers every method
from polytask.config import WeightingConfig, parse_config
from polytask.data.batches import GroupStream, collate
from polytask.errors import ConfigError
from polytask.models.multitask import feature_point
from polytask.training.setup import prepare
from polytask.training.trainer import check_combination, train
from polytask.weighting.base import build_balancer


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_encoder):
    """A tiny model with a [CLS] task (color) and a token task (tags), and one batch."""
    folder = tmp_path_factory.mktemp("feature-point")
    config = parse_config(toy_config(folder, tiny_encoder, ["classification", "token_classification"]))
    prepared = prepare(config, ("train",))
    features = prepared.features["train"]["toy"]
    indices = GroupStream("toy", features, 16, 0, False).next_indices()
    batch = collate([features[i] for i in indices], prepared.groups["toy"], prepared.model.tokenizer.pad_token_id)
    prepared.model.eval()  # no dropout: two passes over the batch are the same function
    return prepared, batch


def real_losses(prepared, batch, balancer):
    """The tasks' own losses, and the features the trainer would hand this balancer."""
    model = prepared.model
    logits, features = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                             return_features=True, feature_layer=balancer.feature_layer,
                             exact_layer=balancer.exact_layer)
    losses = {t.name: t.loss(logits[t.name], batch["targets"][t.name], batch["present"][t.name],
                             batch["attention_mask"], head=model.heads[t.name])
              for t in prepared.tasks}
    return losses, features


def conflicting_losses(model, batch, balancer):
    """A [CLS] loss and a loss on the word positions built to oppose it: the color head on the
    mean of the words, pushed AWAY from the gold color. Disjoint positions at the output."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    shared = model.sharing(inputs, ["color"])
    hidden, head, gold = shared.shared, model.heads["color"], batch["targets"]["color"]
    words = batch["attention_mask"].clone()
    words[:, 0] = 0
    mean_words = (hidden * words.unsqueeze(-1)).sum(1) / words.sum(1, keepdim=True)
    losses = {"cls": F.cross_entropy(head(hidden[:, 0]), gold),
              "words": -F.cross_entropy(head(mean_words), gold)}
    return losses, feature_point(shared, balancer.feature_layer, balancer.exact_layer)


def test_default_point_gives_cls_and_token_tasks_a_nonzero_cosine(toy):
    prepared, batch = toy
    balancer = build_balancer(WeightingConfig(name="pcgrad"), ["color", "tags"])
    assert balancer.feature_layer is not None  # the default is not the encoder output
    losses, features = real_losses(prepared, batch, balancer)
    logs = balancer.backward(losses, prepared.model.shared_parameters(), features)
    assert abs(logs["cosine/color|tags"]) > 1e-7, logs

    at_output = build_balancer(WeightingConfig(name="pcgrad", gradients_on={"features": "layer", "layer": -1}),
                               ["color", "tags"])
    losses, features = real_losses(prepared, batch, at_output)
    assert at_output.backward(losses, prepared.model.shared_parameters(), features)["cosine/color|tags"] == 0.0


def test_pcgrad_update_differs_from_equal_weighting_when_the_tasks_conflict(toy):
    prepared, batch = toy
    # A random tiny BERT mixes positions weakly (the residual stream dominates): a larger value
    # projection in the top layer makes its attention carry the two losses into each other.
    model = copy.deepcopy(prepared.model)
    with torch.no_grad():
        model.encoder.encoder.layer[-1].attention.self.value.weight.mul_(20.0)

    def grads(gradients_on, name):
        model.zero_grad(set_to_none=True)
        balancer = build_balancer(WeightingConfig(name=name, **gradients_on), ["cls", "words"])
        losses, features = conflicting_losses(model, batch, balancer)
        logs = balancer.backward(losses, model.shared_parameters(), features)
        return {n: p.grad.clone() for n, p in model.encoder.named_parameters() if p.grad is not None}, logs

    ew, _ = grads({}, "equal")
    pcgrad, logs = grads({}, "pcgrad")
    assert logs["cosine/cls|words"] < -1e-3, logs  # the conflict is visible at the default point
    embeddings, top = "embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"
    assert not torch.allclose(pcgrad[embeddings], ew[embeddings], rtol=1e-3, atol=1e-7)
    # The layer above the point (like the heads) gets the plain sum of its tasks' gradients.
    torch.testing.assert_close(pcgrad[top], ew[top], rtol=1e-5, atol=1e-7)

    # At the encoder output the same conflict is invisible: PCGrad is equal weighting there.
    at_output, logs = grads({"gradients_on": {"features": "layer", "layer": -1}}, "pcgrad")
    assert logs["cosine/cls|words"] == 0.0
    torch.testing.assert_close(at_output[embeddings], ew[embeddings], rtol=1e-6, atol=1e-9)


def partial_run(prepared, batch, gradients_on, name: str = "upgrad"):
    """(weights, .grad of every parameter) after one backward of the real tasks."""
    prepared.model.zero_grad(set_to_none=True)
    weighting = WeightingConfig(name=name, **({"gradients_on": gradients_on} if gradients_on else {}))
    balancer = build_balancer(weighting, ["color", "tags"])
    losses, features = real_losses(prepared, batch, balancer)
    logs = balancer.backward(losses, prepared.model.shared_parameters(), features)
    grads = {n: p.grad.clone() for n, p in prepared.model.named_parameters() if p.grad is not None}
    return logs, grads


def test_partial_jacobian_with_k_0_is_equal_weighting(toy):
    prepared, batch = toy
    _, equal = partial_run(prepared, batch, None, name="equal")
    logs, partial = partial_run(prepared, batch, {"parameters": "last_layers", "k": 0})
    assert logs["weight/color"] == logs["weight/tags"] == 1.0
    assert equal.keys() == partial.keys()
    for key in equal:
        torch.testing.assert_close(partial[key], equal[key], rtol=1e-6, atol=1e-8, msg=key)


def test_partial_jacobian_over_every_trainable_layer_is_the_full_jacobian(toy):
    prepared, batch = toy
    embeddings = prepared.model.encoder.embeddings
    embeddings.requires_grad_(False)  # then the top 2 (= all) layers are all that trains below the heads
    try:
        full_logs, full = partial_run(prepared, batch, "parameters")
        logs, partial = partial_run(prepared, batch, {"parameters": "last_layers", "k": 2})
    finally:
        embeddings.requires_grad_(True)
    for key in ("weight/color", "weight/tags", "cosine/color|tags"):
        assert logs[key] == pytest.approx(full_logs[key], abs=1e-5), key
    assert full.keys() == partial.keys()
    for key in full:
        torch.testing.assert_close(partial[key], full[key], rtol=1e-5, atol=1e-6, msg=key)


def test_partial_jacobian_differs_from_both_ends_in_between(toy):
    prepared, batch = toy
    _, equal = partial_run(prepared, batch, None, name="equal")
    _, full = partial_run(prepared, batch, "parameters")
    logs, partial = partial_run(prepared, batch, {"parameters": "last_layers", "k": 1})
    top, below = (f"encoder.encoder.layer.{i}.attention.self.query.weight" for i in (1, 0))
    torch.testing.assert_close(partial[below], equal[below], rtol=1e-6, atol=1e-8)  # plain sum below
    assert not torch.allclose(partial[top], equal[top], rtol=1e-4, atol=1e-8)  # aggregated on top


def test_a_layer_outside_the_encoder_names_the_range(toy):
    prepared, batch = toy
    balancer = build_balancer(WeightingConfig(name="pcgrad", gradients_on={"parameters": "last_layers", "k": 5}),
                              ["color", "tags"])
    with pytest.raises(ConfigError, match="hidden state -6 does not exist.*has 3"):
        real_losses(prepared, batch, balancer)


@pytest.mark.parametrize("gradients_on", [{"features": "layer", "layer": -2},
                                          {"parameters": "last_layers", "k": 1}])
def test_strategies_without_shared_features_refuse_the_new_points(tmp_path, tiny_encoder, gradients_on):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"])
    raw["model"]["sharing"] = {"name": "soft"}
    raw["weighting"] = {"name": "pcgrad", "gradients_on": gradients_on}
    with pytest.raises(ConfigError, match="gradients_on: parameters"):
        check_combination(parse_config(raw))
    raw["weighting"]["gradients_on"] = "parameters"  # the old setting keeps working there
    check_combination(parse_config(raw))


def test_gradients_on_shapes_parse_and_bad_ones_are_rejected(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    for good in ("features", "parameters", {"features": "layer", "layer": -3},
                 {"parameters": "last_layers", "k": 2}):
        raw["weighting"] = {"name": "upgrad", "gradients_on": good}
        assert parse_config(raw).weighting.gradients_on == good or isinstance(good, dict)
    for bad in ("layer", {"features": "layer"}, {"parameters": "last_layers", "k": -1},
                {"parameters": "last_layers", "k": 2, "layer": 1}):
        raw["weighting"] = {"name": "upgrad", "gradients_on": bad}
        with pytest.raises(ConfigError, match="gradients_on"):
            parse_config(raw)


@pytest.mark.parametrize("name,gradients_on", [("pcgrad", "features"),
                                               ("upgrad", {"features": "layer", "layer": -2}),
                                               ("pcgrad", {"parameters": "last_layers", "k": 1}),
                                               ("gradnorm", {"parameters": "last_layers", "k": 1})])
def test_new_points_resume_bit_exact(tmp_path, tiny_encoder, name, gradients_on):
    """tests/contract/test_weighting_contract.py's pattern on a [CLS] task + a token task."""
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=6,
                     eval_every=1, checkpoint_every=3, num_threads=1)
    raw["weighting"] = {"name": name, "gradients_on": gradients_on}
    unbroken, _ = resume_matches_unbroken(tmp_path, raw)
    if name != "gradnorm":
        lines = [json.loads(line) for line in (unbroken / "metrics.jsonl").read_text().splitlines()]
        assert any(line.get("cosine/color|tags", 0.0) != 0.0 for line in lines)
