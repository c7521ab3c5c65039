"""MLflow signature → JSON Schema of a tool's input and output; validated arguments → what the model is fed.

Pure functions over MLflow's signature as plain dicts (``{"inputs": [...], "outputs": [...] | None,
"params": [...] | None}``, each spec as MLmodel stores it); no mlflow import.

Input schemas take the one shape every client accepts (DESIGN.md, "Schemas"): a root object, properties
inline, ``additionalProperties: false``, required columns in ``required``, optional columns and params
nullable and out of ``required`` (`strict_variant` lists them all for OpenAI strict mode), defaults in
descriptions.

Tool field names (`field_map` gives property → MLflow name; `to_model_input` maps back):
- a named column or param keeps its name when it matches ``^[A-Za-z0-9_.-]{1,64}$`` (the strictest
  client's rule for property keys); otherwise each run of other characters becomes ``_``
  (``sepal length (cm)`` → ``sepal_length_cm``) and the description keeps the original name.
- unnamed columns (MLflow reads them by position): a single one is ``input``; several are ``input_0``,
  ``input_1``, ...; `field_map` gives their position (0, 1, ...) and model-input records key them
  ``"0"``, ``"1"``, ... (JSON keys are strings; MLflow matches unnamed columns by position).
- a single tensor (named or not) is ``inputs``; several named tensors get one property each, by name.
Two fields that end up with one name raise SchemaError naming both.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from bridge.errors import BridgeError

__all__ = ["OPTIONAL_NOTE", "ModelInput", "SchemaError", "arguments_from_record", "field_map", "input_schema",
           "output_schema", "strict_variant", "to_model_input"]

OPTIONAL_NOTE = "Optional: omit it or send null when unknown."

JsonSchema = dict[str, Any]

_DATETIME: JsonSchema = {"type": "string", "format": "date-time"}
_BASE64: JsonSchema = {"type": "string", "contentEncoding": "base64"}
_PRIMITIVES: Mapping[str, JsonSchema] = MappingProxyType({
    "double": {"type": "number"}, "float": {"type": "number"}, "long": {"type": "integer"},
    "integer": {"type": "integer"}, "boolean": {"type": "boolean"}, "string": {"type": "string"},
    "datetime": _DATETIME, "binary": _BASE64})
# numpy dtype name prefix → JSON item schema; first match wins ("uint" before "int").
_DTYPES: tuple[tuple[str, JsonSchema], ...] = (
    ("float", {"type": "number"}), ("uint", {"type": "integer", "minimum": 0}), ("int", {"type": "integer"}),
    ("bool", {"type": "boolean"}), ("str", {"type": "string"}), ("object", {"type": "string"}),
    ("bytes", _BASE64), ("datetime64", _DATETIME))
_FORMAT_HINTS = {"datetime": "ISO 8601 date-time, e.g. 2024-01-31T12:00:00Z.",
                 "binary": "Base64-encoded bytes."}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NO_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({})
_HOW_TO_SIGN = ("log it with `signature=infer_signature(X, y)` (from mlflow.models import infer_signature) "
                "so Toolbridge can build the tool's input schema")


class SchemaError(BridgeError, ValueError):
    """The version's signature cannot become a tool schema; the message says what to change in the model."""


# What the model host feeds the model for one tool call, JSON-ready (it crosses HTTP to the host):
# {"kind": "records", "records": [{column: value}], "params": {...}}: one row with every column (missing
#   optional ones as None), keyed by column name, or by position as "0", "1", ... for unnamed columns;
# {"kind": "tensor", "data": nested list, "dtype": "float64", "params": {...}};
# {"kind": "tensors", "data": {name: nested list}, "dtype": {name: dtype}, "params": {...}} for several
#   named tensors. `params` holds only the params the caller gave: the model's defaults cover the rest.
ModelInput = dict[str, Any]


@dataclass(frozen=True)
class _Field:
    prop: str  # property name in the tool's schema
    source: Literal["column", "param", "tensor"]
    key: str | int  # MLflow name; position for an unnamed column
    spec: dict[str, Any]
    required: bool


def _safe(name: str, fallback: str) -> str:
    if _SAFE_NAME.match(name):
        return name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:64] or fallback


