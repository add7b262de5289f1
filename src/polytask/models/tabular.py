"""The tabular encoder (``model.encoder: tabular``): embedding tables + an MLP over all fields.

It fits the shape every other part of polytask expects from a Hugging Face encoder, so the
pooling, the sharing strategies (hard, soft, MMoE, PLE, hierarchical, attention) and the heads
work unchanged on tabular rows:

- input ``input_ids`` [B, 1 + F] from ``data.tabular.FieldVocabulary``: a row token, then one
  id per field (global ids, one embedding table);
- output ``.last_hidden_state`` [B, 1 + F, H]: position 0 is the row vector (the row token's
  embedding plus an MLP over all field embeddings and their pairwise interactions); positions
  1..F are the field embeddings (after optional self-attention across fields, as in AutoInt).
  ``pooling: cls`` reads the row vector, ``mean`` averages it with the fields;
- ``.config`` is a ``PretrainedConfig`` (``hidden_size``, ``num_hidden_layers``), registered
  with AutoConfig/AutoModel, so a saved model's ``encoder/config.json`` is rebuilt offline by
  ``AutoModel.from_config`` exactly like a text encoder's.

The pairwise term is the bi-interaction pooling of NFM (He & Chua, 2017): 0.5 * ((sum e)^2 -
sum e^2), whose sum over H is the factorization machine's second-order term. It is three tensor
operations, so it is written here instead of pulling in a CTR library (deepctr-torch, torchrec)
whose models would not fit this encoder interface.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from polytask.config import DatasetConfig, ModelConfig, TabularOptions
from polytask.data.records import Record
from polytask.data.tabular import FieldVocabulary
from polytask.errors import ConfigError

MODEL_TYPE = "polytask_tabular"


class TabularConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 2, num_fields: int = 1, hidden_size: int = 32,
                 mlp_hidden: int = 128, attention_layers: int = 0, attention_heads: int = 2,
                 dropout: float = 0.1, initializer_range: float = 0.05, **kwargs: Any) -> None:
        kwargs.pop("num_hidden_layers", None)  # derived below, saved for tools that read it
        self.vocab_size, self.num_fields, self.hidden_size = vocab_size, num_fields, hidden_size
        self.mlp_hidden, self.dropout = mlp_hidden, dropout
        self.attention_layers, self.attention_heads = attention_layers, attention_heads
        self.initializer_range = initializer_range
        super().__init__(**kwargs)
        # Hidden states: the embeddings, one per attention layer, and the output.
        self.num_hidden_layers = attention_layers + 1


def bi_interaction(fields: torch.Tensor) -> torch.Tensor:
    """[B, F, H] -> [B, H]: the sum of every pair's elementwise product (NFM)."""
    return 0.5 * (fields.sum(1).pow(2) - fields.pow(2).sum(1))


class TabularEncoder(PreTrainedModel):
    config_class = TabularConfig
    base_model_prefix = "tabular"
    main_input_name = "input_ids"

    def __init__(self, config: TabularConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_size
        self.embeddings = nn.Embedding(config.vocab_size, hidden, padding_idx=0)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, config.attention_heads, config.mlp_hidden,
                                       config.dropout, batch_first=True, norm_first=True)
            for _ in range(config.attention_layers))
        self.row_mlp = nn.Sequential(
            nn.Linear((config.num_fields + 1) * hidden, config.mlp_hidden), nn.ReLU(),
            nn.Dropout(config.dropout), nn.Linear(config.mlp_hidden, hidden))
        self.norm = nn.LayerNorm(hidden)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Small embeddings keep the pairwise products of the bi-interaction near 1 at the start;
        # linear and attention layers keep torch's defaults.
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            with torch.no_grad():
                module.weight[0].zero_()

    @property
    def dummy_inputs(self) -> dict[str, torch.Tensor]:
        """Two rows of the shape ``forward`` takes (HF's default ids have the wrong width)."""
        return {"input_ids": torch.ones(2, self.config.num_fields + 1, dtype=torch.long)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                **_: Any) -> BaseModelOutput:
        expected = self.config.num_fields + 1
        if input_ids.dim() != 2 or input_ids.shape[1] != expected:
            raise ValueError(f"the tabular encoder takes [batch, {expected}] ids (a row token and "
                             f"{self.config.num_fields} fields), got {list(input_ids.shape)}")
        hidden = self.embeddings(input_ids)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden)
            states.append(hidden)
        fields = hidden[:, 1:]
        row = hidden[:, 0] + self.row_mlp(torch.cat([fields.flatten(1), bi_interaction(fields)], -1))
        hidden = self.norm(torch.cat([row.unsqueeze(1), fields], dim=1))
        states.append(hidden)
        return BaseModelOutput(last_hidden_state=hidden,
                               hidden_states=tuple(states) if output_hidden_states else None)


AutoConfig.register(MODEL_TYPE, TabularConfig, exist_ok=True)
AutoModel.register(TabularConfig, TabularEncoder, exist_ok=True)


#: What the vocabulary is fit on: the run's datasets and their records ({dataset: {split: records}}).
FitData = tuple[dict[str, DatasetConfig], dict[str, dict[str, list[Record]]]]


def build_tabular_encoder(config: ModelConfig, fit_on: FitData | None
                          ) -> tuple[TabularEncoder, FieldVocabulary]:
    """A fresh encoder and the vocabulary fit on every dataset's train records."""
    if fit_on is None:
        raise ConfigError("model.encoder 'tabular' is fit on the training data: it is built by "
                          "polytask train, or loaded from a saved model directory")
    datasets, records = fit_on
    columns = next(iter(datasets.values()))  # every dataset has the same columns (config check)
    train = [r for name in datasets for r in records.get(name, {}).get("train", [])]
    options = config.tabular or TabularOptions()
    vocabulary = FieldVocabulary.fit(train, columns.categorical or [], columns.numeric or [],
                                     options.numeric_buckets, options.min_count)
    encoder_config = TabularConfig(
        vocab_size=vocabulary.vocab_size, num_fields=len(vocabulary.fields),
        hidden_size=options.hidden_size, mlp_hidden=options.mlp_hidden,
        attention_layers=options.attention_layers, attention_heads=options.attention_heads,
        dropout=options.dropout)
    return TabularEncoder(encoder_config), vocabulary
