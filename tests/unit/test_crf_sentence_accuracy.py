"""CRF decoding equals brute force over the paths the scheme allows on tiny cases; sentence
accuracy (exact match over tasks)."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polytask.config import TaskConfig
from polytask.data.features import Feature
from polytask.evaluation.evaluate import score_tasks
from polytask.tasks.classification import Classification
from polytask.tasks.tag_schemes import ill_formed_at
from polytask.tasks.token_classification import TokenClassification, word_level

TAGS = ["O", "B-x", "I-x"]


def crf_task() -> tuple[TokenClassification, torch.nn.Module]:
    task = TokenClassification(TaskConfig(name="t", type="token_classification", dataset="d",
                                          label="tags", crf=True))
    task.fit([TAGS])
    return task, task.build_head(hidden_size=4, dropout=0.0)


def brute_force(crf, emissions: torch.Tensor, labels: list[str], scheme: str | None) -> list[int]:
    def score(path):
        total = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
        total = total + sum(emissions[i, tag] for i, tag in enumerate(path))
        return total + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))

    paths = [p for p in itertools.product(range(len(TAGS)), repeat=emissions.size(0))
             if scheme is None or ill_formed_at(scheme, [labels[i] for i in p]) is None]
    with torch.no_grad():
        return list(max(paths, key=lambda p: float(score(p))))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), words=st.integers(1, 4), split=st.booleans(),
       constrained=st.booleans())
def test_viterbi_equals_brute_force(seed, words, split, constrained):
    torch.manual_seed(seed)
    task, head = crf_task()
    # Well-formed bio train tags constrain Viterbi; a model saved before schemes did not.
    task.constrain = constrained
    with torch.no_grad():
        for p in head.crf.parameters():
            p.normal_()
    # Sub-token layout: [CLS], words (the first optionally split in two pieces), [SEP].
    word_ids = [None] + ([0] if split else []) + list(range(words)) + [None]
    logits = torch.randn(1, len(word_ids), len(TAGS))
    predicted = task.decode(logits, [word_ids], torch.ones(1, len(word_ids)), head=head)[0]
    first = [i for i, w in enumerate(word_ids) if w is not None and w not in word_ids[:i]]
    expected = brute_force(head.crf, logits[0, first], task.labels,
                           "bio" if constrained else None)
    assert predicted == [task.labels[i] for i in expected]


def test_word_level_gathers_first_subtokens_in_order():
    emissions = torch.arange(12.0).view(2, 3, 2)
    first = torch.tensor([[False, True, True], [True, False, False]])
    gathered, mask = word_level(emissions, first)
    assert gathered[0].tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert gathered[1, 0].tolist() == [6.0, 7.0]
    assert mask.tolist() == [[True, True], [True, False]]


def test_crf_loss_is_finite_and_trains():
    torch.manual_seed(0)
    task, head = crf_task()
    target = torch.tensor([[-100, 0, 1, 2, -100], [-100, 1, -100, 0, -100]])
    logits = torch.randn(2, 5, 3, requires_grad=True)
    loss = task.loss(logits, target, torch.tensor([True, True]), torch.ones(2, 5), head=head)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


def test_sentence_accuracy_counts_inputs_with_every_task_right():
    intent = Classification(TaskConfig(name="intent", type="classification", dataset="d", label="i"))
    slots = TokenClassification(TaskConfig(name="slots", type="token_classification", dataset="d",
                                           label="s"))
    golds = [("a", ["O", "B-x"]), ("b", ["O"]), ("a", ["B-x"]), ("b", None)]
    features = [Feature([1], None, [], golds={"intent": i, "slots": s}) for i, s in golds]
    results = {"intent": {"predictions": ["a", "b", "b", "b"], "scores": None},
               "slots": {"predictions": [["O", "B-x"], ["B-x"], ["B-x"], ["O"]], "scores": None}}
    metrics = score_tasks([intent, slots], features, results, "nlu")
    # Row 1 both right; row 2 slots wrong; row 3 intent wrong; row 4 has no slot label: excluded.
    assert metrics["nlu/exact_match"] == 1 / 3
    assert metrics["intent/accuracy"] == 0.75


def test_crf_decodes_inputs_without_words_as_empty():
    """Only special tokens left (an input of control characters): no tags, no crash."""
    task, head = crf_task()
    logits = torch.randn(2, 4, 3)
    word_ids = [[None, None], [None, 0, 1, None]]
    predicted = task.decode(logits, word_ids, torch.ones(2, 4), head=head)
    assert predicted[0] == [] and len(predicted[1]) == 2