def _fields(signature: Mapping[str, Any] | None) -> list[_Field]:
    if not signature:
        raise SchemaError(f"model version has no signature; {_HOW_TO_SIGN}")
    inputs: list[dict[str, Any]] = list(signature.get("inputs") or [])
    if not inputs:
        raise SchemaError(f"model version's signature declares no inputs; {_HOW_TO_SIGN}")
    fields: list[_Field] = []
    for i, spec in enumerate(inputs):
        name = spec.get("name")
        if spec.get("type") == "tensor":
            prop = "inputs" if len(inputs) == 1 else _safe(str(name), f"inputs_{i}")
            fields.append(_Field(prop, "tensor", i if name is None else str(name), spec, True))
        elif name is None:
            prop = "input" if len(inputs) == 1 else f"input_{i}"
            fields.append(_Field(prop, "column", i, spec, bool(spec.get("required", True))))
        else:  # signatures logged by older MLflow have no "required": their columns were all required
            fields.append(_Field(_safe(str(name), f"input_{i}"), "column", str(name), spec,
                                 bool(spec.get("required", True))))
    for spec in signature.get("params") or []:
        fields.append(_Field(_safe(str(spec["name"]), "param"), "param", str(spec["name"]), spec, False))
    seen: dict[str, _Field] = {}
    for f in fields:
        if (other := seen.setdefault(f.prop, f)) is not f:
            raise SchemaError(f"{f.source} `{f.key}` and {other.source} `{other.key}` both become tool field "
                              f"`{f.prop}`; rename one of them in the model's signature")
    return fields


def field_map(signature: Mapping[str, Any] | None) -> dict[str, str | int]:
    """Tool property name → the MLflow column, param or tensor it stands for (position when unnamed)."""
    return {f.prop: f.key for f in _fields(signature)}


def _type_name(spec: Mapping[str, Any]) -> str:
    kind = str(spec.get("type"))
    if kind == "array":
        return f"array<{_type_name(spec['items'])}>"
    if kind == "map":
        return f"map<string, {_type_name(spec['values'])}>"
    return kind


def _nullable(schema: JsonSchema) -> JsonSchema:
    kind = schema.get("type")
    if kind is None:  # no type constraint: null is already allowed
        return schema
    kinds = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": kinds if "null" in kinds else [*kinds, "null"]}


def _type_schema(spec: Mapping[str, Any], where: str) -> JsonSchema:
    kind = spec.get("type")
    if kind in _PRIMITIVES:
        return dict(_PRIMITIVES[str(kind)])
    if kind == "array":
        return {"type": "array", "items": _type_schema(spec["items"], where)}
    if kind == "map":
        return {"type": "object", "additionalProperties": _type_schema(spec["values"], where)}
    if kind == "any":
        return {}
    if kind == "object":
        props: dict[str, JsonSchema] = {}
        required: list[str] = []
        for name, sub in (spec.get("properties") or {}).items():
            schema = _type_schema(sub, f"{where}.{name}")
            if sub.get("required", True):
                required.append(name)
            else:
                schema = _nullable(schema)
            props[name] = {**schema, "description": f"Field `{name}` (MLflow type {_type_name(sub)})."}
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    supported = ", ".join([*_PRIMITIVES, "array", "object", "map", "any"])
    raise SchemaError(f"{where} has MLflow type {kind!r}, which has no JSON Schema mapping (supported: "
                      f"{supported}); change its type in the model's signature")


def _shaped(schema: JsonSchema, shape: Sequence[int]) -> JsonSchema:
    """`schema` nested in one array per dimension; a fixed dimension fixes the length (-1 means any)."""
    for dim in reversed(shape):
        fixed = {"minItems": dim, "maxItems": dim} if dim >= 0 else {}
        schema = {"type": "array", "items": schema, **fixed}
    return schema


def _tensor_schema(dtype: str, shape: Sequence[int]) -> JsonSchema:
    # Complex numbers, timedeltas...: no JSON form to promise, so no type constraint.
    item = next((dict(s) for prefix, s in _DTYPES if dtype.startswith(prefix)), {})
    return _shaped(item, shape)


def _shape_text(shape: Sequence[int]) -> str:
    nesting = {0: "send a single value", 1: "send a JSON array"}.get(
        len(shape), f"send a JSON array nested {len(shape)} levels deep")
    any_size = " (-1 means any size)" if -1 in shape else ""
    return f"Shape {json.dumps(list(shape))}{any_size}: {nesting}."


