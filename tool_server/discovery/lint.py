"""The catalog lint: each tool's text as agents will read it, checked at each registry sync (pure).

Whatever a data scientist writes in MLflow goes verbatim into every agent's prompt. Findings, by kind:

    warn only (reported, never quarantined)
        missing_description   no registered-model, version or tag description: the LLM reads a generated one
        undocumented_field    an argument with no description (tag toolbridge.field_descriptions)
        no_input_example      no input example: the version went live without a smoke test
        unit_unknown          a numeric argument whose description names no unit (years, USD, ratio 0-1...)
        toolset_name          a name in toolbridge.toolsets that cannot be a toolset (lower case, a-z0-9_-)
    blocking (quarantined under TOOLBRIDGE_CATALOG_POLICY=quarantine)
        instruction_text      text aimed at the LLM rather than describing the model ("ignore the previous
                              instructions", "always call this tool first")
        invisible_unicode     zero-width, bidirectional, tag or control characters
        too_long              a description past TOOLBRIDGE_DESCRIPTION_MAX_CHARS (a field's or an output
                              label's past a quarter)

The blocking checks read the description, each field's description and each output label (the class labels
of `label` and the keys of `probabilities`): agents read labels in the output schema and in the description.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bridge.toolspec import TOOLSET_NAME, ToolSpec

__all__ = ["BLOCKING", "TAG_LINT", "Finding", "blocks", "lint_tag_value", "lint_tool", "output_labels"]

TAG_LINT = "toolbridge.lint"
BLOCKING = frozenset({"instruction_text", "invisible_unicode", "too_long"})
MAX_TAG_CHARS = 4000  # well under MLflow's limit on a tag value
# The generated first sentence of an argument nobody documented (bridge/schema.py::_property).
_GENERATED_FIELD = re.compile(r"^(Column `|Unnamed input column |Input tensor|Inference parameter `)")
_NO_DESCRIPTION = "No description was provided by the owners"
_INSTRUCTIONS = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in (
    r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+)?(previous|prior|above|"
    r"earlier|other|system)\s+(instructions?|prompts?|rules|messages|guidelines)",
    r"\b(always|must|should|need to)\s+(call|use|invoke|run|pick|choose|prefer|select)\s+this\s+tool",
    r"\b(call|use|invoke|run)\s+this\s+tool\s+(first|before|instead|every\s+time|whenever)",
    r"\b(instead of|rather than|before)\s+(using\s+|calling\s+)?(any\s+|all\s+|the\s+)?other\s+tools?",
    r"\bdo\s+not\s+(tell|inform|show|reveal|mention)\b.{0,30}\b(user|human)",
    r"\b(system|developer)\s+prompt\b",
    r"\byou\s+are\s+now\b",
    r"\bnew\s+instructions?\s*:",
    r"<\|?(system|im_start|im_end|assistant)\|?>",
    r"^\s*(system|assistant)\s*:",
    r"\b(send|forward|post|upload|include)\b.{0,40}\b(api[ _-]?keys?|passwords?|secrets?|credentials|"
    r"conversation|chat history)\b",
)]
# A unit or scale a reader can act on. Not bare `s`, `per`, `id` or `index`: they occur in any sentence
# ("customer's", "per customer", "index of the row") without saying what the number measures.
_UNIT = re.compile(
    r"(%|\$|€|£|°|(?<!['’])\b(years?|months?|weeks?|days?|hours?|minutes?|seconds?|secs?|ms|percent(age)?|"
    r"per ?cent|pct|ratio|share|fraction|proportion|probability|rate|count|number of|usd|eur|gbp|chf|jpy|"
    r"dollars?|euros?|cents?|kg|grams?|lbs?|pounds?|tons?|tonnes?|km|meters?|metres?|cm|mm|miles?|celsius|"
    r"fahrenheit|kelvin|rpm|hz|khz|mhz|kw|kwh|mwh|watts?|volts?|amps?|bar|psi|kpa|nm|bps|kb|mb|gb|tb|"
    r"m/s|km/h|kmh|mph|units?|items?|points?|score|z-score|scaled|normali[sz]ed|standardi[sz]ed|times|"
    r"flag|0/1|binary|code|rank|level|grade|ordinal|category)\b"
    r"|\b\d+(\.\d+)?\s*(-|–|to)\s*\d+(\.\d+)?\b)", re.IGNORECASE)  # or a scale: 0-1, 1 to 5, 18-100


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: Literal["warn", "block"]
    where: str  # "description", "field `age`", "tag toolbridge.toolsets"
    message: str  # what is wrong and how to fix it in MLflow

    def public(self) -> dict[str, str]:
        return asdict(self)


def _finding(kind: str, where: str, message: str) -> Finding:
    return Finding(kind, "block" if kind in BLOCKING else "warn", where, message)


def _invisible(text: str) -> list[str]:
    found = []
    for char in dict.fromkeys(text):
        category = unicodedata.category(char)
        if category in ("Cf", "Co", "Zl", "Zp") or (category == "Cc" and char not in "\n\t\r"):
            found.append(f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}")
    return found


_DESCRIBE = "describe what the model computes and when it is useful, not how an agent must behave"
_RENAME = "rename the class: agents read the labels in the output schema and in the description"


def _instruction(text: str, covered: frozenset[str]) -> str | None:
    for pattern in _INSTRUCTIONS:
        for match in pattern.finditer(text):
            said = match.group(0).strip()
            if said not in covered:
                return said
    return None


def _text_findings(text: str, where: str, limit: int, fix: str = _DESCRIBE,
                   covered: frozenset[str] = frozenset()) -> Iterator[Finding]:
    """The blocking findings of one text. `covered`: evidence already reported as blocking elsewhere (an
    output label that the description repeats), so one fault is reported once, where it is fixed."""
    said = _instruction(text, covered)
    if said is not None:
        yield _finding("instruction_text", where,
                       f"{where} contains {said!r}, an instruction aimed at the LLM; {fix}")
    invisible = [c for c in _invisible(text) if c not in covered]
    if invisible:
        yield _finding("invisible_unicode", where,
                       f"{where} contains invisible or bidirectional characters "
                       f"({', '.join(invisible[:5])}); retype the text without them")
    if len(text) > limit:
        yield _finding("too_long", where, f"{where} is {len(text)} characters, over the limit of {limit} "
                       "(TOOLBRIDGE_DESCRIPTION_MAX_CHARS); every agent carries it on every turn: shorten it")


def output_labels(spec: ToolSpec) -> list[str]:
    """The labels agents read in a tool's output schema: `label`'s values and `probabilities`' keys."""
    props = spec.output_schema.get("properties") or {}
    labels = [str(v) for v in (props.get("label") or {}).get("enum") or []]
    labels += [str(k) for k in (props.get("probabilities") or {}).get("properties") or {}]
    return list(dict.fromkeys(labels))


