"""The model host's own check of what a model is fed, against the version's signature (pure, no I/O).

The tool server validates tool arguments first (jsonschema, compiled once per tool); this is the second line,
for whoever calls the host directly. `validator_for` builds, once per loaded version, strict pydantic models
(`toolbridge_client.pydantic_models`) from the JSON Schema `bridge.schema.input_schema` makes of the
version's own signature, reshaped to what a payload (`bridge.schema.ModelInput`) carries:

- records: one model per row, keyed by MLflow column name ("0", "1", ... for unnamed columns), every row
  checked; params: one model keyed by param name;
- tensors: ``data`` (one tensor) or ``data.<name>`` (named tensors), checked for shape and number type; a
  first dimension of -1 takes any number of rows (the tool schema fixes it to 1: a tool call scores one
  sample).

`PayloadValidator.validate` raises PayloadInvalid naming every bad field, what was expected and what came, in
the tool server's words (`bridge.validation`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bridge.schema import field_map, input_schema
from bridge.validation import (  # the tool server's wording, shared on purpose
    MAX_PROBLEMS,
    expected_words,
    got_words,
)
from toolbridge_client.pydantic_models import model_from_schema

__all__ = ["PayloadInvalid", "PayloadValidator", "validator_for"]

JsonSchema = dict[str, Any]
Kind = Literal["records", "tensor", "tensors"]


class PayloadInvalid(ValueError):
    """A payload broke the version's signature; `problems` holds one sentence per bad field."""

    def __init__(self, problems: Sequence[str], model: str) -> None:
        self.problems = list(problems[:MAX_PROBLEMS])
        more = len(problems) - len(self.problems)
        lines = [f"- {p}" for p in self.problems] + ([f"- ... and {more} more problems"] if more else [])
        head = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        super().__init__("\n".join([f"The input of model {model} has {head}:", *lines]))


