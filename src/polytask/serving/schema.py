"""The request and response bodies of ``POST /predict`` and the per-request limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polytask.data.records import Record


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextInput(Strict):
    text: str = Field(min_length=1, description="the input text")
    text_pair: str | None = Field(None, description="a second text, for pair tasks")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank; send at least one non-space character")
        return value


class TokensInput(Strict):
    tokens: list[str] = Field(min_length=1, description="pre-split words (token tasks tag each)")


class FeaturesInput(Strict):
    features: dict[str, Union[str, int, float, bool, None]] = Field(  # noqa: UP007
        description="tabular models: feature column -> value (a missing column is a missing value)")


class PredictRequest(Strict):
    inputs: list[Union[str, TextInput, TokensInput, FeaturesInput]] = Field(  # noqa: UP007
        min_length=1, description='texts, {"text": ...} or {"tokens": [...]} objects; for a '
        'tabular model {"features": {...}} objects')
    tasks: list[str] | None = Field(None, description="only these tasks (default: every task)")

    @field_validator("inputs")
    @classmethod
    def _no_blank_strings(cls, values: list[Any]) -> list[Any]:
        for i, value in enumerate(values):
            if isinstance(value, str) and not value.strip():
                raise ValueError(f"inputs[{i}] is blank; send at least one non-space character")
        return values


class PredictResponse(BaseModel):
    predictions: list[dict[str, dict[str, Any]]] = Field(
        description="one object per input: task name -> that task's prediction")
    truncated: list[bool] = Field(
        description="per input: longer than the model's max_length, so its tail was not read")


@dataclass(frozen=True)
class Limits:
    max_inputs: int = 64
    max_chars: int = 2000


def input_chars(item: str | TextInput | TokensInput) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, TextInput):
        return len(item.text) + len(item.text_pair or "")
    if isinstance(item, FeaturesInput):
        return sum(len(str(key)) + len(str(value)) for key, value in item.features.items())
    return len(" ".join(item.tokens))


def limit_problem(request: PredictRequest, limits: Limits) -> str | None:
    """Why the request is too large (413), or None."""
    if len(request.inputs) > limits.max_inputs:
        return (f"{len(request.inputs)} inputs in one request; the limit is {limits.max_inputs}: "
                "split the inputs over several requests")
    for i, item in enumerate(request.inputs):
        if (chars := input_chars(item)) > limits.max_chars:
            return (f"inputs[{i}] has {chars} characters; the limit is {limits.max_chars}: "
                    "shorten or split it")
    return None


def to_records(request: PredictRequest, tokenizer: Any = None) -> list[Record]:
    """The request's inputs as Records; a ValueError (-> 422) names every input that does not
    fit the model: feature rows for a tabular model (``tokenizer`` a FieldVocabulary), else text."""
    tabular = hasattr(tokenizer, "parse_row")
    if wrong := [i for i, item in enumerate(request.inputs) if isinstance(item, FeaturesInput) != tabular]:
        want = '{"features": {...}} objects' if tabular else 'texts or {"text"}/{"tokens"} objects'
        raise ValueError(f"inputs {wrong}: this model takes {want}")
    if tabular:
        issues: list = []
        records = [tokenizer.parse_row("<request>", i, item.features, issues)
                   for i, item in enumerate(request.inputs, start=1)]
        if issues:
            raise ValueError("; ".join(str(issue) for issue in issues[:20]))
        return records
    records = []
    for i, item in enumerate(request.inputs, start=1):
        if isinstance(item, str):
            records.append(Record("<request>", i, text=item))
        elif isinstance(item, TextInput):
            records.append(Record("<request>", i, text=item.text, text_pair=item.text_pair))
        else:
            records.append(Record("<request>", i, words=list(item.tokens)))
    return records
