"""The request and response bodies of ``POST /predict`` and the per-request limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polytask.data.records import Record
from polytask.serving.inputs import text_problem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextInput(Strict):
    text: str = Field(description="the input text")
    text_pair: str | None = Field(None, description="a second text, for pair tasks")


class TokensInput(Strict):
    tokens: list[str] = Field(min_length=1, description="pre-split words (token tasks tag each)")


class FeaturesInput(Strict):
    features: dict[str, Union[str, int, float, bool, None]] = Field(  # noqa: UP007
        description="tabular models: feature column -> value (a missing column is a missing value)")


class PredictRequest(Strict):
    inputs: list[Union[str, TextInput, TokensInput, FeaturesInput]] = Field(  # noqa: UP007
        min_length=1, description='texts, {"text": ...} or {"tokens": [...]} objects (or one '
        'text alone, as a string); for a tabular model {"features": {...}} objects')
    tasks: list[str] | None = Field(None, description="only these tasks (default: every task)")

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_text(cls, value: Any) -> Any:
        """``"inputs": "a text"`` is one input, as a transformers pipeline takes it."""
        return [value] if isinstance(value, str) else value

    @field_validator("inputs")
    @classmethod
    def _readable_text(cls, values: list[Any]) -> list[Any]:
        """Every unreadable text of every input at once, each named ``inputs[i]...``; the
        message never repeats the text (a lone surrogate cannot be written back out)."""
        problems = [f"inputs[{i}]{where} {problem}" for i, value in enumerate(values)
                    for where, text, blank_ok in texts_of(value)
                    if (problem := text_problem(text, blank_ok))]
        if problems:
            raise ValueError("; ".join(problems[:20]) + (f"; and {len(problems) - 20} more"
                                                         if len(problems) > 20 else ""))
        return values


def texts_of(item: Any) -> list[tuple[str, str, bool]]:
    """(where in the input, text, blank allowed) of every string an input carries."""
    if isinstance(item, str):
        return [("", item, False)]
    if isinstance(item, TextInput):
        pair = [(".text_pair", item.text_pair, False)] if item.text_pair is not None else []
        return [(".text", item.text, False), *pair]
    if isinstance(item, TokensInput):
        return [(f".tokens[{j}]", token, False) for j, token in enumerate(item.tokens)]
    # Feature rows: a blank value is a missing value, but column names and values must be text.
    return [(f".features (column {j})", text, True) for j, (key, value) in enumerate(item.features.items())
            for text in (key, value) if isinstance(text, str)]


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
