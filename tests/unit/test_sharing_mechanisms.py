"""Each sharing strategy's defining property, on the tiny random BERT."""

from __future__ import annotations

import torch
from toy import toy_config
from transformers import AutoModel, AutoTokenizer

from polytask.config import ModelConfig, TaskConfig, parse_config
from polytask.models.card import model_card
from polytask.models.multitask import MultiTaskModel, pool
from polytask.tasks.base import build_task
from polytask.training.setup import prepare
from polytask.training.trainer import train

LABELS = {"color": ["blue", "green", "red"], "tags": ["B-animal", "B-color", "O"]}


def make_model(encoder_dir, sharing: str, options: dict | None = None) -> MultiTaskModel:
    tasks = [build_task(TaskConfig(name="color", type="classification", dataset="toy", label="color"),
                        {"labels": LABELS["color"]}),
             build_task(TaskConfig(name="tags", type="token_classification", dataset="toy", label="tags"),
                        {"labels": LABELS["tags"]})]
    config = ModelConfig(encoder=str(encoder_dir), sharing={"name": sharing, "options": options or {}})
    torch.manual_seed(0)
    model = MultiTaskModel(AutoModel.from_pretrained(encoder_dir), AutoTokenizer.from_pretrained(encoder_dir),
                           tasks, config)
    return model.eval()


def inputs(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    batch = model.tokenizer(["i see a red cat", "a very big green dog near the house"],
                            padding=True, return_tensors="pt")
    return dict(batch)


def trained(tmp_path, encoder_dir, sharing: str, options: dict, steps: int = 3):
    raw = toy_config(tmp_path, encoder_dir, ["classification", "token_classification"],
                     max_steps=steps, num_threads=1)
    raw["model"]["sharing"] = {"name": sharing, "options": options}
    config = parse_config(raw)
    prepared = prepare(config)
    before = {n: p.detach().clone() for n, p in prepared.model.named_parameters()}
    train(config, prepared=prepared)
    return before, dict(prepared.model.named_parameters())


def test_hard_default_is_one_encoder_pass_read_by_every_head(tiny_encoder):
    model = make_model(tiny_encoder, "hard")
    batch = inputs(model)
    with torch.no_grad():
        out = model(**batch)
        hidden = model.encoder(**batch).last_hidden_state
    assert torch.equal(out["tags"], model.heads["tags"](hidden))
    assert torch.equal(out["color"], model.heads["color"](pool(hidden, batch["attention_mask"], "cls")))


def test_hard_freeze_leaves_frozen_weights_unchanged(tmp_path, tiny_encoder):
    before, after = trained(tmp_path, tiny_encoder, "hard", {"freeze_layers": 1})
    for name, param in after.items():
        frozen = name.startswith(("encoder.embeddings.", "encoder.encoder.layer.0."))
        assert not frozen or torch.equal(param, before[name]), name
    assert not torch.equal(after["encoder.encoder.layer.1.output.dense.weight"],
                           before["encoder.encoder.layer.1.output.dense.weight"])


def test_hard_freeze_encoder_trains_heads_only(tmp_path, tiny_encoder):
    before, after = trained(tmp_path, tiny_encoder, "hard", {"freeze_encoder": True})
    assert all(torch.equal(p, before[n]) for n, p in after.items() if n.startswith("encoder."))
    assert not torch.equal(after["heads.color.1.weight"], before["heads.color.1.weight"])


def test_soft_penalty_is_zero_for_equal_copies_and_pulls_them_together(tiny_encoder):
    model = make_model(tiny_encoder, "soft", {"lambda": 1.0})
    sharing = model.sharing
    assert float(sharing.regularization().detach()) == 0.0
    with torch.no_grad():
        for param in sharing.encoder_copies[0].parameters():
            param.add_(0.01 * torch.randn_like(param))

    def distance() -> float:
        with torch.no_grad():
            return sum(float((a - b).pow(2).sum()) for a, b in
                       zip(model.encoder.parameters(), sharing.encoder_copies[0].parameters()))

    start = distance()
    penalty = sharing.regularization()
    assert float(penalty.detach()) > 0
    optimizer = torch.optim.SGD(sharing.shared_parameters(), lr=0.1)
    penalty.backward()
    optimizer.step()
    assert distance() < start


def test_soft_pairwise_is_n_times_the_mean_form(tiny_encoder):
    model = make_model(tiny_encoder, "soft", {"lambda": 1.0, "pairwise": True})
    with torch.no_grad():
        for param in model.sharing.encoder_copies[0].parameters():
            param.add_(0.01 * torch.randn_like(param))
    explicit = sum((a - b).pow(2).sum() for a, b in
                   zip(model.encoder.parameters(), model.sharing.encoder_copies[0].parameters()))
    assert torch.allclose(model.sharing.regularization(), explicit)


def test_cross_stitch_with_identity_alpha_is_independent_copies(tiny_encoder):
    model = make_model(tiny_encoder, "cross_stitch")
    sharing = model.sharing
    with torch.no_grad():
        for param in sharing.encoder_copies[0].parameters():
            param.add_(0.05 * torch.randn_like(param))
        sharing.alpha.copy_(torch.eye(2).repeat(len(sharing.alpha), 1, 1))
        batch = inputs(model)
        mixed = sharing(batch, ["color", "tags"]).per_task
        assert torch.allclose(mixed["color"], model.encoder(**batch).last_hidden_state, atol=1e-6)
        assert torch.allclose(mixed["tags"], sharing.encoder_copies[0](**batch).last_hidden_state, atol=1e-6)
        sharing.alpha.fill_(0.5)  # full mixing: both tasks read the same average
        mixed = sharing(batch, ["color", "tags"]).per_task
        assert torch.allclose(mixed["color"], mixed["tags"])


def test_hierarchical_heads_read_the_named_layer(tiny_encoder):
    model = make_model(tiny_encoder, "hierarchical", {"layers": {"tags": 1}})
    batch = inputs(model)
    with torch.no_grad():
        states = model.encoder(**batch, output_hidden_states=True).hidden_states
        shared = model.sharing(batch, ["color", "tags"])
        out = model(**batch)
    assert torch.equal(shared.per_task["tags"], states[1])
    assert torch.equal(shared.per_task["color"], states[-1])
    assert torch.equal(out["tags"], model.heads["tags"](states[1]))


def test_hierarchical_feed_starts_as_identity_and_needs_the_earlier_head(tiny_encoder):
    model = make_model(tiny_encoder, "hierarchical", {"feed": {"color": "tags"}})
    batch = inputs(model)
    assert model.sharing.required_tasks(["color"]) == ["tags", "color"]
    with torch.no_grad():
        plain = model.heads["color"](pool(model.encoder(**batch).last_hidden_state, batch["attention_mask"], "cls"))
        assert torch.allclose(model(**batch, tasks=["color"])["color"], plain, atol=1e-6)
        model.sharing.projections["color"].weight[:, -3:].fill_(1.0)  # now the tags distribution matters
        assert not torch.allclose(model(**batch, tasks=["color"])["color"], plain, atol=1e-6)


def test_attention_mix_is_softmax_and_pooling_starts_as_mean(tiny_encoder):
    model = make_model(tiny_encoder, "attention")
    batch = inputs(model)
    with torch.no_grad():
        shared = model.sharing(batch, ["color", "tags"])
        module = model.sharing.attention["color"]
        assert torch.allclose(torch.softmax(module.mix, 0).sum(), torch.tensor(1.0))
        mean = pool(shared.per_task["color"], batch["attention_mask"], "mean")
    assert torch.allclose(shared.pooled["color"], mean, atol=1e-6)
    assert "tags" not in shared.pooled  # token tasks read every token
    assert shared.shared.shape[0] == model.encoder.config.num_hidden_layers + 1


def test_moe_gates_are_softmax_over_experts(tiny_encoder):
    for name, options, experts in (("mmoe", {"experts": 3}, 3), ("ple", {"experts": 2, "task_experts": 2}, 4)):
        model = make_model(tiny_encoder, name, options)
        hidden = torch.randn(2, 5, model.encoder.config.hidden_size)
        for task in ("color", "tags"):
            weights = model.sharing.gate_weights(hidden, task)
            assert weights.shape == (2, 5, experts)
            assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(2, 5))


