"""Approval policy: which aliased versions become tools, under which names."""

from __future__ import annotations

import pytest

from registry_sync import ApprovalPolicy, RegisteredModelInfo, SyncSettings, safe_tool_name, select_candidates


def model(name: str, aliases: dict[str, str], **tags: str) -> RegisteredModelInfo:
    return RegisteredModelInfo(name=name, aliases=aliases,
                               tags={k.replace("__", "."): v for k, v in tags.items()})


def test_champion_alias_approves_its_version() -> None:
    found, excluded = select_candidates([model("m", {"champion": "3"})], ApprovalPolicy())
    assert [(c.model.name, c.version, c.role, c.tool_name) for c in found] == [("m", "3", "champion", "m")]
    assert excluded == []


def test_model_without_approval_alias_is_not_a_tool() -> None:
    found, _ = select_candidates([model("m", {"staging": "2"})], ApprovalPolicy())
    assert found == []


def test_enabled_false_tag_withdraws_whatever_the_aliases() -> None:
    found, _ = select_candidates([model("m", {"champion": "1"}, toolbridge__enabled="false")],
                                 ApprovalPolicy())
    assert found == []


def test_required_tags_filter_models() -> None:
    policy = ApprovalPolicy(required_tags={"agent_tool": "true"})
    found, _ = select_candidates(
        [model("a", {"champion": "1"}, agent_tool="true"), model("b", {"champion": "1"})], policy
    )
    assert [c.model.name for c in found] == ["a"]


def test_challenger_becomes_canary_with_tag_weight() -> None:
    found, _ = select_candidates(
        [model("m", {"champion": "1", "challenger": "2"}, toolbridge__canary_weight="0.25")], ApprovalPolicy()
    )
    assert [(c.version, c.role, c.canary_weight) for c in found] == [
        ("1", "champion", 0.0), ("2", "canary", 0.25)]


def test_bad_canary_weight_is_reported_and_champion_stays() -> None:
    found, excluded = select_candidates(
        [model("m", {"champion": "1", "challenger": "2"}, toolbridge__canary_weight="lots")], ApprovalPolicy()
    )
    assert [c.version for c in found] == ["1"]
    assert "not a number" in excluded[0].reason


def test_tool_name_tag_overrides_model_name() -> None:
    found, _ = select_candidates([model("m", {"champion": "1"}, toolbridge__tool_name="score_risk")],
                                 ApprovalPolicy())
    assert found[0].tool_name == "score_risk"


def test_invalid_tool_name_tag_is_excluded_with_reason() -> None:
    found, excluded = select_candidates([model("m", {"champion": "1"}, toolbridge__tool_name="bad name!")],
                                        ApprovalPolicy())
    assert found == []
    assert "must match" in excluded[0].reason


def test_two_models_claiming_one_tool_name_are_both_excluded() -> None:
    found, excluded = select_candidates(
        [model("risk.v1", {"champion": "1"}), model("risk/v1", {"champion": "4"})], ApprovalPolicy()
    )
    assert found == []
    assert sorted(e.name for e in excluded) == ["risk.v1", "risk/v1"]
    assert all("also claimed by" in e.reason for e in excluded)


@pytest.mark.parametrize(("raw", "safe"), [("fin-sentiment", "fin-sentiment"), ("a.b c", "a_b_c"),
                                           ("é", "model"), ("x" * 80, "x" * 64)])
def test_safe_tool_name_matches_openai_rule(raw: str, safe: str) -> None:
    assert safe_tool_name(raw) == safe


def test_settings_read_comma_separated_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBRIDGE_APPROVAL_ALIASES", "champion, prod")
    assert SyncSettings().policy().approval_aliases == ("champion", "prod")


def test_settings_refuse_empty_alias_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBRIDGE_APPROVAL_ALIASES", " ")
    with pytest.raises(ValueError, match="at least one alias"):
        SyncSettings()
