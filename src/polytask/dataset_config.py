"""A dataset's configuration (``datasets.<name>:``): where its splits are (files, in-memory
tables, a Hub dataset), how to read them (format, columns, header, quoting) and label names.

Split names: ``train``, ``dev`` and ``test``; ``validation`` (the Hugging Face name) is read as
``dev`` at this boundary, so everything inside says ``dev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DataFormat = Literal["csv", "tsv", "jsonl", "conll", "intent_slot", "parquet", "arrow"]
SPLITS = ("train", "dev", "test")
#: Other names of a split, as Hugging Face spells them (``DatasetDict["validation"]``).
SPLIT_ALIASES = {"validation": "dev"}
_SUFFIX_FORMATS = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "json": "jsonl", "conll": "conll",
                   "bio": "conll", "txt": "conll", "parquet": "parquet", "arrow": "arrow"}
#: Files that ``datasets.Dataset.save_to_disk`` writes in its folder.
SAVE_TO_DISK_FILES = ("state.json", "dataset_info.json")


def canonical_split(name: str) -> str:
    """``validation`` -> ``dev``; other names unchanged."""
    return SPLIT_ALIASES.get(name, name)


@dataclass(frozen=True)
class HubSplit:
    """A split of a Hugging Face Hub dataset (``hub:``), loaded when the data is read."""

    name: str
    config: str | None
    split: str

    def __str__(self) -> str:
        return f"<hub {self.name}{'/' + self.config if self.config else ''} split {self.split}>"


def is_table(value: Any) -> bool:
    """An in-memory split: a ``datasets.Dataset`` or a pandas DataFrame (anything with columns
    that is not a path)."""
    return not isinstance(value, (str, Path, type(None), dict, list)) and (
        hasattr(value, "column_names") or hasattr(value, "columns"))

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DatasetConfig(Strict):
    """Where one set of inputs lives. Tasks that name the same dataset share its inputs.

    A split is a path or, from Python, an in-memory ``datasets.Dataset`` / pandas DataFrame
    (kept in ``tables``, shown in a dumped config as ``<in-memory ...>``); a whole
    ``DatasetDict`` may stand for the dataset. ``validation`` is another name for ``dev``."""

    format: DataFormat | None = Field(None, description="inferred from the train file's extension")
    train: Path
    dev: Path | None = None
    test: Path | None = None
    text: str = Field("text", description="column holding the input text")
    text_pair: str | None = Field(None, description="column holding a second text (pair tasks)")
    tokens: str | None = Field(
        None, description="column holding pre-split words (a list, or a space-separated string)"
    )
    categorical: list[str] | None = Field(
        None, description="tabular inputs (model.encoder: tabular): columns of category values, e.g. IDs")
    numeric: list[str] | None = Field(
        None, description="tabular inputs: columns of numbers (bucketised by their train quantiles)")
    header: bool = Field(True, description="csv/tsv: the first row names the columns")
    columns: list[str] | None = Field(
        None, description="csv/tsv without a header: the name of each column, in order (or use "
        "0-based positions in text:/label:)")
    quoting: Literal["minimal", "none"] = Field(
        "minimal", description="csv/tsv: 'minimal' reads \"...\" as a quoted cell; 'none' reads "
        "quotes as text (TSV corpora such as GLUE)")
    labels_file: Path | dict[str, Path] | None = Field(
        None, description="label names for integer label ids: a file with the name of id i on line "
        "i+1, for every label column, or {label column: file}")
    hub: str | None = Field(None, description="a Hugging Face Hub dataset name, loaded with "
                            "datasets.load_dataset (needs allow_download: true); train:/validation:/"
                            "test: then name its splits (default train and validation)")
    hub_config: str | None = Field(None, description="hub: the dataset's configuration, e.g. sst2 of glue")
    allow_download: bool = Field(False, description="let datasets fetch the hub: dataset")
    tables: dict[str, Any] = Field(default_factory=dict, exclude=True,
                                   description="in-memory splits (from Python): split -> table")

    @field_validator("text", "text_pair", "tokens", mode="before")
    @classmethod
    def _position(cls, value: Any) -> Any:
        """``text: 0``: a 0-based column position of a file without a header."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="before")
    @classmethod
    def _splits_in(cls, value: Any) -> Any:
        """``validation`` -> ``dev``; in-memory tables move to ``tables`` (a placeholder path stays)."""
        if not isinstance(value, dict):
            return value
        value = dict(value)  # a DatasetDict is a dict of splits
        for alias, split in SPLIT_ALIASES.items():
            if alias in value:
                if split in value:
                    raise ValueError(f"both {split}: and {alias}: are set; they name the same split, keep one")
                value[split] = value.pop(alias)
        for split in SPLITS:
            if isinstance(value.get(split), dict) and any(map(is_table, value[split].values())):
                raise ValueError(f"{split}: is a DatasetDict; give one split (dsd[{split!r}]), or "
                                 "the DatasetDict itself as the dataset: {**dsd, 'text': ...}")
        tables = {split: value[split] for split in SPLITS if is_table(value.get(split))}
        for split, table in tables.items():
            value[split] = f"<in-memory {type(table).__name__} {split}>"
        if value.get("hub"):
            if not any(value.get(split) for split in SPLITS):
                value.update(train="train", dev="validation")
            tables = {split: HubSplit(str(value["hub"]), value.get("hub_config"), str(value[split]))
                      for split in SPLITS if value.get(split) is not None}
        if tables:
            value["tables"] = tables
            value.setdefault("format", "arrow")
        return value

    @property
    def is_tabular(self) -> bool:
        return bool(self.categorical or self.numeric)

    def input_columns(self) -> list[str]:
        """The columns a record's input is read from: feature columns, or the text column(s)."""
        if self.is_tabular:
            return [*(self.categorical or []), *(self.numeric or [])]
        return [self.tokens or self.text, *([self.text_pair] if self.text_pair else [])]

    @model_validator(mode="after")
    def _infer_format(self) -> DatasetConfig:
        if self.format is None:
            self.format = _infer_format(self.train)  # type: ignore[assignment]
        if self.is_tabular:
            columns = self.input_columns()
            if self.format not in ("csv", "tsv", "jsonl", "parquet", "arrow"):
                raise ValueError(f"categorical:/numeric: feature columns need a csv, tsv or jsonl "
                                 f"file or a parquet/arrow table, not format {self.format}")
            if len(set(columns)) != len(columns):
                raise ValueError(f"a feature column is listed twice in categorical:/numeric: {columns}")
        if self.hub and not self.allow_download:
            raise ValueError(f"hub: {self.hub} is loaded with datasets.load_dataset, which downloads "
                             "it; set allow_download: true on the dataset, or save it locally "
                             "(save_to_disk) and point train:/validation: at the folders")
        if self.columns is not None and self.header:
            raise ValueError("columns: names the columns of a file without a header; set header: false "
                             "too (a file with a header names its own columns)")
        return self

    def split_path(self, split: str) -> Path | None:
        return {"train": self.train, "dev": self.dev, "test": self.test}[canonical_split(split)]


