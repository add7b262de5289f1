"""A run's configuration: YAML in, validated pydantic models out, errors with file:line.

Every section forbids unknown keys, and an unknown key is reported with the closest known
one, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from polytask.dataset_config import (  # noqa: F401 - re-exported: config is where callers look
    SPLIT_ALIASES,
    SPLITS,
    DataFormat,
    DatasetConfig,
    HubSplit,
    Strict,
    canonical_split,
    is_table,
    resolve_paths,
)
from polytask.errors import ConfigError
from polytask.yaml_io import _describe, apply_overrides, read_yaml

#: ``model.encoder`` value of the feature-column encoder (models/tabular.py).
TABULAR = "tabular"


class TaskConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    type: str
    dataset: str
    label: str = Field(description="column (or field) holding this task's label; a 0-based "
                       "position for a file without a header")
    labels: list[str] | None = Field(None, description="declared label set; others are errors")
    label_separator: str = Field("|", description="multi-label: separator inside a string cell")
    normalize_target: bool = Field(False, description="regression: standardise targets")
    crf: bool = Field(False, description="token classification: CRF layer + Viterbi decoding")
    scheme: Literal["bio", "iob1", "ioe1", "ioe2", "iobes", "bmes", "bilou", "none"] | None = Field(
        None, description="token classification: tagging scheme (docs/token_tasks.md). Unset: "
        "bio, with a warning if the tags fit another; set: every gold tag sequence must fit it")
    decoder: Literal["per_task", "shared"] = Field(
        "per_task", description="seq2seq: its own decoder, or one decoder for every 'shared' "
        "seq2seq task (each starts from its task name as a prefix)")
    max_target_length: int = Field(64, ge=2, description="seq2seq: target tokens kept for "
                                   "training, and the most generated")
    num_beams: int = Field(1, ge=1, description="seq2seq: beam search width (1 = greedy)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="seq2seq: of the cross-entropy")
    decoder_layers: int | None = Field(None, ge=1, description="seq2seq on an encoder-only "
                                       "checkpoint: keep the decoder's bottom k layers (default all)")

    @field_validator("label", mode="before")
    @classmethod
    def _position(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class SharingConfig(Strict):
    """How the tasks share the encoder (``polytask.sharing``). ``sharing: soft`` or
    ``{name: soft, options: {lambda: 0.01}}``; options may also sit next to ``name``. Each
    strategy checks its own options (unknown ones are errors that list the accepted ones)."""

    name: str = "hard"
    options: dict[str, Any] = Field(default_factory=dict, description="strategy-specific options")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and set(value) - {"name", "options"}:
            inline = {k: v for k, v in value.items() if k not in ("name", "options")}
            options = value.get("options") or {}
            if not isinstance(options, dict):
                return value  # pydantic reports the bad options value
            return {"name": value.get("name", "hard"), "options": {**options, **inline}}
        return value


class TabularOptions(Strict):
    """``model.encoder: tabular``: per-field embeddings + an MLP over all fields (and optional
    self-attention across fields) instead of a Transformer over text (models/tabular.py)."""

    hidden_size: int = Field(32, gt=0, description="size of each field embedding and of the output")
    mlp_hidden: int = Field(128, gt=0, description="width of the MLP over all fields")
    attention_layers: int = Field(0, ge=0, description="self-attention layers across fields (AutoInt)")
    attention_heads: int = Field(2, gt=0, description="heads of those layers; divides hidden_size")
    dropout: float = Field(0.1, ge=0, lt=1)
    numeric_buckets: int = Field(10, ge=2, description="numeric columns: quantile buckets fit on train")
    min_count: int = Field(1, ge=1, description="rarer train values share the column's unknown id")

    @model_validator(mode="after")
    def _heads_divide(self) -> TabularOptions:
        if self.attention_layers and self.hidden_size % self.attention_heads:
            raise ValueError(f"attention_heads ({self.attention_heads}) must divide hidden_size "
                             f"({self.hidden_size})")
        return self


class ModelConfig(Strict):
    encoder: str = Field(
        "embedded", description="'embedded' (packaged all-MiniLM-L6-v2), a local dir, a hub name, "
        "or 'tabular' (feature columns, see tabular:)"
    )
    allow_download: bool = Field(False, description="let transformers fetch a hub name")
    trust_remote_code: bool = Field(
        False, description="run Python code shipped with the encoder (auto_map in its config); "
        "off: such an encoder is refused. Saved models never turn it on by themselves")
    max_length: int = Field(128, gt=2)
    pooling: Literal["cls", "mean"] = "cls"
    head_dropout: float = Field(0.1, ge=0, lt=1)
    sharing: SharingConfig = Field(default_factory=SharingConfig,
                                   description="sharing strategy: hard (default), soft, lora...")
    tabular: TabularOptions | None = Field(None, description="encoder: tabular options (defaults if unset)")


class SamplerConfig(Strict):
    name: str = "proportional"
    temperature: float = Field(2.0, gt=0, description="temperature sampler: p ~ n^(1/T)")


class FeaturePoint(Strict):
    """``gradients_on: {features: layer, layer: -2}``: per-task gradients w.r.t. one hidden state
    of the shared encoder (docs/weighting.md, section 4)."""

    features: Literal["layer"]
    layer: int = Field(description="hidden-state index: 0 = embedding output, i = output of "
                       "layer i (the input of layer i+1); negative from the top, -1 = encoder output")


class PartialJacobian(Strict):
    """``gradients_on: {parameters: last_layers, k: 2}``: the Jacobian of the top k layers only."""

    parameters: Literal["last_layers"]
    k: int = Field(ge=0, description="top Transformer layers whose parameters get per-task gradients")


class WeightingConfig(Strict):
    name: str = "equal"
    weights: dict[str, float] | None = Field(None, description="static: per-task weights")
    gradients_on: Literal["parameters", "features"] | FeaturePoint | PartialJacobian = Field(
        "features", description="gradient methods: per-task gradients w.r.t. the shared "
        "parameters, the top k layers' parameters ({parameters: last_layers, k}), or (cheaper) "
        "w.r.t. shared features: the default point, or {features: layer, layer: i}")
    engine: Literal["autojac", "autogram"] = Field(
        "autojac", description="gradients_on: parameters: autojac builds the Jacobian, autogram "
        "only the task Gramian (methods whose weights need only it); autojac measured faster and "
        "leaner on CPU (docs/weighting.md, section 8)")

    @property
    def needs_shared_features(self) -> bool:
        """Every setting but ``parameters`` reads a tensor that all tasks share."""
        return self.gradients_on != "parameters"
    options: dict[str, Any] = Field(default_factory=dict, description="method-specific options")


class TrainConfig(Strict):
    output_dir: Path = Path("runs/polytask")
    seed: int = 42
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)
    eval_batch_size: int = Field(128, gt=0)
    grad_accum: int = Field(1, ge=1)
    optimizer: Literal["adamw", "adam", "sgd", "adagrad"] = "adamw"
    lr: float = Field(5e-5, gt=0)
    head_lr: float | None = Field(None, gt=0, description="defaults to lr")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_every: int | None = Field(None, gt=0, description="steps; default once per epoch")
    checkpoint_every: int | None = Field(None, gt=0, description="steps; default = eval_every")
    keep_checkpoints: int = Field(2, ge=1)
    patience: int | None = Field(None, ge=1, description="evaluations without improvement")
    select_on: str = Field(
        "mean", description="'mean' of primary metrics, a task name (its primary metric), "
        "or a metric key such as 'intent/macro_f1' or 'snips/exact_match'")
    group_by_length: bool = Field(True, description="batch similar lengths together (less padding)")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = Field("auto", description="auto picks cuda > mps > cpu")
    num_threads: int | None = Field(None, gt=0)
    progress: bool = Field(True, description="a progress bar on a terminal; elsewhere (logs, nohup) "
                           "a log line every log_every steps")
    log_every: int = Field(50, gt=0, description="steps between progress log lines when stderr is "
                           "not a terminal")
    stl_baselines: dict[str, float] | None = Field(
        None, description="dev primary metric of each task trained alone; a task that stays below "
        "it raises a negative-transfer alarm")
    check_transfer: bool | Literal["strict"] = Field(
        False, description="before training, run the cheap relatedness probe (analysis/precheck.py) "
        "and warn (true) or stop with a config error (strict) when a pair is predicted to hurt")
    alarm_patience: int = Field(3, ge=1, description="consecutive evaluations a gradient conflict "
                                "(negative cosine) or a below-baseline score must last to alarm")
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="experiment trackers; files under output_dir")
    promotion_tolerance: float = Field(
        0.0, ge=0, description="--init-from: the largest drop of any task's primary dev metric "
        "(absolute units; a rise for lower-is-better metrics) that still promotes the new model")


class SearchDimension(Strict):
    """One hyperparameter of a search: the config key it sets and the values it may take."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> SearchDimension:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical dimension needs choices: [...]")
        if self.type != "categorical" and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError("a float/int dimension needs low <= high")
        return self


