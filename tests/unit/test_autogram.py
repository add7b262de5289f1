"""``weighting.engine: autogram`` (issue 26, item 2): the task Gramian of the shared parameters
from torchjd's autogram engine gives the same weights and gradients as the full Jacobian
(autojac), resumes bit-exact, and is refused where it cannot be exact."""

from __future__ import annotations

import copy

import pytest
import torch
from toy import resume_matches_unbroken, toy_config

import polytask.weighting  # noqa: F401 - registers every method
from polytask.config import WeightingConfig, parse_config
from polytask.data.batches import GroupStream, collate
from polytask.errors import ConfigError
from polytask.training.setup import prepare
from polytask.training.trainer import train
from polytask.weighting.autogram import resolve_engine
from polytask.weighting.base import build_balancer

GRAMIAN_METHODS = ["upgrad", "mgda", "dualproj", "imtl_g", "pcgrad", "aligned_mtl", "cagrad", "gradvac"]
TASKS = ["classification", "token_classification", "regression"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_encoder):
    folder = tmp_path_factory.mktemp("autogram")
    prepared = prepare(parse_config(toy_config(folder, tiny_encoder, TASKS)), ("train",))
    features = prepared.features["train"]["toy"]
    indices = GroupStream("toy", features, 16, 0, False).next_indices()
    batch = collate([features[i] for i in indices], prepared.groups["toy"], prepared.model.tokenizer.pad_token_id)
    prepared.model.eval()  # no dropout: every copy computes the same function
    return prepared, batch


def step(prepared, batch, name: str, engine: str, tasks: list[str] | None = None):
    """One balancer backward on a fresh copy of the model: (logs, .grad of every parameter)."""
    model = copy.deepcopy(prepared.model)
    names = [t.name for t in prepared.tasks]
    balancer = build_balancer(WeightingConfig(name=name, gradients_on="parameters", engine=engine), names)
    balancer.attach(model)
    assert (balancer.gramian_engine is not None) == (engine == "autogram")
    logs = {}
    for subset in ([tasks] if tasks else []) + [names]:  # a single-task batch first, if asked
        logits, features = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                 return_features=True)
        losses = {t.name: t.loss(logits[t.name], batch["targets"][t.name], batch["present"][t.name],
                                 batch["attention_mask"], head=model.heads[t.name])
                  for t in prepared.tasks if t.name in subset}
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # PCGrad and GradVac visit the tasks in a random order
        logs = balancer.backward(losses, model.shared_parameters(), features)
    return logs, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_autogram_equals_autojac(toy, name):
    prepared, batch = toy
    (jac_logs, jac_grads), (gram_logs, gram_grads) = (step(prepared, batch, name, e) for e in ("autojac", "autogram"))
    assert jac_logs.keys() == gram_logs.keys()
    for key in jac_logs:  # weights and cosines
        assert gram_logs[key] == pytest.approx(jac_logs[key], abs=1e-5), key
    assert jac_grads.keys() == gram_grads.keys()  # the unused pooler gets no gradient in either
    for key in jac_grads:
        torch.testing.assert_close(gram_grads[key], jac_grads[key], atol=1e-5, rtol=1e-4, msg=key)


def test_a_single_task_batch_in_between_leaves_the_engine_consistent(toy):
    """A one-task batch does a plain backward (no Gramian): the next Gramian must not see it."""
    prepared, batch = toy
    jac_logs, jac_grads = step(prepared, batch, "upgrad", "autojac")
    gram_logs, gram_grads = step(prepared, batch, "upgrad", "autogram", tasks=["color"])
    assert gram_logs == pytest.approx(jac_logs, abs=1e-5)
    for key in jac_grads:
        torch.testing.assert_close(gram_grads[key], jac_grads[key], atol=1e-5, rtol=1e-4, msg=key)


def test_autojac_stays_the_default():
    """Measured faster and leaner on CPU (docs/weighting.md, section 8): autogram is opt-in."""
    balancer = build_balancer(WeightingConfig(name="upgrad", gradients_on="parameters"), ["a", "b"])
    assert balancer.engine == "autojac"


@pytest.mark.parametrize("weighting,message", [
    ({"name": "upgrad", "engine": "autogram"}, "gradients_on: parameters"),
    ({"name": "nash_mtl", "gradients_on": "parameters", "engine": "autogram"}, "engine: autojac"),
    ({"name": "equal", "engine": "autogram"}, "remove weighting.engine"),
])
def test_autogram_where_it_does_not_apply_is_refused(weighting, message):
    with pytest.raises(ConfigError, match=message):
        build_balancer(WeightingConfig(**weighting), ["a", "b"])


def test_autogram_is_refused_under_data_parallelism():
    balancer = build_balancer(WeightingConfig(name="mgda", gradients_on="parameters", engine="autogram"),
                              ["a", "b"])
    with pytest.raises(ConfigError, match="data parallelism"):
        resolve_engine(balancer.config, balancer.aggregator, distributed=True)


@pytest.mark.parametrize("name", ["upgrad", "gradvac"])
def test_autogram_resumes_bit_exact(tmp_path, tiny_encoder, name):
    raw = toy_config(tmp_path, tiny_encoder, TASKS, max_steps=6, eval_every=1, checkpoint_every=3,
                     num_threads=1)
    raw["weighting"] = {"name": name, "gradients_on": "parameters", "engine": "autogram"}
    unbroken, _ = resume_matches_unbroken(tmp_path, raw)


@pytest.mark.parametrize("sharing", ["soft", "lora"])
def test_autogram_equals_autojac_without_a_shared_tensor(tmp_path, tiny_encoder, sharing):
    """Strategies whose tasks read different feature tensors (one encoder copy each, or per-task
    adapters on a frozen encoder): the per-task features carry the weighted gradient down."""
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"])
    raw["model"]["sharing"] = {"name": sharing}
    prepared = prepare(parse_config(raw), ("train",))
    features = prepared.features["train"]["toy"]
    indices = GroupStream("toy", features, 16, 0, False).next_indices()
    batch = collate([features[i] for i in indices], prepared.groups["toy"], prepared.model.tokenizer.pad_token_id)
    prepared.model.eval()
    (jac_logs, jac_grads), (gram_logs, gram_grads) = (step(prepared, batch, "upgrad", e) for e in ("autojac", "autogram"))
    assert gram_logs == pytest.approx(jac_logs, abs=1e-5)
    assert jac_grads.keys() == gram_grads.keys()
    for key in jac_grads:
        torch.testing.assert_close(gram_grads[key], jac_grads[key], atol=1e-5, rtol=1e-4, msg=key)
