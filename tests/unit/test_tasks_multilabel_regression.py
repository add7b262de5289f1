"""The multilabel and regression task types: parsing, targets, a learnable toy problem, metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from polytask.config import TaskConfig
from polytask.tasks.base import TASK_TYPES, build_task
from polytask.tasks.multilabel import MultiLabel, f1_scores
from polytask.tasks.regression import Regression


def multilabel(**overrides) -> MultiLabel:
    config = TaskConfig(name="topics", type="multilabel", dataset="d", label="topics", **overrides)
    return build_task(config)


def regression(**overrides) -> Regression:
    config = TaskConfig(name="score", type="regression", dataset="d", label="score", **overrides)
    return build_task(config)


def train_linear_head(task, features: torch.Tensor, target: torch.Tensor,
                      present: torch.Tensor, steps: int = 100) -> tuple[float, float]:
    """First and last loss of a linear head trained with Adam on fixed features."""
    head = task.build_head(features.size(1), 0.0)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        loss = task.loss(head(features), target, present, attention_mask=None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


# ------------------------------------------------------------------------------ multilabel


def test_registered_by_name():
    assert TASK_TYPES.get("multilabel") is MultiLabel
    assert TASK_TYPES.get("regression") is Regression


@pytest.mark.parametrize("raw, value", [
    (["b", "a"], ["b", "a"]),
    ("a|b", ["a", "b"]),
    (" a | b |", ["a", "b"]),
    ("a|a", ["a"]),
    ("", []),
    ("   ", []),
    ([], []),
    (None, None),
])
def test_multilabel_parse(raw, value):
    assert multilabel().parse(raw, None) == (value, None)


def test_multilabel_parse_custom_separator_and_declared_labels():
    task = multilabel(label_separator=",", labels=["sports", "news"])
    assert task.parse("sports, news", None) == (["sports", "news"], None)
    value, problem = task.parse("sports,weather", None)
    assert value is None and "'weather'" in problem and "declared labels" in problem


def test_multilabel_fit_encode_collate():
    task = multilabel()
    task.fit([["b"], None, ["a", "c"], []])
    assert task.labels == ["a", "b", "c"]
    targets = [task.encode(v, []) for v in (["c", "a"], None, [])]
    assert targets == [[2, 0], None, []]
    batch = task.collate(targets, seq_len=9)
    assert batch.dtype == torch.float and batch.shape == (3, 3)
    assert batch.tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert task.present(targets).tolist() == [True, False, True]


def test_multilabel_loss_falls_on_learnable_problem():
    torch.manual_seed(0)
    features = torch.randn(256, 8)
    rule = torch.randn(8, 3)
    task = multilabel()
    names = ["x", "y", "z"]
    values = [[n for n, on in zip(names, row) if on] for row in (features @ rule > 0).tolist()]
    values[::7] = [None] * len(values[::7])  # some examples unlabelled for this task
    task.fit(values)
    targets = [task.encode(v, []) for v in values]
    first, last = train_linear_head(task, features, task.collate(targets, 1), task.present(targets))
    assert last < 0.5 * first


def test_multilabel_loss_ignores_absent_rows_and_empty_batches():
    task = multilabel(labels=["a", "b"])
    task.fit([])
    logits = torch.tensor([[5.0, -5.0], [100.0, 100.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    loss = task.loss(logits, target, torch.tensor([True, False]), None)
    assert loss.item() < 0.01  # the absent row's huge logits would add ~100 if counted
    empty = task.loss(logits, target, torch.tensor([False, False]), None)
    empty.backward()
    assert empty.item() == 0.0


def test_multilabel_decode_explain_scores():
    task = multilabel(labels=["a", "b", "c"])
    task.fit([])
    logits = torch.tensor([[2.0, -2.0, 0.0], [-3.0, -3.0, -3.0]])
    assert task.decode(logits, [], None) == [["a", "c"], []]
    explained = task.explain(logits, [], None)
    assert explained[0]["labels"] == ["a", "c"] and explained[1]["labels"] == []
    assert explained[0]["scores"]["b"] == pytest.approx(1 / (1 + math.exp(2)), abs=1e-6)
    scores = task.scores(logits)
    assert isinstance(scores, np.ndarray) and scores.shape == (2, 3)


def test_multilabel_metrics_hand_example():
    task = multilabel(labels=["a", "b"])
    task.fit([])
    golds = [["a"], ["a", "b"], []]
    preds = [["a"], ["b"], ["b"]]
    # a: tp 1, fn 1 -> F1 2/3; b: tp 1, fp 1 -> F1 2/3; pooled tp 2, fp 1, fn 1 -> F1 2/3.
    scores = np.array([[0.9, 0.7], [0.4, 0.6], [0.1, 0.1]])
    # AUC a: positives 0.9, 0.4 above negative 0.1 -> 1.0; b: positive 0.6 beats 0.1, not 0.7 -> 0.5
    result = task.metrics(preds, golds, scores)
    assert result["micro_f1"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx(2 / 3)
    assert result["exact_match"] == pytest.approx(1 / 3)
    assert result["auc"] == pytest.approx(0.75)


def test_multilabel_metrics_ignore_unseen_gold_labels_except_exact_match():
    task = multilabel()
    task.fit([["a"], ["b"]])
    result = task.metrics([["a"]], [["a", "never_seen"]], np.array([[0.9, 0.1]]))
    assert result["micro_f1"] == 1.0 and result["macro_f1"] == 1.0
    assert result["exact_match"] == 0.0
    assert "auc" not in result  # one example: no label has both classes


def test_multilabel_f1_matches_sklearn_on_random_sets():
    from sklearn.metrics import f1_score
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.random((50, 6)) < 0.3, rng.random((50, 6)) < 0.3
    y_true[:, 5] = y_pred[:, 5] = False  # a label nobody uses stays out of the macro mean
    result = f1_scores(y_true, y_pred)
    assert result["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert result["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=range(5), average="macro"))


@pytest.mark.parametrize("labels, golds, micro", [
    (["a"], [["a"], ["a"]], 1.0),  # one label: sklearn would read this as binary
    ([], [[], []], 0.0),           # no label at all: defined, not a crash
])
def test_multilabel_metrics_degenerate_label_sets(labels, golds, micro):
    task = multilabel()
    task.fit(golds)
    assert task.labels == labels
    result = task.metrics(golds, golds)
    assert result["micro_f1"] == micro and result["macro_f1"] == micro
    assert result["exact_match"] == 1.0


def test_multilabel_state_round_trip():
    task = multilabel()
    task.fit([["b", "a"]])
    restored = build_task(task.config, task.state())
    assert restored.labels == ["a", "b"] and restored.num_outputs == 2
    assert restored.encode(["b"], []) == [1]


# ------------------------------------------------------------------------------ regression


@pytest.mark.parametrize("raw, value", [
    ("3.5", 3.5), (" -2 ", -2.0), (4, 4.0), (0.25, 0.25), ("1e3", 1000.0),
    (None, None), ("", None), ("  ", None),
])
def test_regression_parse_good_and_missing(raw, value):
    assert regression().parse(raw, None) == (value, None)


@pytest.mark.parametrize("raw, shown", [
    ("abc", "'abc' is not a number"), ("nan", "'nan' is not a finite"),
    (float("inf"), "inf is not a finite"), (True, "True is not a number"),
    (["1"], "['1'] is not a number"),
])
def test_regression_parse_bad(raw, shown):
    value, problem = regression().parse(raw, None)
    assert value is None and problem.startswith(shown)


def test_regression_fit_normalizes_only_when_asked():
    plain = regression()
    plain.fit([1.0, 2.0, 3.0])
    assert (plain.mean, plain.std) == (0.0, 1.0) and plain.encode(3.0, []) == 3.0
    scaled = regression(normalize_target=True)
    scaled.fit([1.0, None, 2.0, 3.0])
    assert scaled.mean == pytest.approx(2.0) and scaled.std == pytest.approx(math.sqrt(2 / 3))
    assert scaled.encode(3.0, []) == pytest.approx(1 / math.sqrt(2 / 3))
    constant = regression(normalize_target=True)
    constant.fit([5.0, 5.0])
    assert constant.std == 1e-8 and constant.encode(5.0, []) == 0.0


def test_regression_collate_and_shapes():
    task = regression()
    task.fit([1.0])
    assert task.labels == [] and task.num_outputs == 1
    targets = [task.encode(v, []) for v in (1.5, None, -2.0)]
    batch = task.collate(targets, seq_len=4)
    assert batch.dtype == torch.float and batch.tolist() == [1.5, 0.0, -2.0]
    assert task.build_head(8, 0.0)(torch.randn(3, 8)).shape == (3, 1)


def test_regression_loss_falls_on_learnable_problem():
    torch.manual_seed(0)
    features = torch.randn(256, 8)
    values = (features @ torch.randn(8) * 40 + 300).tolist()
    values[::5] = [None] * len(values[::5])
    task = regression(normalize_target=True)
    task.fit(values)
    targets = [task.encode(v, []) for v in values]
    first, last = train_linear_head(task, features, task.collate(targets, 1), task.present(targets))
    assert last < 0.1 * first


def test_regression_loss_uses_present_rows_only():
    task = regression()
    logits = torch.tensor([[1.0], [50.0]])
    loss = task.loss(logits, torch.tensor([3.0, 0.0]), torch.tensor([True, False]), None)
    assert loss.item() == pytest.approx(4.0)


def test_regression_decode_denormalizes():
    task = regression(normalize_target=True)
    task.fit([8.0, 12.0])  # mean 10, std 2
    assert task.decode(torch.tensor([[0.0], [1.0], [-0.5]]), [], None) == pytest.approx([10, 12, 9])
    assert task.decode(torch.tensor([1.0]), [], None) == pytest.approx([12.0])


def test_regression_metrics_hand_values():
    task = regression()
    assert task.primary_metric == "mse" and task.higher_is_better is False
    result = task.metrics([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    # errors 1, 2, 3: mse (1 + 4 + 9) / 3, mae 2; a perfect linear relation correlates at 1
    assert result["mse"] == pytest.approx(14 / 3)
    assert result["rmse"] == pytest.approx(math.sqrt(14 / 3))
    assert result["mae"] == pytest.approx(2.0)
    assert result["pearson"] == pytest.approx(1.0)
    assert result["spearman"] == pytest.approx(1.0)
    assert task.metrics([3.0, 2.0, 1.0], [1.0, 2.0, 4.0])["spearman"] == pytest.approx(-1.0)


def test_regression_correlations_are_zero_when_undefined():
    task = regression()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the constant-input warning must not leak
        constant = task.metrics([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert constant["pearson"] == 0.0 and constant["spearman"] == 0.0
    assert constant["mse"] == pytest.approx(2 / 3)
    single = task.metrics([1.0], [3.0])
    assert single["pearson"] == 0.0 and single["mse"] == pytest.approx(4.0)


def test_regression_state_round_trip():
    task = regression(normalize_target=True)
    task.fit([0.0, 10.0])
    state = task.state()
    assert state == {"labels": [], "mean": 5.0, "std": 5.0}
    restored = build_task(task.config, state)
    assert (restored.mean, restored.std, restored.labels) == (5.0, 5.0, [])
    assert restored.decode(torch.tensor([[1.0]]), [], None) == pytest.approx([10.0])