class TuneConfig(Strict):
    """``polytask tune``: Optuna TPE search with median pruning over these config keys."""

    space: dict[str, SearchDimension] = Field(
        min_length=1, description="dotted config key -> dimension, e.g. train.lr: {type: float, ...}")
    trials: int = Field(10, ge=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    study_name: str = "polytask"
    pruning_startup_trials: int = Field(
        2, ge=0, description="finished trials before the median pruner starts pruning")


class RunConfig(Strict):
    model: ModelConfig = ModelConfig()
    datasets: dict[str, DatasetConfig]
    tasks: list[TaskConfig] = Field(min_length=1)
    sampler: SamplerConfig = SamplerConfig()
    weighting: WeightingConfig = WeightingConfig()
    train: TrainConfig = TrainConfig()
    tune: TuneConfig | None = None

    @field_validator("sampler", "weighting", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        seen: set[str] = set()
        for task in self.tasks:
            if task.name in seen:
                raise ValueError(f"duplicate task name {task.name!r}: task names must be unique")
            seen.add(task.name)
            if task.dataset not in self.datasets:
                raise ValueError(
                    f"task {task.name!r} uses dataset {task.dataset!r}, which is not defined "
                    f"under datasets: (defined: {', '.join(self.datasets)})"
                )
        unknown = sorted(set(self.train.stl_baselines or {}) - seen)
        if unknown:
            raise ValueError(f"train.stl_baselines names unknown task(s) {unknown}; tasks: {sorted(seen)}")
        head = self.train.select_on.split("/")[0]
        if self.train.select_on != "mean" and head not in seen and head not in self.datasets:
            raise ValueError(
                f"train.select_on must be 'mean', a task name or 'task/metric', got {self.train.select_on!r}"
            )
        self._check_tabular()
        for name, dataset in self.datasets.items():  # in-memory splits are named in errors
            for split, table in dataset.tables.items():
                if isinstance(table, HubSplit):
                    continue  # the hub's split name stays, so the dumped config reloads
                setattr(dataset, split, Path(f"<in-memory {type(table).__name__} {name}/{split}>"))
        return self

    def _check_tabular(self) -> None:
        """Feature-column datasets and the tabular encoder come together; it has one vocabulary."""
        tabular = {name: d.input_columns() for name, d in self.datasets.items() if d.is_tabular}
        if self.model.encoder != TABULAR:
            if tabular or self.model.tabular is not None:
                raise ValueError(f"dataset(s) {sorted(tabular)} declare categorical:/numeric: columns "
                                 "or model.tabular: is set; both need model.encoder: tabular")
            return
        text = sorted(set(self.datasets) - set(tabular))
        if text:
            raise ValueError(f"model.encoder 'tabular' reads feature columns, and dataset(s) {text} "
                             "declare none: list them under categorical: and/or numeric:")
        if len({tuple(columns) for columns in tabular.values()}) > 1:
            raise ValueError("with model.encoder: tabular every dataset must declare the same "
                             f"categorical:/numeric: columns (one vocabulary): {tabular}")

    def tasks_of(self, dataset: str) -> list[TaskConfig]:
        return [t for t in self.tasks if t.dataset == dataset]


# --------------------------------------------------------------------------- loading


def _resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    for dataset in config.datasets.values():
        resolve_paths(dataset, base)
    encoder = Path(config.model.encoder)
    if config.model.encoder not in ("embedded", TABULAR) and not encoder.is_absolute() and (base / encoder).exists():
        config.model.encoder = str((base / encoder).resolve())
    return config


def parse_config(raw: Any, source: str = "<config>", base_dir: Path | None = None,
                 node: yaml.Node | None = None) -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping with datasets: and tasks:")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e, source, node, RunConfig) for e in exc.errors()]
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(lines)) from None
    return _resolve_paths(config, base_dir or Path.cwd())


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config, apply ``--set`` overrides, validate, resolve relative paths."""
    path = Path(path)
    raw, node = read_yaml(path, "config")
    raw = apply_overrides(raw or {}, overrides or [])
    return parse_config(raw, str(path), path.parent.resolve(), node)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
