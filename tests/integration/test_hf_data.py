"""Data from the Hugging Face world: an in-memory Dataset / DatasetDict / DataFrame per split,
parquet written by pyarrow, a save_to_disk folder; ClassLabel names reach predictions;
``validation`` is ``dev``; problems name the dataset, split and row."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from toy import COLORS, sentence

import polytask
from polytask.errors import DataValidationError

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
FEATURES = datasets.Features({"text": datasets.Value("string"),
                              "color": datasets.ClassLabel(names=COLORS)})
TASK = {"name": "color", "type": "classification", "dataset": "toy", "label": "color"}


def rows(n: int, seed: int = 0) -> dict[str, list]:
    rng = random.Random(seed)
    made = [sentence(rng) for _ in range(n)]
    return {"text": [r["text"] for r in made], "color": [COLORS.index(r["color"]) for r in made]}


def config(folder: Path, encoder: Path, toy, **train) -> dict:
    return {"model": {"encoder": str(encoder), "max_length": 32}, "datasets": {"toy": toy},
            "tasks": [TASK], "train": {"output_dir": str(folder / "run"), "batch_size": 8,
                                       "max_steps": 2, "eval_every": 2, "progress": False, **train}}


@pytest.fixture(scope="module")
def dict_run(tmp_path_factory, tiny_encoder) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("hf")
    dsd = datasets.DatasetDict(train=datasets.Dataset.from_dict(rows(32), features=FEATURES),
                               validation=datasets.Dataset.from_dict(rows(8, 1), features=FEATURES))
    return folder, polytask.train(config(folder, tiny_encoder, dsd))


def test_datasetdict_with_validation_trains_and_evaluates_dev(dict_run):
    folder, results = dict_run
    assert "color/accuracy" in results["dev"]
    saved = (folder / "run" / "config.yaml").read_text(encoding="utf-8")
    assert "<in-memory Dataset toy/train>" in saved and "<in-memory Dataset toy/dev>" in saved


def test_classlabel_names_reach_predictions(dict_run):
    folder, _ = dict_run
    [prediction] = polytask.predict(folder / "run" / "model", ["a red cat"])
    assert prediction["color"]["label"] in COLORS
    assert set(prediction["color"]["scores"]) == set(COLORS)


def test_evaluate_split_validation_is_dev(dict_run, tiny_encoder):
    folder, _ = dict_run
    dev = datasets.Dataset.from_dict(rows(8, 1), features=FEATURES)
    raw = config(folder, tiny_encoder, {"train": dev, "validation": dev})
    results = polytask.evaluate(folder / "run" / "model", raw, splits=["validation"])
    assert set(results) == {"dev"} and "color/accuracy" in results["dev"]


def test_train_from_in_memory_dataset_and_dataframe(tmp_path, tiny_encoder):
    pd = pytest.importorskip("pandas")
    train = datasets.Dataset.from_dict(rows(24), features=FEATURES)
    dev = pd.DataFrame({"text": ["a red cat", "the blue dog"], "color": ["red", "blue"]})
    results = polytask.train(config(tmp_path, tiny_encoder, {"train": train, "dev": dev}, max_steps=1))
    assert "color/accuracy" in results["dev"]


def test_train_from_parquet_written_by_pyarrow(tmp_path, tiny_encoder):
    data = rows(24)
    table = pa.table({"text": data["text"], "color": [COLORS[i] for i in data["color"]]})
    pq.write_table(table, tmp_path / "train.parquet")
    raw = config(tmp_path, tiny_encoder, {"train": str(tmp_path / "train.parquet")}, max_steps=1)
    assert polytask.validate_data(raw)["toy"]["train"] == {"rows": 24, "usable": {"color": 24}}
    polytask.train(raw)
    assert (tmp_path / "run" / "model").is_dir()


def test_train_from_save_to_disk_folder(tmp_path, tiny_encoder):
    datasets.Dataset.from_dict(rows(24), features=FEATURES).save_to_disk(tmp_path / "train")
    raw = config(tmp_path, tiny_encoder, {"train": str(tmp_path / "train")}, max_steps=1)
    # not read as an intent_slot folder:
    assert polytask.validate_data(raw)["toy"]["train"] == {"rows": 24, "usable": {"color": 24}}
    polytask.train(raw)
    [prediction] = polytask.predict(tmp_path / "run" / "model", ["a green bird"])
    assert prediction["color"]["label"] in COLORS  # ClassLabel names, kept by save_to_disk


def test_bad_row_names_dataset_split_and_row(tmp_path, tiny_encoder):
    data = rows(6)
    data["text"][3] = "   "
    train = datasets.Dataset.from_dict(data, features=FEATURES)
    with pytest.raises(DataValidationError) as caught:
        polytask.validate_data(config(tmp_path, tiny_encoder, {"train": train}))
    assert "<in-memory Dataset toy/train> row:3: [text] empty input text" in str(caught.value)
    assert not (tmp_path / "run").exists()


def test_labels_file_maps_ids_to_names(tmp_path, tiny_encoder):
    data = rows(6)
    (tmp_path / "train.jsonl").write_text("".join(
        f'{{"text": "{t}", "color": {c}}}\n' for t, c in zip(data["text"], data["color"])) +
        '{"text": "a cat", "color": 7}\n', encoding="utf-8")
    (tmp_path / "labels.txt").write_text("\n".join(COLORS) + "\n", encoding="utf-8")
    toy = {"train": str(tmp_path / "train.jsonl"), "labels_file": str(tmp_path / "labels.txt")}
    with pytest.raises(DataValidationError) as caught:
        polytask.validate_data(config(tmp_path, tiny_encoder, toy))
    assert f"{tmp_path / 'train.jsonl'}:7: [color] label id 7 has no name" in str(caught.value)
    from polytask.config import parse_config
    from polytask.data.validation import validate

    (tmp_path / "train.jsonl").write_text("".join(
        f'{{"text": "{t}", "color": {c}}}\n' for t, c in zip(data["text"], data["color"])))
    records = validate(parse_config(config(tmp_path, tiny_encoder, toy)))["toy"]["train"]
    assert [r.fields["color"] for r in records] == [COLORS[c] for c in data["color"]]


def test_both_dev_and_validation_is_an_error(tmp_path, tiny_encoder):
    from polytask.errors import ConfigError

    dev = datasets.Dataset.from_dict(rows(4), features=FEATURES)
    with pytest.raises(ConfigError, match="same split"):
        polytask.validate_data(config(tmp_path, tiny_encoder, {"train": dev, "dev": dev,
                                                                "validation": dev}))


def test_hub_dataset_needs_allow_download(tmp_path, tiny_encoder):
    from polytask.config import HubSplit, parse_config
    from polytask.errors import ConfigError

    raw = config(tmp_path, tiny_encoder, {"hub": "glue", "hub_config": "sst2", "text": "sentence"})
    with pytest.raises(ConfigError, match="allow_download: true"):
        polytask.validate_data(raw)
    raw["datasets"]["toy"]["allow_download"] = True
    dataset = parse_config(raw).datasets["toy"]
    assert dataset.tables == {"train": HubSplit("glue", "sst2", "train"),
                              "dev": HubSplit("glue", "sst2", "validation")}
    assert str(dataset.train) == "train"  # the dumped config names the hub split and reloads


def test_saved_config_of_an_in_memory_run_says_what_to_pass(dict_run):
    from polytask.config import load_config
    from polytask.data.validation import validate

    folder, _ = dict_run
    with pytest.raises(DataValidationError, match="in-memory table passed from Python"):
        validate(load_config(folder / "run" / "config.yaml"))


def test_a_datasetdict_as_one_split_says_how_to_pass_it(tmp_path, tiny_encoder):
    from polytask.errors import ConfigError

    dsd = datasets.DatasetDict(train=datasets.Dataset.from_dict(rows(4), features=FEATURES))
    with pytest.raises(ConfigError, match=r"train: is a DatasetDict; give one split \(dsd\['train'\]\)"):
        polytask.validate_data(config(tmp_path, tiny_encoder, {"train": dsd}))
