"""Δm against hand-computed values: sign-aware for lower-is-better metrics, over seeds."""

from __future__ import annotations

import math

import pytest

from polytask.evaluation.delta_m import delta_m, delta_m_over_seeds, mean_metrics

HIGHER = {"a/accuracy": True, "b/mse": False}


def test_single_comparison_by_hand() -> None:
    # accuracy 0.7 -> 0.77 is +10 %; MSE 2.0 -> 1.5 is a 25 % gain (lower is better)
    assert delta_m({"a/accuracy": 0.77, "b/mse": 1.5}, {"a/accuracy": 0.7, "b/mse": 2.0}, HIGHER) == pytest.approx(17.5)
    # a worse MSE counts against the method
    assert delta_m({"a/accuracy": 0.7, "b/mse": 3.0}, {"a/accuracy": 0.7, "b/mse": 2.0}, HIGHER) == pytest.approx(-25.0)


def test_only_listed_metrics_count() -> None:
    method = {"a/accuracy": 0.9, "a/macro_f1": 0.1}
    assert delta_m(method, {"a/accuracy": 0.9, "a/macro_f1": 0.5}, {"a/accuracy": True}) == pytest.approx(0.0)


def test_over_seeds_uses_the_seed_mean_baseline() -> None:
    baselines = [{"a/accuracy": 0.8, "b/mse": 2.0}, {"a/accuracy": 0.6, "b/mse": 2.0}]  # mean 0.7, 2.0
    methods = [{"a/accuracy": 0.77, "b/mse": 1.5}, {"a/accuracy": 0.63, "b/mse": 2.5}]
    mean, std, values = delta_m_over_seeds(methods, baselines, HIGHER)
    assert values == pytest.approx([17.5, -17.5])
    assert mean == pytest.approx(0.0)
    assert std == pytest.approx(math.sqrt(2 * 17.5**2))  # sample std (ddof=1)
    assert mean_metrics(baselines) == pytest.approx({"a/accuracy": 0.7, "b/mse": 2.0})


def test_three_seeds_and_one_seed() -> None:
    baselines = [{"a/accuracy": 0.5}] * 3
    methods = [{"a/accuracy": 0.55}, {"a/accuracy": 0.6}, {"a/accuracy": 0.65}]  # +10, +20, +30 %
    mean, std, _ = delta_m_over_seeds(methods, baselines, {"a/accuracy": True})
    assert (mean, std) == pytest.approx((20.0, 10.0))
    assert delta_m_over_seeds(methods[:1], baselines[:1], {"a/accuracy": True})[1] == 0.0


def test_missing_metric_is_named() -> None:
    with pytest.raises(KeyError, match="b/mse"):
        delta_m({"a/accuracy": 0.5}, {"a/accuracy": 0.5, "b/mse": 1.0}, HIGHER)
