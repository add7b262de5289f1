"""polytask monitor on hand-made predictions: exactly the alerts computed by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from polytask.errors import ConfigError, DataValidationError
from polytask.monitoring import Monitor, check_against_model, load_rules


def clf(label: str, score: float, other: str = "positive") -> dict:
    return {"label": label, "score": score, "scores": {label: score, other: round(1 - score, 6)}}


def item(id_: str, time: str, topic: str, sentiment: str, score: float, intensity: float) -> dict:
    return {"id": id_, "time": time, "predictions": {
        "topic": topic, "sentiment": clf(sentiment, score), "intensity": {"prediction": intensity}}}


STREAM = [
    item("a", "2024-05-01T09:00:00Z", "banking", "negative", 0.90, 0.2),  # match, window 09h
    item("b", "2024-05-01T09:10:00Z", "banking", "negative", 0.60, 0.9),  # score too low
    item("c", "2024-05-01T09:59:59Z", "banking", "negative", 0.80, 0.1),  # match: 2nd -> fires
    item("d", "2024-05-01T10:00:00Z", "banking", "negative", 0.95, 0.3),  # boundary: window 10h
    item("e", "2024-05-01T10:30:00Z", "tech", "negative", 0.99, 0.95),    # wrong topic
    item("f", "2024-05-01T11:05:00Z", "banking", "negative", 0.75, 0.85), # match, window 11h
    item("g", "2024-05-01T11:06:00Z", "banking", "negative", 0.71, 0.0),  # match: fires 11h
    item("h", "2024-05-01T11:07:00Z", "banking", "negative", 0.70, 0.0),  # match (>= is inclusive)
]

RULES = {
    "window": {"size": "1h"},
    "rules": [
        {"name": "bank_negative", "min_items": 2,
         "when": [{"task": "topic", "equals": "banking"},
                  {"task": "sentiment", "equals": "negative", "min_score": 0.7}]},
        {"name": "intense", "window": {"items": 3}, "min_items": 1,
         "when": [{"task": "intensity", "min": 0.8}]},
    ],
}


def test_alerts_match_the_hand_computed_ones():
    alerts = Monitor(RULES).evaluate(STREAM)
    assert alerts == [
        # "intense" count windows of 3: [b] in items 0-3 fires at b (position 1)
        {"rule": "intense", "window": {"kind": "items", "start": 0, "end": 3}, "count": 1,
         "min_items": 1, "items_in_window": 3, "ids": ["b"], "fired_by": "b"},
        {"rule": "bank_negative", "window": {"kind": "time", "start": "2024-05-01T09:00:00+00:00",
                                            "end": "2024-05-01T10:00:00+00:00"},
         "count": 2, "min_items": 2, "items_in_window": 3, "ids": ["a", "c"], "fired_by": "c"},
        {"rule": "intense", "window": {"kind": "items", "start": 3, "end": 6}, "count": 2,
         "min_items": 1, "items_in_window": 3, "ids": ["e", "f"], "fired_by": "e"},
        {"rule": "bank_negative", "window": {"kind": "time", "start": "2024-05-01T11:00:00+00:00",
                                            "end": "2024-05-01T12:00:00+00:00"},
         "count": 3, "min_items": 2, "items_in_window": 3, "ids": ["f", "g", "h"], "fired_by": "g"},
    ]


def test_window_boundaries_and_numeric_timestamps():
    rules = {"window": {"size": 10}, "rules": [{"name": "any", "min_items": 1,
                                                "when": [{"task": "topic", "equals": "x"}]}]}
    items = [{"id": i, "time": t, "predictions": {"topic": "x"}} for i, t in enumerate([0, 9.999, 10, 20])]
    alerts = Monitor(rules).evaluate(items)
    assert [(a["window"]["start"], a["ids"]) for a in alerts] == [
        ("1970-01-01T00:00:00+00:00", [0, 1]), ("1970-01-01T00:00:10+00:00", [2]),
        ("1970-01-01T00:00:20+00:00", [3])]


def test_naive_timestamps_are_utc_and_offsets_are_converted():
    rules = {"window": {"size": "1h"}, "rules": [{"name": "r", "when": [{"task": "t", "equals": "x"}]}]}
    items = [{"time": "2024-01-01T10:30:00", "predictions": {"t": "x"}},
             {"time": "2024-01-01T12:45:00+02:00", "predictions": {"t": "x"}}]  # = 10:45 UTC
    [alert] = Monitor(rules).evaluate(items)
    assert alert["window"]["start"] == "2024-01-01T10:00:00+00:00" and alert["ids"] == [1, 2]


def test_out_of_order_is_an_error_naming_the_line_or_sorted_on_request():
    shuffled = [STREAM[0], STREAM[3], STREAM[2], *STREAM[4:]]  # d (10:00) before c (09:59:59)
    with pytest.raises(DataValidationError) as caught:
        Monitor(RULES).evaluate(shuffled, source="s.jsonl", lines=[1, 2, 3, 5, 6, 7, 8])
    assert "s.jsonl:3: [time] out of order" in str(caught.value)
    assert "line 2" in str(caught.value)
    sorted_rules = {**RULES, "out_of_order": "sort", "rules": RULES["rules"][:1]}
    alerts = Monitor(sorted_rules).evaluate(shuffled)
    assert [a["ids"] for a in alerts] == [["a", "c"], ["f", "g", "h"]]


def test_stream_problems_are_all_reported_with_their_lines():
    items = [{"time": "yesterday", "predictions": {"topic": "x"}},
             {"time": 5, "text": "no predictions"},
             {"predictions": {"topic": "x"}},
             {"time": 6, "predictions": {"other": "x"}},
             {"time": 7, "predictions": {"topic": "x", "sentiment": "negative"}}]
    with pytest.raises(DataValidationError) as caught:
        Monitor(RULES).evaluate(items, source="in.jsonl")
    text = str(caught.value)
    assert "in.jsonl:1: [time] not an ISO 8601 timestamp: 'yesterday'" in text
    assert "in.jsonl:2: [predictions] no \"predictions\" object" in text
    assert "in.jsonl:3: [time] no 'time' timestamp" in text
    assert "in.jsonl:4: [predictions] rule 'bank_negative': no prediction for task 'topic'" in text
    assert "in.jsonl:5: [predictions] rule 'bank_negative': task 'sentiment': min_score needs" in text


def test_multilabel_and_entities_and_max():
    rules = {"window": {"items": 10}, "rules": [
        {"name": "ml", "when": [{"task": "tags", "equals": "fraud", "min_score": 0.5}]},
        {"name": "ner", "when": [{"task": "ner", "equals": "ORG"}, {"task": "level", "max": 0.2}]}]}
    items = [{"id": 1, "predictions": {"tags": {"labels": ["fraud"], "scores": {"fraud": 0.6}},
                                       "ner": {"tags": ["B-ORG"], "entities": [{"type": "ORG", "start": 0, "end": 1}]},
                                       "level": {"prediction": 0.2}}},
             {"id": 2, "predictions": {"tags": {"labels": [], "scores": {"fraud": 0.4}},
                                       "ner": {"tags": ["O"], "entities": []}, "level": 0.1}}]
    alerts = Monitor(rules).evaluate(items)
    assert [(a["rule"], a["ids"]) for a in alerts] == [("ml", [1]), ("ner", [1])]


def test_rules_file_errors_carry_file_and_line(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("window:\n  size: 1h\nrules:\n  - name: r\n    min_item: 2\n"
                    "    when:\n      - task: t\n        equals: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules.yaml:5: \[rules.0.min_item\] unknown key \(did you mean 'min_items'\?\)"):
        load_rules(path)
    path.write_text("rules:\n  - name: r\n    when:\n      - task: t\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert "rules.yaml:4: [rules.0.when.0] a condition needs at least one of" in str(caught.value)
    path.write_text("rules:\n  - name: r\n    when:\n      - {task: t, equals: x}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rule\(s\) \['r'\] have no window"):
        load_rules(path)
    path.write_text("window: {size: 1 hour}\nrules: [{name: r, when: [{task: t, equals: x}]}]\n")
    with pytest.raises(ConfigError, match=r"rules.yaml:1: \[window.size\] size '1 hour'"):
        load_rules(path)


def test_rules_are_checked_against_the_model_tasks(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("window: {items: 5}\nrules:\n  - name: r\n    when:\n"
                    "      - {task: sentiment, equals: angry}\n      - {task: intensity, min_score: 0.5}\n"
                    "      - {task: topics, min: 1}\n      - {task: nope, equals: x}\n", encoding="utf-8")
    task = lambda kind, labels=(): SimpleNamespace(config=SimpleNamespace(type=kind), labels=list(labels))  # noqa: E731
    tasks = {"sentiment": task("classification", ["negative", "positive"]),
             "intensity": task("regression"), "topics": task("multilabel", ["a"])}
    with pytest.raises(ConfigError) as caught:
        check_against_model(load_rules(path), tasks)
    text = str(caught.value)
    assert "rules.yaml:5: [rules.0.when.0.equals] task 'sentiment' has no label 'angry'" in text
    assert "rules.yaml:6: [rules.0.when.1.min_score] task 'intensity' is regression" in text
    assert "rules.yaml:7: [rules.0.when.2.min] task 'topics' is multilabel" in text
    assert "rules.yaml:8: [rules.0.when.3.task] unknown task 'nope'" in text
