"""Tool arguments checked against a tool's input schema, every problem worded so that an LLM can fix its call.

Compile once per tool (`compile_validator`), validate per call. `InputValidator.validate` raises
ToolInputError with one FieldProblem per bad field: unknown fields (with the accepted ones), missing
required fields, wrong types, out-of-range or not-allowed values, bad date-times or base64, and
NaN/Infinity (which JSON cannot carry).
Messages are built from the schema and the value, never from jsonschema's own text.
"""

from __future__ import annotations

import ast
import base64
import binascii
import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import SchemaError as JsonSchemaError

from bridge.errors import BridgeError
from bridge.schema import SchemaError

__all__ = ["FieldProblem", "InputValidator", "ToolInputError", "compile_validator", "example_of",
           "expected_words", "got_words"]

MAX_PROBLEMS = 100  # a 10,000-cell tensor of strings must not produce a 10,000-line message
_DATETIME_EXAMPLE = "2024-01-31T12:00:00Z"
_NUMBERS = re.compile(r"\d+")  # sort inputs[2] before inputs[10]
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
_PLURALS = {"integer": "integers", "number": "numbers", "string": "strings", "boolean": "booleans"}


@dataclass(frozen=True)
class FieldProblem:
    """One bad field. `field` is a path like ``age``, ``address.city`` or ``inputs[0][2]``; ``""`` stands for
    the arguments as a whole."""

    field: str
    expected: str
    got: str
    message: str


class ToolInputError(BridgeError):
    """The tool arguments broke the input schema; `problems` lists each bad field (at most MAX_PROBLEMS)."""

    def __init__(self, problems: Sequence[FieldProblem], more: int = 0) -> None:
        self.problems = list(problems)
        self.more = more  # problems found beyond MAX_PROBLEMS and not listed
        lines = [f"- {p.message}" for p in self.problems]
        if more:
            lines.append(f"- ... and {more} more problems like these")
        count = len(self.problems) + more
        head = f"{count} problems" if count > 1 else "a problem"
        super().__init__("\n".join([f"The tool arguments have {head}:", *lines]))


