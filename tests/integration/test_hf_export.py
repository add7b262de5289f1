"""`polytask export --hf`: per task a transformers directory that ``pipeline`` runs with the same
predictions as ``polytask predict``, the shared encoder as a plain AutoModel, refusals with reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from cli_helpers import run_in_process
from tiny_models import train_every_task

import polytask
from polytask.errors import ModelDirError, OutputExistsError
from polytask.models.hf_export import exportable
from polytask.models.multitask import MultiTaskModel

TEXTS = ["i see a red cat", "a blue dog near the house", "the green bird", "a very big red dog",
         "the small cat see a big tree"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_encoder) -> tuple[Path, Path, list[dict]]:
    folder = tmp_path_factory.mktemp("hf")
    model_dir = train_every_task(folder, tiny_encoder, max_steps=40, eval_every=40)  # tags not all "O"
    out = polytask.export(model_dir, hf=folder / "hf")
    return model_dir, out, polytask.predict(model_dir, TEXTS)


def pipe(kind: str, folder: Path):
    return transformers.pipeline(kind, model=str(folder), device="cpu")


def test_text_classification_pipelines_agree_with_polytask(exported):
    _, out, want = exported
    color = pipe("text-classification", out / "color")(TEXTS)
    assert [c["label"] for c in color] == [w["color"]["label"] for w in want]
    assert [c["score"] for c in color] == pytest.approx([w["color"]["score"] for w in want], abs=1e-4)
    animals = pipe("text-classification", out / "animals")(TEXTS, top_k=None)
    assert [sorted(a["label"] for a in row if a["score"] >= 0.5) for row in animals] == \
        [sorted(w["animals"]["labels"]) for w in want]
    size = pipe("text-classification", out / "size")(TEXTS)  # regression: the value itself
    assert [s["score"] for s in size] == pytest.approx([w["size"]["prediction"] for w in want], abs=1e-4)


def test_token_classification_pipeline_agrees_with_polytask(exported):
    _, out, want = exported
    rows = pipe("token-classification", out / "tags_plain")(TEXTS, ignore_labels=[])
    tags = [[t["entity"] for t in row if not t["word"].startswith("##")] for row in rows]
    assert tags == [w["tags_plain"]["tags"] for w in want]
    assert any(t != "O" for row in tags for t in row)  # the comparison is not all "O"


def test_exported_configs_are_standard(exported):
    model_dir, out, _ = exported
    model = MultiTaskModel.from_pretrained(model_dir)
    for name, problem in (("color", "single_label_classification"),
                          ("animals", "multi_label_classification"), ("size", "regression")):
        config = transformers.AutoConfig.from_pretrained(out / name)
        assert config.problem_type == problem
        assert list(config.label2id) == (model.tasks[name].labels or ["size"])
    tagger = transformers.AutoModelForTokenClassification.from_pretrained(out / "tags_plain")
    assert list(tagger.config.id2label.values()) == model.tasks["tags_plain"].labels


def test_encoder_folder_is_a_plain_automodel(exported):
    model_dir, out, _ = exported
    model = MultiTaskModel.from_pretrained(model_dir)
    encoder = transformers.AutoModel.from_pretrained(out / "encoder").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out / "encoder")
    assert tokenizer.get_vocab() == model.tokenizer.get_vocab()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        got, want = encoder(**batch).last_hidden_state, model.encoder(**batch).last_hidden_state
    assert torch.allclose(got, want, atol=1e-5)


def test_crf_task_says_what_is_lost(exported, monkeypatch, capsys, tmp_path):
    model_dir, out, _ = exported
    assert "CRF transitions are lost" in (out / "tags" / "README.md").read_text(encoding="utf-8")
    assert "CRF" not in (out / "tags_plain" / "README.md").read_text(encoding="utf-8")
    from polytask.cli import main

    monkeypatch.setattr("sys.argv", ["polytask", "export", str(model_dir), "--hf", str(tmp_path / "o")])
    main()  # returns on success
    captured = capsys.readouterr()
    assert 'pipeline("token-classification"' in " ".join(captured.out.split())
    assert "CRF transitions are lost" in " ".join(captured.err.split())


def test_export_refuses_what_it_cannot_represent(exported):
    model_dir, _, _ = exported
    model = MultiTaskModel.from_pretrained(model_dir)
    model.config.pooling = "mean"
    with pytest.raises(ModelDirError, match="pooling is 'mean'"):
        exportable(model, model_dir)
    model.config.pooling = "cls"
    model.config.sharing.name = "mmoe"
    with pytest.raises(ModelDirError, match="only hard sharing exports with --hf"):
        exportable(model, model_dir)


def test_export_never_replaces_a_folder_polytask_did_not_write(exported, tmp_path, monkeypatch, capsys):
    model_dir, _, _ = exported
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputExistsError):
        polytask.export(model_dir, hf=mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    code, err = run_in_process(monkeypatch, capsys, "export", model_dir, "--hf", model_dir / "inner")
    assert code == 2 and "is inside the source model" in err and "Traceback" not in err
    code, err = run_in_process(monkeypatch, capsys, "export", model_dir)
    assert code == 2 and "give one of --onnx DIR or --hf DIR" in err


def test_predicted_entities_point_into_the_input_text(exported):
    _, _, want = exported
    entities = [(text, e) for text, w in zip(TEXTS, want) for e in w["tags_plain"]["entities"]]
    assert entities  # the trained tagger finds some
    for text, entity in entities:
        assert text[entity["start"]:entity["end"]] == entity["word"] and 0 < entity["score"] <= 1
