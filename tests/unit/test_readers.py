"""Readers: every format reads correctly, and bad data becomes DataIssues with file:line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from polytask.config import DatasetConfig
from polytask.data.readers import read_split


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def dataset(train: Path, **options) -> DatasetConfig:
    return DatasetConfig(train=train, **options)


def messages(issues) -> str:
    return "\n".join(str(issue) for issue in issues)


# --------------------------------------------------------------------------- csv / tsv


def test_csv_reads_text_pair_and_partial_labels(tmp_path):
    path = write(tmp_path / "train.csv", "text,other,label,topic\nhello there,x,pos,\n"
                 "bye now,y,,sport\n")
    records, issues = read_split(dataset(path, text_pair="other"), "train", ["label", "topic"])
    assert issues == []
    assert [(r.text, r.text_pair, r.words, r.line) for r in records] == [
        ("hello there", "x", None, 2), ("bye now", "y", None, 3)]
    assert records[0].fields == {"label": "pos", "topic": None}
    assert records[1].fields == {"label": None, "topic": "sport"}
    assert records[0].source == str(path)


def test_tsv_uses_tabs(tmp_path):
    path = write(tmp_path / "train.tsv", "label\ttext\npos\ta, b, c\n")
    records, issues = read_split(dataset(path), "train", ["label"])
    assert issues == []
    assert records[0].text == "a, b, c" and records[0].fields == {"label": "pos"}


def test_csv_bom_and_crlf_are_accepted(tmp_path):
    path = write(tmp_path / "train.csv", b"\xef\xbb\xbftext,label\r\nhi,a\r\nho,b\r\n")
    records, issues = read_split(dataset(path), "train", ["label"])
    assert issues == []
    assert [(r.text, r.fields["label"]) for r in records] == [("hi", "a"), ("ho", "b")]


def test_csv_line_numbers_follow_multiline_cells_and_blank_lines(tmp_path):
    path = write(tmp_path / "train.csv", 'text,label\n"two\nlines",a\n\nlast,b\n')
    records, issues = read_split(dataset(path), "train", ["label"])
    assert issues == []
    assert [(r.text, r.line) for r in records] == [("two\nlines", 2), ("last", 5)]


def test_csv_tokens_column_gives_words(tmp_path):
    path = write(tmp_path / "train.csv", "toks,tags\nNew York is big,B-LOC I-LOC O O\n")
    records, _ = read_split(dataset(path, tokens="toks"), "train", ["tags"])
    assert records[0].words == ["New", "York", "is", "big"]
    assert records[0].text == "New York is big"


def test_split_words_splits_text_on_whitespace(tmp_path):
    path = write(tmp_path / "train.csv", "text,tags\na  b c,O O O\n")
    records, _ = read_split(dataset(path), "train", ["tags"], split_words=True)
    assert records[0].words == ["a", "b", "c"] and records[0].text == "a  b c"


def test_csv_missing_columns_reported_once_on_line_1(tmp_path):
    path = write(tmp_path / "train.csv", "sentence,y\na,1\nb,2\n")
    records, issues = read_split(dataset(path), "train", ["label"])
    assert records == []
    text = messages(issues)
    assert f"{path}:1: [text] missing input column 'text'" in text
    assert "'sentence', 'y'" in text
    assert f"{path}:1: [label] missing label column 'label'" in text
    assert len(issues) == 2


def test_csv_missing_label_column_keeps_records(tmp_path):
    path = write(tmp_path / "train.csv", "text\na\n")
    records, issues = read_split(dataset(path), "train", ["label"])
    assert len(issues) == 1 and issues[0].line == 1
    assert records[0].fields == {"label": None}


def test_csv_row_with_wrong_cell_count(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,b,c\nok,x\n")
    records, issues = read_split(dataset(path), "train", ["label"])
    assert [r.text for r in records] == ["ok"]
    assert f"{path}:2:" in messages(issues)


def test_empty_text_reported_with_line(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\nfine,a\n   ,b\n")
    records, issues = read_split(dataset(path), "train", ["label"])
    assert len(records) == 1
    assert f"{path}:3: [text] empty input text" in messages(issues)


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"),
                min_size=1).filter(str.strip)


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(texts, st.sampled_from(["", "a", "b,c"])), min_size=1, max_size=5))
def test_csv_written_by_csv_module_reads_back(tmp_path_factory, rows):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([("text", "label"), *rows])
    path = write(tmp_path_factory.mktemp("csv") / "train.csv", buffer.getvalue())
    records, issues = read_split(dataset(path), "train", ["label"])
    assert issues == []
    assert [(r.text, r.fields["label"]) for r in records] == [(t, lab or None) for t, lab in rows]
    expected_lines = [2 + sum(t.count("\n") + 1 for t, _ in rows[:i]) for i in range(len(rows))]
    assert [r.line for r in records] == expected_lines


# --------------------------------------------------------------------------- jsonl


def test_jsonl_keeps_json_types_and_skips_blank_lines(tmp_path):
    rows = [{"text": "a", "tags": ["x", "y"], "score": 2.5}, {"text": "b", "score": 1}]
    path = write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows[:1]) + "\n\n"
                 + json.dumps(rows[1]) + "\n")
    records, issues = read_split(dataset(path), "train", ["tags", "score"])
    assert issues == []
    assert records[0].fields == {"tags": ["x", "y"], "score": 2.5}
    assert records[1].fields == {"tags": None, "score": 1}
    assert [r.line for r in records] == [1, 3]


def test_jsonl_tokens_as_list_or_string(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"w": ["a", "b"]}\n{"w": "c d e"}\n')
    records, issues = read_split(dataset(path, tokens="w"), "train", [])
    assert issues == []
    assert [r.words for r in records] == [["a", "b"], ["c", "d", "e"]]
    assert [r.text for r in records] == ["a b", "c d e"]


def test_jsonl_bad_lines_are_all_reported(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "ok"}\n{"text": \n[1, 2]\n{"label": "a"}\n'
                 '{"text": ""}\n{"text": 3}\n{"text": "fine"}\n')
    records, issues = read_split(dataset(path), "train", ["label"])
    assert [r.text for r in records] == ["ok", "fine"]
    text = messages(issues)
    assert f"{path}:2: [json] not valid JSON" in text
    assert f"{path}:3: [json] a JSON array, not an object" in text
    assert f"{path}:4: [text] no 'text' key" in text
    assert f"{path}:5: [text] empty input text" in text
    assert f"{path}:6: [text] 'text' must be a string" in text
    assert len(issues) == 5


def test_invalid_utf8_reported_on_its_line(tmp_path):
    path = write(tmp_path / "train.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"text": "caf\xe9"}\n'
                 b'{"text": "d"}\n')
    records, issues = read_split(dataset(path), "train", [])
    assert [r.text for r in records] == ["a", "b", "d"]
    assert len(issues) == 1
    assert f"{path}:3: [encoding] invalid UTF-8 byte 0xe9" in str(issues[0])


# --------------------------------------------------------------------------- files


def test_missing_and_empty_files(tmp_path):
    missing, issues = read_split(dataset(tmp_path / "nope.csv"), "train", [])
    assert missing == [] and "nope.csv: [file] file not found" in messages(issues)
    empty = write(tmp_path / "empty.jsonl", "\n\n")
    records, issues = read_split(dataset(empty), "train", [])
    assert records == [] and "empty.jsonl: [file] no records" in messages(issues)
    header_only = write(tmp_path / "header.csv", "text,label\n")
    _, issues = read_split(dataset(header_only), "train", ["label"])
    assert "header.csv: [file] no records" in messages(issues)


def test_unconfigured_split_reads_as_nothing(tmp_path):
    path = write(tmp_path / "train.csv", "text\na\n")
    assert read_split(dataset(path), "dev", []) == ([], [])


# --------------------------------------------------------------------------- conll


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O

Peter NNP B-NP B-PER
"""


