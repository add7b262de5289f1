"""Hostile YAML: alias bombs, self-referencing anchors and deep nesting are refused with
file:line before anything expands them; ordinary anchors still work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import run_in_process  # noqa: E402

from polytask.config import load_config  # noqa: E402
from polytask.errors import ConfigError  # noqa: E402


def config_text(tmp_path: Path, tiny_encoder: Path, options_yaml: str) -> Path:
    """The toy config with ``options_yaml`` (indented under weighting.options) appended."""
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    text = yaml.safe_dump(raw, sort_keys=False) + "weighting:\n  name: equal\n  options:\n" + options_yaml
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def bomb(levels: int = 9) -> str:
    """Each level lists the previous one 10 times: 10**levels values from a few hundred bytes."""
    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def line_of(path: Path, needle: str) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def test_alias_bomb_in_a_free_form_mapping_is_refused_with_its_line(tmp_path, tiny_encoder, monkeypatch, capsys):
    path = config_text(tmp_path, tiny_encoder, bomb())
    with pytest.raises(ConfigError, match="limit 100,000") as caught:
        load_config(path)
    # The anchor repeated the most (the deepest level's argument) is named with its line.
    assert f"{path}:{line_of(path, 'l7: &l7')}:" in str(caught.value)
    code, err = run_in_process(monkeypatch, capsys, "validate-data", path)
    assert code == 2 and "aliases of this anchor" in err
    assert not (tmp_path / "run").exists()


def test_self_referencing_anchor_is_refused(tmp_path, tiny_encoder):
    path = config_text(tmp_path, tiny_encoder, "    loop: &loop [a, *loop]\n")
    with pytest.raises(ConfigError, match=rf"{path}:{line_of(path, 'loop:')}: an alias refers to its own anchor"):
        load_config(path)


def test_deeply_nested_yaml_is_a_config_error(tmp_path, tiny_encoder):
    path = config_text(tmp_path, tiny_encoder, "    deep: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_ordinary_anchors_still_load(tmp_path, tiny_encoder):
    path = config_text(tmp_path, tiny_encoder, "    base: &base {beta: 0.5}\n    copy: *base\n")
    assert load_config(path).weighting.options["copy"] == {"beta": 0.5}
