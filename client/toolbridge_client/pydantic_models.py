"""A tool's input JSON Schema → a pydantic model that validates the same arguments (pure, no I/O).

Two users: the LangChain toolkit (LangChain validates a tool's arguments only when its ``args_schema`` is a
pydantic model, DESIGN.md "LangChain") builds one per tool from the catalog's ``input_schema``; the model host
builds one per loaded version from the version's own signature, once at load time, and checks every input row
with it (`strict=True`). It lives in bridge because bridge must not import tool_server. The builder reads the
subset of JSON Schema that `bridge.schema.input_schema` emits, and degrades to ``Any`` on anything else:

- ``number`` → float (finite: JSON has no NaN), ``integer`` → int, ``boolean`` → bool, ``string`` → str,
  ``null`` → None; ``type: [T, "null"]`` → ``T | None``; no ``type`` → Any.
- ``enum`` → ``Literal[...]``; ``minimum``/``maximum`` (and exclusive ones) → ge/le/gt/lt;
  ``minLength``/``maxLength``/``pattern`` on strings.
- ``array`` → ``list[item]``, ``minItems``/``maxItems`` as length bounds (tensors: one list per dimension).
- ``object`` with ``properties`` → a nested model; ``additionalProperties: false`` → ``extra="forbid"``;
  ``additionalProperties: {schema}`` alone (an MLflow Map) → ``dict[str, value]``.
- a property outside ``required`` gets the default None (a missing optional field means null to the server).

Pydantic's lax mode is the default on purpose ("40" → 40 for an integer field): whatever the model accepts,
it dumps as arguments the server's schema accepts too; `to_arguments` is that dump. ``strict=True`` (the model
host) accepts JSON's own types only, as the server's JSON Schema does: no "40" for 40, no true for 1; an
integral number (3.0) still passes as an integer, as JSON Schema counts it one.

Property names that are not usable as Python attributes (``sepal.length``, ``class``, ``json``, ``2nd``)
become safe field names with the property name as alias; the model validates and dumps by alias.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

__all__ = ["model_from_schema", "to_arguments"]

JsonSchema = Mapping[str, Any]

_SCALARS: Mapping[str, Any] = {"number": float, "integer": int, "boolean": bool, "string": str}
_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"}
_STRING_RULES = {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"}


def _python_name(prop: str, taken: set[str]) -> str:
    """A field name pydantic accepts for `prop`: an identifier, not a keyword, not private, not a
    BaseModel attribute (shadowing one warns, and our pytest turns warnings into errors)."""
    name = re.sub(r"\W", "_", prop)
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or hasattr(BaseModel, name):
        name = f"f_{name.lstrip('_')}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Tool"


def _integral(value: Any) -> Any:
    """3.0 → 3: JSON Schema counts an integral number as an integer; strict pydantic would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_STRICT_INT = Annotated[int, BeforeValidator(_integral)]


def _scalar(kind: str, schema: JsonSchema, model_name: str, strict: bool) -> Any:
    if kind == "null":
        return type(None)
    if kind == "array":
        return _array(schema, model_name, strict)
    if kind == "object":
        return _object(schema, model_name, strict)
    python = _SCALARS.get(kind)
    if python is None:  # a type JSON Schema does not define: leave it to the server
        return Any
    if kind == "integer" and strict:
        python = _STRICT_INT
    constraints: dict[str, Any] = {}
    if kind in ("number", "integer"):
        constraints = {arg: schema[key] for key, arg in _BOUNDS.items()
                       if isinstance(schema.get(key), int | float)}
    elif kind == "string":
        constraints = {arg: schema[key] for key, arg in _STRING_RULES.items() if key in schema}
    if kind == "number":
        constraints["allow_inf_nan"] = False
    return Annotated[python, Field(**constraints)] if constraints else python


def _array(schema: JsonSchema, model_name: str, strict: bool) -> Any:
    items = schema.get("items")
    item = _annotation(items, f"{model_name}Item", strict) if isinstance(items, Mapping) else Any
    lengths = {arg: schema[key] for key, arg in (("minItems", "min_length"), ("maxItems", "max_length"))
               if isinstance(schema.get(key), int)}
    return Annotated[list[item], Field(**lengths)] if lengths else list[item]  # type: ignore[valid-type]


def _object(schema: JsonSchema, model_name: str, strict: bool) -> Any:
    extra = schema.get("additionalProperties", True)
    if "properties" in schema or extra is False:
        return model_from_schema(schema, model_name, strict=strict)
    if isinstance(extra, Mapping):  # an MLflow Map: any keys, typed values
        return dict[str, _annotation(extra, f"{model_name}Value", strict)]  # type: ignore[misc]
    return dict[str, Any]


def _annotation(schema: JsonSchema, model_name: str, strict: bool) -> Any:
    """The Python type that accepts exactly what `schema` accepts (as far as pydantic can say it)."""
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    kinds = schema.get("type")
    if kinds is None:
        return Any
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    types = [_scalar(k, schema, model_name, strict) for k in kinds if k != "null"]
    if not types:
        return type(None)
    annotation = types[0] if len(types) == 1 else Union[tuple(types)]  # noqa: UP007 - built at runtime
    return annotation | None if "null" in kinds else annotation


def model_from_schema(schema: JsonSchema, name: str, *, strict: bool = False) -> type[BaseModel]:
    """A pydantic model for the object `schema`; `name` (the tool's) names it and its nested models.

    `strict`: accept JSON's own types only (see the module docstring); lax by default.
    """
    model_name = _camel(name)
    required = set(schema.get("required") or [])
    taken: set[str] = set()
    fields: dict[str, Any] = {}
    for prop, sub in (schema.get("properties") or {}).items():
        sub = sub if isinstance(sub, Mapping) else {}
        field_name = _python_name(prop, taken)
        annotation = _annotation(sub, f"{model_name}{_camel(prop)}", strict)
        default: Any = ... if prop in required else None  # `...`: required
        info: FieldInfo = Field(default, alias=prop, description=sub.get("description"))
        if prop not in required:
            annotation = annotation | None  # absent means null, whatever the schema's type says
        fields[field_name] = (annotation, info)
    extra: Literal["forbid", "allow"] = "forbid" if schema.get("additionalProperties") is False else "allow"
    # Strict (the host) also refuses fields keyed by their Python name: the model is fed by column name.
    config = ConfigDict(extra=extra, validate_by_alias=True, validate_by_name=not strict, strict=strict,
                        protected_namespaces=(), title=schema.get("title") or model_name)
    model: type[BaseModel] = create_model(model_name, __config__=config, **fields)
    model.__doc__ = schema.get("description") or f"Arguments of `{name}`."
    return model


def to_arguments(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON arguments to send for `values` (keyed by property or field name, nested models allowed)."""
    return model.model_validate(dict(values)).model_dump(mode="json", by_alias=True)