def _property(f: _Field, descriptions: Mapping[str, str]) -> JsonSchema:
    facts: list[str] = []  # sentences kept even when the data scientist wrote the description
    if f.source == "tensor":
        tensor = f.spec["tensor-spec"]
        shape = list(tensor["shape"])
        one_sample = bool(shape) and shape[0] == -1
        if one_sample:  # a tool call scores one case, as a column model's call scores one row
            shape[0] = 1
        schema = _tensor_schema(str(tensor["dtype"]), shape)
        named = f" `{f.key}`" if isinstance(f.key, str) else ""
        lead = f"Input tensor{named} (dtype {tensor['dtype']})."
        facts.append(_shape_text(tensor["shape"]))
        if one_sample:
            facts.append("The first dimension is the batch: send exactly one sample per call.")
    elif f.source == "param":
        shape = f.spec.get("shape") or []
        schema = _nullable(_shaped(_type_schema(f.spec, f"param `{f.key}`"), shape))
        shaped = f", shape {json.dumps(shape)}" if shape else ""
        lead = f"Inference parameter `{f.key}` (MLflow type {_type_name(f.spec)}{shaped})."
        facts.append(f"Optional; default: {json.dumps(f.spec.get('default'), default=str)}.")
    else:
        schema = _type_schema(f.spec, f"column `{f.key}`")
        what = f"Column `{f.key}`" if isinstance(f.key, str) else f"Unnamed input column {f.key}"
        lead = f"{what} (MLflow type {_type_name(f.spec)})."
        facts.append(_FORMAT_HINTS.get(str(f.spec.get("type")), ""))
        if not f.required:
            schema = _nullable(schema)
            facts.append(OPTIONAL_NOTE)
    names = [f.key, f.prop] if isinstance(f.key, str) else [f.prop]
    given = next((descriptions[n].strip() for n in names if descriptions.get(n, "").strip()), None)
    return {**schema, "description": " ".join(s for s in [given or lead, *facts] if s)}


def input_schema(signature: Mapping[str, Any] | None,
                 field_descriptions: Mapping[str, str] = _NO_DESCRIPTIONS) -> JsonSchema:
    """JSON Schema of the tool's arguments: one property per column (or tensor), then one per param.

    `field_descriptions` (keyed by MLflow name or property name) replace the generated first sentence; facts
    a caller needs (a param's default, a tensor's shape, a date or base64 format) are always appended.
    Raises SchemaError when the signature is missing, has no inputs or uses a type JSON cannot carry.
    """
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    for f in _fields(signature):
        properties[f.prop] = _property(f, field_descriptions)
        if f.required:
            required.append(f.prop)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def strict_variant(schema: JsonSchema) -> JsonSchema:
    """A copy with every property of every object in `required`, as OpenAI strict mode demands.

    Sound because every optional property is nullable: a strict client sends null where a lenient one omits
    the field, and the validator accepts both. Map and `any` fields stay as they are (strict mode has no
    way to say them).
    """
    result = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if isinstance(node.get("properties"), dict):
            node["required"] = list(node["properties"])
            for sub in node["properties"].values():
                visit(sub)
        visit(node.get("items"))
        visit(node.get("additionalProperties"))

    visit(result)
    return result


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a class label (numpy scalars included)."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else str(value)


def _label_schema(classes: Sequence[Any] | None) -> JsonSchema:
    if not classes:
        return {"description": "Predicted class label."}
    labels = [_plain(c) for c in classes]
    kinds = {"boolean" if isinstance(v, bool) else "integer" if isinstance(v, int) else
             "number" if isinstance(v, float) else "string" for v in labels}
    kind = kinds.pop() if len(kinds) == 1 else "number" if kinds == {"integer", "number"} else None
    return {**({"type": kind} if kind else {}), "enum": labels,
            "description": f"Predicted class label, one of: {', '.join(str(v) for v in labels)}."}


def _prediction_schema(signature: Mapping[str, Any] | None) -> JsonSchema:
    """The output for one input row: the host answers row by row, so a tensor loses its batch dimension."""
    outputs: list[dict[str, Any]] = list((signature or {}).get("outputs") or [])
    if not outputs:
        return {"description": "The model's output (its signature declares no outputs)."}
    if outputs[0].get("type") == "tensor":
        rows = {str(o.get("name")): (str(o["tensor-spec"]["dtype"]), o["tensor-spec"]["shape"][1:])
                for o in outputs}
        schemas = {name: _tensor_schema(dtype, shape) for name, (dtype, shape) in rows.items()}
        if len(outputs) > 1:
            return {"type": "object", "properties": schemas, "description": "The model's output tensors."}
        ((dtype, shape),) = rows.values()
        return {**schemas.popitem()[1],
                "description": f"The model's output for one row (dtype {dtype}, shape {json.dumps(shape)})."}
    first = outputs[0]
    if len(outputs) == 1 and "name" in first:  # a Series or a one-column frame: promise neither form
        return {"description": f"The model's output: column `{first['name']}` (MLflow type "
                               f"{_type_name(first)}), as a value or as an object keyed by the column."}
    if len(outputs) == 1:
        return {**_type_schema(first, "output"), "description": f"The model's output (MLflow type "
                                                                f"{_type_name(first)})."}
    props = {str(o.get("name", i)): {**_type_schema(o, "output"),
                                     "description": f"MLflow type {_type_name(o)}."}
             for i, o in enumerate(outputs)}
    return {"type": "object", "properties": props, "description": "The model's output columns."}


