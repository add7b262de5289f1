"""What a model or encoder directory may make polytask do: no custom code without opt-in, no
silent run on a missing tokenizer, no mid-run crash from a max_length above the encoder's
positions, no unpickling of arbitrary objects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_encoder
from toy import toy_config
from transformers import BertModel

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import run_in_process  # noqa: E402

from polytask.config import ModelConfig, parse_config
from polytask.data.records import Record
from polytask.errors import ConfigError, ModelDirError
from polytask.inference import predict_records
from polytask.models.encoder import load_encoder
from polytask.models.multitask import MultiTaskModel
from polytask.training.trainer import train

EVIL = """import pathlib
pathlib.Path({sentinel!r}).write_text("custom code ran")
from transformers import BertConfig


class EvilConfig(BertConfig):
    model_type = "evil_bert"
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_encoder) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    train(parse_config(toy_config(folder, tiny_encoder, ["classification"], max_steps=2, eval_every=2)))
    return folder / "run" / "model"


def edited(model: Path) -> Path:
    """A model dir whose files were changed on purpose: without its manifest (as the integrity
    error advises, and as models saved before manifests), so the checks behind it are reached."""
    (model / "manifest.json").unlink()
    return model


def copy_of(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def plant_custom_code(config_dir: Path, sentinel: Path) -> None:
    """An auto_map naming a configuration_*.py that writes ``sentinel`` when imported."""
    config_file = config_dir / "config.json"
    config = json.loads(config_file.read_text())
    config.update(model_type="evil_bert", auto_map={"AutoConfig": "configuration_evil.EvilConfig"})
    config_file.write_text(json.dumps(config))
    (config_dir / "configuration_evil.py").write_text(EVIL.format(sentinel=str(sentinel)))


def run_cli(*args: str, answer: str = "y\n") -> subprocess.CompletedProcess:
    """The real command; ``answer`` on stdin is what a careless user types at a prompt."""
    return subprocess.run([sys.executable, "-m", "polytask", *map(str, args)], input=answer,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_custom_code_in_a_model_dir_is_refused_without_a_prompt(saved_model, tmp_path):
    model = edited(copy_of(saved_model, tmp_path))  # a hostile dir need not carry our manifest
    sentinel = tmp_path / "SENTINEL"
    plant_custom_code(model / "encoder", sentinel)
    (tmp_path / "in.jsonl").write_text('{"text": "a red cat"}\n')
    result = run_cli("predict", model, "-i", tmp_path / "in.jsonl")
    assert result.returncode == 2, result.stderr
    assert "run the custom code" not in result.stdout + result.stderr  # never prompted
    assert "--trust-remote-code" in result.stderr and "Traceback" not in result.stderr
    assert not sentinel.exists()
    # The opt-in named in the message is what lets the code run.
    run_cli("predict", model, "-i", tmp_path / "in.jsonl", "--trust-remote-code")
    assert sentinel.exists()


def test_custom_code_in_an_encoder_is_refused_unless_the_config_opts_in(tmp_path, monkeypatch):
    encoder = build_tiny_encoder(tmp_path / "encoder")
    sentinel = tmp_path / "SENTINEL"
    plant_custom_code(encoder, sentinel)
    monkeypatch.setattr("builtins.input", lambda *_: "y")  # a prompt would be answered yes
    with pytest.raises(ConfigError, match="model.trust_remote_code: true"):
        load_encoder(ModelConfig(encoder=str(encoder)))
    assert not sentinel.exists()


def test_missing_tokenizer_file_of_a_saved_model_is_an_error(saved_model, tmp_path):
    model = copy_of(saved_model, tmp_path)
    (model / "tokenizer.json").unlink()
    with pytest.raises(ModelDirError, match=r"tokenizer\.json: missing"):  # the manifest sees it first
        MultiTaskModel.from_pretrained(model)
    edited(model)  # without a manifest, the saved fingerprint still catches it
    with pytest.raises(ModelDirError, match=r"tokenizer\.json: the tokenizer has 5 tokens"):
        MultiTaskModel.from_pretrained(model)


def test_missing_tokenizer_file_without_a_fingerprint_is_an_error(saved_model, tmp_path):
    model = edited(copy_of(saved_model, tmp_path))  # as saved before fingerprints and manifests
    meta = json.loads((model / "polytask.json").read_text())
    meta.pop("tokenizer")
    (model / "polytask.json").write_text(json.dumps(meta))
    MultiTaskModel.from_pretrained(model)  # intact files still load
    (model / "tokenizer.json").unlink()
    with pytest.raises(ModelDirError, match="only its 5 special tokens"):
        MultiTaskModel.from_pretrained(model)


def test_encoder_without_its_vocabulary_is_refused_at_start_up(tmp_path):
    encoder = build_tiny_encoder(tmp_path / "encoder")
    for name in ("tokenizer.json", "vocab.txt"):
        (encoder / name).unlink()
    with pytest.raises(ConfigError, match="special tokens"):
        load_encoder(ModelConfig(encoder=str(encoder)))


def test_max_length_above_the_position_embeddings_is_refused_before_any_write(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=2)
    raw["model"]["max_length"] = 100  # the tiny encoder has 64 positions
    with pytest.raises(ConfigError, match="model.max_length: 100 is above the 64 positions"):
        train(parse_config(raw))
    assert not (tmp_path / "run").exists()


def test_saved_model_with_too_long_max_length_is_clamped_at_load(saved_model, tmp_path, caplog):
    model_dir = edited(copy_of(saved_model, tmp_path))  # polytask.json edited by hand
    meta = json.loads((model_dir / "polytask.json").read_text())
    meta["model"]["max_length"] = 100
    (model_dir / "polytask.json").write_text(json.dumps(meta))
    model = MultiTaskModel.from_pretrained(model_dir)
    assert model.config.max_length == 64
    assert "above the encoder's 64 position embeddings" in caplog.text
    long_input = Record("t", 1, text=" ".join(["red"] + ["cat"] * 150))
    assert predict_records(model, [long_input])[0]["color"]["label"] in {"red", "blue", "green"}


def test_pickle_weights_holding_objects_are_a_clear_error(tmp_path):
    encoder = build_tiny_encoder(tmp_path / "encoder")
    weights = BertModel.from_pretrained(encoder).state_dict()
    (encoder / "model.safetensors").unlink()
    torch.save({**weights, "config": BertModel.config_class()}, encoder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="convert|Convert") as caught:
        load_encoder(ModelConfig(encoder=str(encoder)))
    assert "safetensors" in str(caught.value) and "pytorch_model.bin" in str(caught.value)


@pytest.mark.parametrize("args", [
    ("predict", "{model}", "-i", "{inputs}", "-o", "{folder}"),
    ("evaluate", "{model}", "--output", "{folder}"),
    ("evaluate", "{model}", "--split", "nosuch"),
    ("evaluate", "{model}", "--split", "dev", "--set", "datasets.toy.dev=null"),  # no dev file
    ("predict", "{model}", "-i", "{inputs}", "--batch-size", "0"),
    ("predict", "{model}", "-i", "{inputs}", "-o", "{inputs}/out.jsonl"),
])
def test_bad_output_split_and_batch_options_exit_2(saved_model, tmp_path, monkeypatch, capsys, args):
    folder = tmp_path / "out"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("mine")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "a red cat"}\n')
    values = {"model": saved_model, "inputs": inputs, "folder": folder}
    code, err = run_in_process(monkeypatch, capsys, *(a.format(**values) for a in args))
    assert code == 2, err
    option = next(a for a in args if a.startswith("-") and a != "-i")
    assert option in err and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