class InputValidator:
    """A compiled input schema, built once by `compile_validator` and shared by every call."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: dict[str, Any], validator: Any) -> None:
        self.schema = schema
        self._validator = validator

    def coerce(self, payload: Any) -> Any:
        """`payload` with what Dify's custom tools send put back as the LLM meant it: array and object fields
        sent as JSON text or as a Python repr (`"{'k': 'v'}"`, parsed with `ast.literal_eval`, never `eval`)
        parsed, and `""` in an optional field that cannot hold it (a number, a date-time...) read as null
        (Dify sends an LLM's None as "").
        Anything else is left for `validate` to report."""
        properties = self.schema.get("properties", {}) if isinstance(payload, dict) else {}
        coerced = dict(payload) if properties else payload
        required = set(self.schema.get("required", ()))
        for name, value in (payload.items() if properties else ()):
            prop = properties.get(name)
            kinds = set(_types(prop))
            if value == "" and name not in required and kinds and not _takes_empty_text(prop, kinds):
                coerced[name] = None
                continue
            if not kinds & {"array", "object"} or not isinstance(value, str):
                continue
            parsed = _parse_text(value)
            if (("array" in kinds and isinstance(parsed, list))
                    or ("object" in kinds and isinstance(parsed, dict))):
                coerced[name] = parsed
        return coerced

    def validate(self, payload: Any) -> None:
        """Return if `payload` fits the schema, else raise ToolInputError naming every bad field."""
        problems: dict[str, FieldProblem] = {}
        for problem in _problems_of(self._validator.iter_errors(payload)):
            # One per field: a field breaking two rules (type and enum) is described once, by its schema.
            problems.setdefault(problem.field, problem)
        for path, value in _non_finite(payload, ()):
            field = _path(path)
            problems.setdefault(field, FieldProblem(field, "a finite number", _got(value), (
                f"{_subject(field)}: expected a finite number, got {_got(value)} "
                "(JSON numbers cannot be NaN or Infinity)")))
        if problems:
            listed = sorted(problems.values(), key=lambda p: _NUMBERS.sub(lambda m: m[0].zfill(12), p.field))
            raise ToolInputError(listed[:MAX_PROBLEMS], more=max(0, len(listed) - MAX_PROBLEMS))


def _takes_empty_text(prop: Any, kinds: set[str]) -> bool:
    """`""` is a value of this field (a plain string), not Dify's way of saying null."""
    if "string" not in kinds or not isinstance(prop, dict):
        return False
    return not ({"format", "contentEncoding", "enum", "pattern"} & prop.keys() or prop.get("minLength", 0))


_NOT_PARSED = object()
_MAX_LITERAL = 100_000  # characters: ast.literal_eval of a huge text is slow


def _plain(value: Any) -> Any:
    """A Python literal as JSON would have it: tuples as lists; anything JSON has no word for refused."""
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("object keys must be strings")
        return {key: _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"{type(value).__name__} is not JSON")


def _parse_text(text: str) -> Any:
    """JSON text, else a Python literal (Dify sends objects as their repr); _NOT_PARSED if neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    if len(text) > _MAX_LITERAL:
        return _NOT_PARSED
    try:
        return _plain(ast.literal_eval(text))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_PARSED


def example_of(schema: Any) -> Any:
    """A small value `schema` accepts, to show a caller what to send (an object of its first fields, one
    item an array)."""
    kinds = [k for k in _types(schema) if k != "null"] if isinstance(schema, dict) else []
    if isinstance(schema, dict) and schema.get("enum"):
        return schema["enum"][0]
    kind = kinds[0] if kinds else "string"
    if kind == "array":
        items = schema.get("items")
        count = max(1, min(int(schema.get("minItems", 1)), 4))
        return [example_of(items if isinstance(items, dict) else {}) for _ in range(count)]
    if kind == "object":
        props = schema.get("properties") or {}
        if props:
            return {name: example_of(sub) for name, sub in list(props.items())[:3]}
        values = schema.get("additionalProperties")
        return {"key": example_of(values if isinstance(values, dict) else {})}
    return {"integer": 3, "number": 1.5, "boolean": True}.get(kind, "text")


def _is_datetime(value: object) -> bool:
    # Lenient on purpose: whatever Python reads as ISO 8601 (date only, no zone) the model can read too.
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return True


def _content_encoding(_v: Any, encoding: Any, instance: Any, _schema: Any) -> Iterator[ValidationError]:
    if encoding != "base64" or not isinstance(instance, str):
        return
    try:
        base64.b64decode(instance, validate=True)
    except (binascii.Error, ValueError):
        yield ValidationError("not base64")  # message unused: ours comes from the schema


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time", raises=ValueError)(_is_datetime)
# Draft 2020-12 treats contentEncoding as an annotation; we hold base64 fields to it.
_Validator = validators.extend(Draft202012Validator, {"contentEncoding": _content_encoding})


def compile_validator(schema: dict[str, Any], *, trusted: bool = False) -> InputValidator:
    """Build the validator reused for every call; SchemaError if `schema` is not valid JSON Schema.

    `trusted`: the schema comes from `bridge.schema`, whose every output tests/unit/test_schema_metaschema.py
    proves valid; skips the metaschema check, 10-20 ms a version (most of a 500-tool catalog build).
    """
    if not trusted:
        try:
            _Validator.check_schema(schema)
        except JsonSchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise SchemaError(f"tool input schema is not valid JSON Schema at {where}: "
                              f"{exc.message}") from exc
    return InputValidator(schema, _Validator(schema, format_checker=_FORMATS))


def _problems_of(errors: Iterable[ValidationError]) -> Iterator[FieldProblem]:
    for error in errors:
        path, schema, instance = list(error.absolute_path), error.schema, error.instance
        if error.validator == "required" and isinstance(instance, dict):
            for name in schema["required"]:
                if name not in instance:
                    field = _path([*path, name])
                    expected = _expected(schema.get("properties", {}).get(name, True))
                    yield FieldProblem(field, expected, "nothing",
                                       f"field `{field}` is required: expected {expected}")
        elif error.validator == "additionalProperties" and isinstance(instance, dict):
            accepted = list(schema.get("properties", {}))
            patterns = list(schema.get("patternProperties", {}))
            for name in instance:
                if name not in accepted and not any(re.search(p, name) for p in patterns):
                    yield _unknown(_path([*path, name]), name, accepted)
        elif not path and error.validator == "type" and "object" in _types(schema):
            fields = ", ".join(schema.get("properties", {}))
            expected = f"a JSON object with fields {fields}" if fields else "a JSON object"
            yield FieldProblem("", expected, _got(instance), f"expected {expected}, got {_got(instance)}")
        else:
            field, expected = _path(path), _expected(schema)
            hint = ""
            if isinstance(instance, str) and set(_types(schema)) & {"array", "object"} and field:
                hint = (f"; send `{field}` as JSON text, e.g. "
                        f"{json.dumps(example_of(schema), ensure_ascii=False)}")
            yield FieldProblem(field, expected, _got(instance),
                               f"{_subject(field)}: expected {expected}, got {_got(instance)}{hint}")


def _unknown(field: str, name: str, accepted: list[str]) -> FieldProblem:
    listed = ", ".join(accepted) or "none"
    close = difflib.get_close_matches(name, accepted, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return FieldProblem(field, f"one of the accepted fields: {listed}", "an unknown field",
                        f"field `{field}` is not accepted; accepted fields: {listed}{hint}")


def _non_finite(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, index))


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _subject(field: str) -> str:
    return f"field `{field}`" if field else "the arguments"


def _types(schema: Any) -> list[str]:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return [kind] if isinstance(kind, str) else list(kind or [])


def _expected(schema: Any) -> str:
    """What a schema accepts, in words: "integer or null", "array of exactly 4 numbers", "one of 0, 1"."""
    if schema is False:
        return "no value at all"
    if not isinstance(schema, dict):
        return "any JSON value"
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return f"exactly {json.dumps(schema['const'])}"
    kinds = _types(schema)
    words = [_one_type(kind, schema) for kind in kinds if kind != "null"]
    if not kinds:
        return "any JSON value"
    return " or ".join(words + (["null"] if "null" in kinds else []))


def _one_type(kind: str, schema: dict[str, Any]) -> str:
    if kind == "string":
        if schema.get("format") == "date-time":
            return f"ISO 8601 date-time string (e.g. {_DATETIME_EXAMPLE})"
        return "base64-encoded string" if schema.get("contentEncoding") == "base64" else "string"
    if kind in ("integer", "number"):
        bounds = [f"{op} {schema[key]}" for key, op in _BOUNDS if key in schema]
        return f"{kind} {' and '.join(bounds)}" if bounds else kind
    if kind == "array":
        return _array_words(schema.get("minItems"), schema.get("maxItems"), schema.get("items"))
    if kind == "object":
        if schema.get("properties"):
            return f"object with fields {', '.join(schema['properties'])}"
        values = schema.get("additionalProperties")
        return f"object whose values are each {_expected(values)}" if isinstance(values, dict) else "object"
    return "boolean (true or false)" if kind == "boolean" else kind


def _array_words(low: int | None, high: int | None, items: Any) -> str:
    if isinstance(items, dict) and set(items) <= {"type", "description"} and items.get("type") in _PLURALS:
        what = _PLURALS[items["type"]]  # "array of numbers"
    else:
        what = "items" if items in (None, True, {}) else f"items (each {_expected(items)})"
    if low is not None and low == high:
        return f"array of exactly {low} {what}"
    if low is not None and high is not None:
        return f"array of {low} to {high} {what}"
    if low is not None or high is not None:
        return f"array of at least {low} {what}" if low is not None else f"array of at most {high} {what}"
    return f"array of {what}"


def _got(value: Any) -> str:
    """The value received, short enough to quote back."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"number {value!r}" if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        shown = value if len(value) <= 60 else f"{value[:57]}..."
        return f"string {shown!r}" + (f" ({len(value)} characters)" if len(value) > 60 else "")
    if isinstance(value, list):
        return f"array of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        names = list(value)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"object with fields {shown}" if names else "an empty object"
    return type(value).__name__


# The wording of a field problem, shared with the model host's own check (bridge/model_host/payload.py).
expected_words = _expected
got_words = _got