def _label_findings(spec: ToolSpec, limit: int) -> tuple[list[Finding], frozenset[str]]:
    """Each output label's findings, and their evidence (matched text, invisible characters)."""
    findings: list[Finding] = []
    evidence: set[str] = set()
    for label in output_labels(spec):
        shown = label if len(label) <= 40 else label[:40] + "..."
        found = list(_text_findings(label, f"output label {shown!r}", limit, _RENAME))
        findings += found
        evidence.update(m.group(0).strip() for p in _INSTRUCTIONS for m in p.finditer(label))
        evidence.update(_invisible(label))
    return findings, frozenset(evidence)


def _numeric(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return bool({"number", "integer"} & set(kinds))


def lint_tool(spec: ToolSpec, *, has_input_example: bool = True, toolsets_tag: str = "",
              max_chars: int = 2000) -> tuple[Finding, ...]:
    """Every finding of one tool, in a stable order."""
    findings: list[Finding] = []
    if spec.description.startswith(_NO_DESCRIPTION):
        findings.append(_finding("missing_description", "description",
                                 "no description: set the registered model's description in MLflow (what it "
                                 "predicts, for whom, when an agent should call it)"))
    labels, covered = _label_findings(spec, max_chars // 4)
    findings.extend(_text_findings(spec.description, "description", max_chars, covered=covered))
    for name, schema in (spec.input_schema.get("properties") or {}).items():
        where = f"field `{name}`"
        described = str(schema.get("description", ""))
        if _GENERATED_FIELD.match(described):
            findings.append(_finding("undocumented_field", where,
                                     f"{where} has no description: add it to the model tag "
                                     'toolbridge.field_descriptions, e.g. {"' + name + '": "meaning, unit"}'))
        else:
            findings.extend(_text_findings(described, where, max_chars // 4))
            if _numeric(schema) and not _UNIT.search(described):
                findings.append(_finding("unit_unknown", where,
                                         f"{where} is a number but its description names no unit: say it "
                                         "(e.g. 'in years', 'USD', 'ratio 0-1')"))
    findings.extend(labels)
    if not has_input_example:
        findings.append(_finding("no_input_example", "input example",
                                 "the version has no input example, so it went live without a smoke test: "
                                 "log the model with input_example=..."))
    for name in (part.strip() for part in toolsets_tag.split(",")):
        if name and not TOOLSET_NAME.match(name.lower()):
            findings.append(_finding("toolset_name", "tag toolbridge.toolsets",
                                     f"toolset {name!r} is left out: a toolset name is 1 to 64 characters "
                                     "a-z, 0-9, _ or -"))
    return tuple(findings)


def blocks(findings: Sequence[Finding]) -> bool:
    return any(f.severity == "block" for f in findings)


def lint_tag_value(findings: Sequence[Finding]) -> str:
    """The `toolbridge.lint` version tag: the findings as a JSON list ("" when there are none)."""
    if not findings:
        return ""
    rows = [{"kind": f.kind, "severity": f.severity, "message": f.message} for f in findings]
    text = json.dumps(rows, ensure_ascii=False)
    while len(text) > MAX_TAG_CHARS and rows:
        rows = rows[:-1]
        text = json.dumps([*rows, {"kind": "more", "severity": "warn",
                                   "message": "more findings: see toolbridge status"}], ensure_ascii=False)
    return text