def test_conll_sentences_and_tag_columns(tmp_path):
    path = write(tmp_path / "train.conll", CONLL.replace("\n", "\r\n"))
    records, issues = read_split(dataset(path), "train", ["tags", "1", "-1"])
    assert issues == []
    assert [r.words for r in records] == [["EU", "rejects"], ["Peter"]]
    assert [r.text for r in records] == ["EU rejects", "Peter"]
    assert [r.line for r in records] == [3, 6]
    assert records[0].fields == {"tags": ["B-ORG", "O"], "1": ["NNP", "VBZ"],
                                 "-1": ["B-ORG", "O"]}


def test_conll_tab_separated(tmp_path):
    path = write(tmp_path / "train.conll", "a\tB-X\nb\tO\n")
    records, issues = read_split(dataset(path), "train", ["tags"])
    assert issues == [] and records[0].fields["tags"] == ["B-X", "O"]


def test_conll_bad_lines(tmp_path):
    path = write(tmp_path / "train.conll", "a O\nlonely\n\nb O\n\nc O\n")
    records, issues = read_split(dataset(path), "train", ["tags", "5", "ner"])
    assert records == []
    text = messages(issues)
    assert f"{path}:2: [tokens] expected a word and its tag(s)" in text
    assert f"{path}:4: [5] no column 5" in text
    assert f"{path}: [ner] a conll label: must be 'tags'" in text


# --------------------------------------------------------------------------- intent_slot


def intent_slot(folder: Path, seq_in: str, seq_out: str, label: str) -> Path:
    write(folder / "seq.in", seq_in)
    write(folder / "seq.out", seq_out)
    write(folder / "label", label)
    return folder


def test_intent_slot_folder(tmp_path):
    folder = intent_slot(tmp_path / "train", "book a flight\nhi\n", "O O B-obj\nO\n",
                         "book\r\ngreet\r\n")
    records, issues = read_split(dataset(folder), "train", ["intent", "slots"])
    assert issues == []
    assert records[0].words == ["book", "a", "flight"] and records[0].text == "book a flight"
    assert records[0].fields == {"intent": "book", "slots": ["O", "O", "B-obj"]}
    assert records[1].fields == {"intent": "greet", "slots": ["O"]}
    assert [r.line for r in records] == [1, 2]


def test_intent_slot_mismatches(tmp_path):
    folder = intent_slot(tmp_path / "train", "a b\nc\nd\n", "O O\nO O\nO\n", "x\ny\n")
    records, issues = read_split(dataset(folder), "train", ["intent", "slots"])
    text = messages(issues)
    assert f"{folder / 'label'}:3: [label] label has 2 lines but seq.in has 3" in text
    assert f"{folder / 'seq.out'}:2: [slots] 1 words in seq.in but 2 tags" in text
    assert len(issues) == 2
    assert [r.fields["slots"] for r in records] == [["O", "O"], None]


def test_intent_slot_missing_folder_and_file(tmp_path):
    _, issues = read_split(dataset(tmp_path / "nowhere"), "train", ["intent"])
    assert "nowhere: [file] folder not found" in messages(issues)
    folder = tmp_path / "train"
    write(folder / "seq.in", "a\n")
    _, issues = read_split(dataset(folder), "train", ["intent", "slots", "domain"])
    text = messages(issues)
    assert f"{folder / 'label'}: [file] file not found" in text
    assert f"{folder / 'seq.out'}: [file] file not found" in text
    assert "unknown intent_slot field 'domain'" in text
