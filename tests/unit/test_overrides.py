"""``--set`` / tune overrides: dotted keys into the raw config, including name shorthands."""

from __future__ import annotations

import pytest

from polytask.errors import ConfigError
from polytask.yaml_io import apply_overrides


def test_override_inside_a_section_written_as_a_name_expands_the_shorthand():
    raw = {"weighting": "static", "sampler": "temperature", "train": {"lr": 1e-3}}
    apply_overrides(raw, ["weighting.weights.color=2.5", "sampler.temperature=3", "train.lr=5.0e-4"])
    assert raw == {"weighting": {"name": "static", "weights": {"color": 2.5}},
                   "sampler": {"name": "temperature", "temperature": 3}, "train": {"lr": 5e-4}}


def test_override_of_the_name_itself_keeps_the_shorthand_meaning():
    raw = {"weighting": "equal"}
    apply_overrides(raw, ["weighting.name=uncertainty"])
    assert raw == {"weighting": {"name": "uncertainty"}}


def test_override_through_a_number_is_still_refused():
    with pytest.raises(ConfigError, match="'x' is not a key"):
        apply_overrides({"train": {"lr": 1e-3}}, ["train.lr.x=1"])