def test_lora_leaves_the_backbone_bit_unchanged(tmp_path, tiny_encoder):
    before, after = trained(tmp_path, tiny_encoder, "lora", {"r": 2, "alpha": 4, "dropout": 0.0})
    lora = [n for n in after if ".lora_" in n]
    backbone = [n for n in after if n.startswith("encoder.") and ".lora_" not in n]
    assert lora and backbone
    assert all(torch.equal(after[n], before[n]) for n in backbone)
    assert any(not torch.equal(after[n], before[n]) for n in lora if ".tags." in n)
    assert any(not torch.equal(after[n], before[n]) for n in lora if ".color." in n)


def test_lora_tasks_read_their_own_adapter(tiny_encoder):
    model = make_model(tiny_encoder, "lora", {"r": 2})
    with torch.no_grad():
        for param in model.sharing.adapter_parameters("tags"):
            param.add_(0.5)
        batch = inputs(model)
        per_task = model.sharing(batch, ["color", "tags"]).per_task
        model.sharing.activate("color")
        alone = model.encoder(**batch).last_hidden_state
    assert torch.equal(per_task["color"], alone)
    assert not torch.allclose(per_task["color"], per_task["tags"])


def test_card_counts_shared_and_own_parameters(tiny_encoder):
    card = model_card(make_model(tiny_encoder, "lora", {"r": 2}))
    color, tags = card["tasks"]["color"], card["tasks"]["tags"]
    # The frozen backbone is used by both tasks but trained by neither: in `total`, not `shared`.
    assert color["shared"] == tags["shared"] == 0
    assert color["total"] == tags["total"] > color["trainable"]
    adapters = sum(p.numel() for p in make_model(tiny_encoder, "lora", {"r": 2}).sharing.all_adapters)
    heads = 32 * 3 + 3
    assert color["own"] == adapters // 2 + heads
    assert card["parameters"]["trainable"] < card["parameters"]["total"]


def test_soft_groups_share_a_copy_within_a_group(tiny_encoder):
    model = make_model(tiny_encoder, "soft", {"groups": [["color", "tags"]]})
    assert len(model.sharing.encoder_copies) == 0 and model.sharing.regularization() is None
    per_task = model.sharing(inputs(model), ["color", "tags"]).per_task
    assert per_task["color"] is per_task["tags"]