class _Part:
    """One pydantic model and the JSON Schema it was built from (for the words of its messages)."""

    def __init__(self, schema: JsonSchema, name: str) -> None:
        self.schema = schema
        self.model: type[BaseModel] = model_from_schema(schema, name, strict=True)

    def problems(self, value: Any, where: str = "") -> list[str]:
        try:
            self.model.model_validate(value)
        except ValidationError as exc:
            found: dict[str, str] = {}
            for error in exc.errors(include_url=False):
                field, text = self._describe(error)
                found.setdefault(field, f"{where}{text}")  # one sentence per field, as the server does
            return list(found.values())
        return []

    def _describe(self, error: ErrorDetails) -> tuple[str, str]:
        node: Any = self.schema
        parent: Any = {}
        path = ""
        for part in error["loc"]:
            if not isinstance(node, dict):
                break
            props, values, items = node.get("properties"), node.get("additionalProperties"), node.get("items")
            if isinstance(part, str) and isinstance(props, dict):
                parent, node = node, props.get(part, {})
            elif isinstance(part, str) and isinstance(values, dict):  # an MLflow Map's value
                parent, node = node, values
            elif isinstance(part, int) and isinstance(items, dict):
                parent, node = node, items
            else:  # pydantic's tag for one branch of a union: not part of the field's path
                continue
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
        field = f"field `{path}`" if path else "the input"
        if error["type"] == "missing":
            return path, f"{field} is required: expected {expected_words(node)}"
        if error["type"] == "extra_forbidden":
            accepted = list(parent.get("properties", {})) if isinstance(parent, dict) else []
            close = difflib.get_close_matches(path.rsplit(".", 1)[-1], accepted, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            return path, f"{field} is not accepted; accepted fields: {', '.join(accepted) or 'none'}{hint}"
        return path, f"{field}: expected {expected_words(node)}, got {got_words(error.get('input'))}"


def _closed(properties: Mapping[str, JsonSchema], required: Sequence[str]) -> JsonSchema:
    return {"type": "object", "properties": dict(properties), "required": list(required),
            "additionalProperties": False}


class PayloadValidator:
    """The checks of one model version, built once (`validator_for`) and run on every call."""

    def __init__(self, name: str, kind: Kind, rows: _Part | None, params: _Part | None, tensors: _Part | None,
                 batch_axis: bool) -> None:
        self.name = name
        self.kind = kind
        self._rows, self._params, self._tensors = rows, params, tensors
        self.batch_axis = batch_axis  # tensor rows run along the first axis: calls can be stacked

    def validate(self, payload: Any) -> None:
        """Return if `payload` fits the signature, else raise PayloadInvalid naming every bad field."""
        if not isinstance(payload, Mapping):
            raise PayloadInvalid([f"the payload must be an object with `kind` \"{self.kind}\", got "
                                  f"{got_words(payload)}"], self.name)
        kind = payload.get("kind", "records")
        if kind != self.kind:
            raise PayloadInvalid([f"`kind` {got_words(kind)} does not fit this model: its signature takes "
                                  f"\"{self.kind}\""], self.name)
        problems = self._data_problems(payload)
        params = payload.get("params") or {}
        if self._params is None and params:
            problems.append(f"this model takes no params, got {got_words(params)}")
        elif self._params is not None:
            problems += self._params.problems(params, "params: ") if isinstance(params, dict) else [
                f"`params` must be an object keyed by param name, got {got_words(params)}"]
        if problems:
            raise PayloadInvalid(problems, self.name)

    def _data_problems(self, payload: Mapping[str, Any]) -> list[str]:
        if self._tensors is not None:
            return self._tensors.problems({"data": payload.get("data")})
        assert self._rows is not None
        rows = payload.get("records")
        if not isinstance(rows, list) or not rows:
            return [f"`records` must be a list of at least one row, each an object keyed by column name, got "
                    f"{got_words(rows)}"]
        problems: list[str] = []
        for i, row in enumerate(rows):
            where = f"row {i}: " if len(rows) > 1 else ""
            problems += self._rows.problems(row, where)
            if len(problems) > MAX_PROBLEMS:
                break
        return problems


def _any_rows(schema: JsonSchema, shape: Sequence[int]) -> JsonSchema:
    """The tool schema of a tensor whose first dimension is -1 fixes it to one sample; the host takes any."""
    if shape and shape[0] == -1:
        return {"type": "array", "items": schema["items"], "description": schema.get("description", "")}
    return schema


def validator_for(signature: Mapping[str, Any] | None, name: str) -> PayloadValidator | None:
    """The checks for a version's signature; None when it declares no inputs (nothing to check against).

    Fields are named as the payload names them: MLflow column, param or tensor name (`data` for one tensor).
    Raises bridge.schema.SchemaError when the signature uses a type JSON cannot carry.
    """
    inputs: list[dict[str, Any]] = list((signature or {}).get("inputs") or [])
    if not inputs:
        return None
    schema = input_schema(signature)
    props: dict[str, JsonSchema] = schema["properties"]
    keys = {prop: str(key) for prop, key in field_map(signature).items()}
    param_names = {str(p["name"]) for p in (signature or {}).get("params") or []}
    inputs_props = [p for p in props if keys[p] not in param_names]  # names are unique, bridge.schema checks
    params = {keys[p]: props[p] for p in props if keys[p] in param_names}
    params_part = _Part(_closed(params, []), f"{name} params") if params else None
    if inputs[0].get("type") == "tensor":
        tensors = {keys[p]: _any_rows(props[p], spec["tensor-spec"]["shape"])
                   for p, spec in zip(inputs_props, inputs, strict=True)}
        kind: Kind = "tensor" if len(inputs) == 1 else "tensors"
        data = next(iter(tensors.values())) if kind == "tensor" else _closed(tensors, list(tensors))
        part = _Part(_closed({"data": data}, ["data"]), f"{name} inputs")
        batch_axis = kind == "tensor" and list(inputs[0]["tensor-spec"]["shape"][:1]) == [-1]
        return PayloadValidator(name, kind, None, params_part, part, batch_axis)
    columns = {keys[p]: props[p] for p in inputs_props}
    rows = _Part(_closed(columns, [keys[p] for p in schema["required"]]), f"{name} row")
    return PayloadValidator(name, "records", rows, params_part, None, batch_axis=True)