def output_schema(kind: str, classes: Sequence[Any] | None,
                  signature: Mapping[str, Any] | None) -> JsonSchema:
    """JSON Schema of a tool result: classifier → `label` + `probabilities`, regressor → numeric `prediction`,
    other → `prediction` typed from the signature's outputs where its JSON form is certain; always `model`."""
    properties: dict[str, JsonSchema]
    if kind == "classifier":
        probabilities = {str(_plain(c)): {"type": "number"} for c in classes or []}
        properties = {"label": _label_schema(classes), "probabilities": {
            "type": "object", "properties": probabilities, "additionalProperties": {"type": "number"},
            "description": "Probability of each class label (0 to 1), keyed by the label."}}
        required = ["label", "model"]
    else:
        prediction = _prediction_schema(signature)
        # A regressor predicts a number, unless its signature says several per row (multi-output).
        if kind == "regressor" and prediction.get("type") not in ("array", "object"):
            prediction = {"type": "number", "description": "The predicted value."}
        properties = {"prediction": prediction}
        required = ["prediction", "model"]
    properties["model"] = {
        "type": "object",
        "properties": {"name": {"type": "string", "description": "Registered model name in MLflow."},
                       "version": {"type": "string", "description": "Model version that answered."}},
        "required": ["name", "version"],
        "additionalProperties": False,
        "description": "The MLflow model version that produced this result.",
    }
    return {"type": "object", "properties": properties, "required": required}


def _coerce(value: Any, spec: Mapping[str, Any]) -> Any:
    # JSON Schema counts 3.0 as an integer, but MLflow refuses to cast floats to long: hand it an int.
    if spec.get("type") in ("long", "integer") and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_model_input(signature: Mapping[str, Any], arguments: Mapping[str, Any]) -> ModelInput:
    """Arguments that passed the input schema's validator → what the model host feeds the model."""
    fields = _fields(signature)
    params = {str(f.key): _coerce(arguments[f.prop], f.spec) for f in fields
              if f.source == "param" and arguments.get(f.prop) is not None}
    tensors = [f for f in fields if f.source == "tensor"]
    if len(tensors) == 1:
        dtype = str(tensors[0].spec["tensor-spec"]["dtype"])
        return {"kind": "tensor", "data": arguments.get("inputs"), "dtype": dtype, "params": params}
    if tensors:
        return {"kind": "tensors", "data": {str(f.key): arguments.get(f.prop) for f in tensors},
                "dtype": {str(f.key): str(f.spec["tensor-spec"]["dtype"]) for f in tensors}, "params": params}
    record = {str(f.key): _coerce(arguments.get(f.prop), f.spec) for f in fields if f.source == "column"}
    return {"kind": "records", "records": [record], "params": params}


def arguments_from_record(signature: Mapping[str, Any], record: Mapping[Any, Any]) -> dict[str, Any]:
    """A row keyed by MLflow column name (position for unnamed columns) → tool arguments; the inverse of
    `to_model_input` for column signatures, e.g. to smoke-test a version with its input example.

    Nulls are dropped, as Dify drops them: a missing optional field means null.
    """
    arguments: dict[str, Any] = {}
    for f in _fields(signature):
        value = record.get(str(f.key), record.get(f.key)) if f.source == "column" else None
        if isinstance(value, float) and math.isnan(value):
            value = None
        if f.spec.get("type") == "datetime" and isinstance(value, int | float) and value is not True:
            # MLflow saves a DataFrame example's timestamps as pandas' JSON does: epoch milliseconds
            value = datetime.fromtimestamp(value / 1000, UTC).isoformat().replace("+00:00", "Z")
        if value is not None:
            arguments[f.prop] = value
    return arguments