def _infer_format(train: Path) -> str:
    """The format a train path's extension (or folder) names; ValueError if it names none."""
    if train.is_dir() and any((train / name).is_file() for name in SAVE_TO_DISK_FILES):
        return "arrow"  # a datasets save_to_disk folder
    inferred = _SUFFIX_FORMATS.get(train.suffix.lower().lstrip("."))
    if inferred is None and train.suffix == "":
        inferred = "intent_slot"
    if inferred is None:
        raise ValueError(f"cannot infer the format of {train}; set format: to one of "
                         "csv, tsv, jsonl, conll, intent_slot, parquet, arrow")
    return inferred


def resolve_paths(dataset: DatasetConfig, base: Path) -> None:
    """Relative paths start at ``base`` (the config's folder); in-memory and hub splits stay."""
    for split in SPLITS:
        path = getattr(dataset, split)
        kept = split in dataset.tables or str(path).startswith("<in-memory")  # no file
        if path is not None and not kept and not path.is_absolute():
            setattr(dataset, split, (base / path).resolve())
    if dataset.format == "intent_slot" and _infer_format(dataset.train) == "arrow":
        dataset.format = "arrow"  # a save_to_disk folder, found once its path is resolved
    if isinstance(dataset.labels_file, dict):
        dataset.labels_file = {k: base / v for k, v in dataset.labels_file.items()}
    elif dataset.labels_file is not None:
        dataset.labels_file = base / dataset.labels_file
