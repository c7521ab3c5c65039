"""Shadow traffic without servers: the policy's shadow alias and rate, the comparison of two answers, windows
and their MLflow summary, and the mirror behind a real Invoker over fake model hosts (a slow shadow, a tiny
queue, a failing shadow, a canary or pinned call)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from bridge.invoker import Invoker
from bridge.live import LiveVersion, Route
from bridge.schema import input_schema
from bridge.shadow import ShadowMirror, ShadowSettings, WindowCounter, compare, shadow_target
from bridge.shadow.mirror import Disagreement
from bridge.toolspec import ToolSpec
from bridge.validation import compile_validator
from registry_sync import ApprovalPolicy, ModelVersionRef, RegisteredModelInfo, select_candidates
from registry_sync.shadow import ShadowWindow, assign_steps, merged_summary, without_shadow_tags

pytestmark = pytest.mark.anyio

SIGNATURE = {"inputs": [{"type": "long", "name": "x", "required": True}], "outputs": None, "params": None}


# --- the policy ---------------------------------------------------------------------------------------------

def model(aliases: dict[str, str], tags: dict[str, str] | None = None) -> RegisteredModelInfo:
    return RegisteredModelInfo(name="scorer", aliases=aliases, tags=tags or {})


def test_the_shadow_alias_makes_a_shadow_candidate_with_its_rate_next_to_the_champion() -> None:
    found, excluded = select_candidates([model({"champion": "1", "shadow": "2"},
                                               {"toolbridge.shadow_rate": "0.25"})], ApprovalPolicy())
    assert [(c.version, c.role, c.shadow_rate) for c in found] == [("1", "champion", 0.0),
                                                                   ("2", "shadow", 0.25)]
    assert excluded == []


def test_a_shadow_on_the_champion_or_the_canary_or_without_a_champion_is_no_shadow() -> None:
    for aliases in ({"champion": "1", "shadow": "1"}, {"champion": "1", "challenger": "2", "shadow": "2"},
                    {"shadow": "2"}):
        found, _ = select_candidates([model(aliases)], ApprovalPolicy())
        assert "shadow" not in {c.role for c in found}, aliases


def test_a_bad_shadow_rate_keeps_the_champion_and_says_how_to_fix_the_tag() -> None:
    for raw in ("often", "1.5", "nan"):
        found, excluded = select_candidates([model({"champion": "1", "shadow": "2"},
                                                   {"toolbridge.shadow_rate": raw})], ApprovalPolicy())
        assert [c.role for c in found] == ["champion"]
        assert len(excluded) == 1 and "shadow version 2" in excluded[0].reason
        assert "toolbridge.shadow_rate" in excluded[0].reason and "between 0 and 1" in excluded[0].reason


def test_the_shadow_tags_toolbridge_writes_are_not_the_versions_metadata() -> None:
    assert without_shadow_tags({"toolbridge.shadow.summary": "{}", "toolbridge.shadow.run_id": "r",
                                "owner": "ds"}) == {"owner": "ds"}


# --- comparing two answers ----------------------------------------------------------------------------------

def test_classifier_answers_compare_labels_and_probabilities() -> None:
    same = compare({"label": "a", "probabilities": {"a": 0.8, "b": 0.2}},
                   {"label": "a", "probabilities": {"a": 0.6, "b": 0.4}})
    assert same.agree and same.labels == ("a", "a")
    assert same.mean_abs_diff == pytest.approx(0.2) and same.max_abs_diff == pytest.approx(0.2)
    differ = compare({"label": "a", "probabilities": {"a": 0.6, "b": 0.4}},
                     {"label": "b", "probabilities": {"a": 0.3, "b": 0.7}})
    assert not differ.agree and differ.labels == ("a", "b")


def test_regressor_answers_compare_by_absolute_difference() -> None:
    result = compare({"prediction": 10.0}, {"prediction": 12.5})
    assert not result.agree and result.mean_abs_diff == 2.5 and result.labels is None
    assert compare({"prediction": 3}, {"prediction": 3.0}).agree
    vector = compare({"prediction": [1.0, 2.0]}, {"prediction": [1.0, 5.0]})
    assert not vector.agree and vector.mean_abs_diff == 1.5 and vector.max_abs_diff == 3.0


def test_text_predictions_count_as_labels() -> None:
    result = compare({"prediction": "high"}, {"prediction": "low"})
    assert not result.agree and result.labels == ("high", "low")


def test_a_window_closes_after_n_calls_with_agreement_confusion_errors_and_latencies() -> None:
    now = [100.0]
    counter = WindowCounter(model="m", tool="t", shadow_version="2", window_calls=4, window_seconds=60,
                            clock=lambda: now[0])
    for mine, theirs in (("a", "a"), ("a", "b"), ("b", "b")):
        counter.add("1", compare({"prediction": mine}, {"prediction": theirs}), 0.010, 0.020)
        assert not counter.due()
    counter.add("1", None, 0.010, 0.030)  # the shadow failed
    assert counter.due()
    window = counter.close()
    assert (window.compared, window.agreed, window.shadow_errors) == (3, 2, 1)
    assert window.confusion == {"a": {"a": 1, "b": 1}, "b": {"b": 1}}
    assert window.champion_p50_ms == pytest.approx(10.0) and window.shadow_p99_ms == pytest.approx(30.0)
    assert window.metrics()["agreement"] == pytest.approx(2 / 3) and window.sequence == 0
    assert counter.calls == 0 and counter.sequence == 1


def test_the_open_window_shows_its_counts_confusion_and_p50_latencies_so_far() -> None:
    counter = WindowCounter(model="m", tool="t", shadow_version="2", window_calls=100, window_seconds=60,
                            clock=lambda: 100.0)
    assert counter.snapshot()["champion_p50_ms"] is None and counter.snapshot()["confusion"] == {}
    counter.add("1", compare({"label": "a"}, {"label": "b"}), 0.010, 0.030)
    counter.add("1", compare({"label": "a"}, {"label": "a"}), 0.020, 0.040)
    counter.add("1", compare({"label": "a"}, {"label": "a"}), None, 0.050)  # cached: no champion latency
    counter.drop()
    snapshot = counter.snapshot()
    assert {k: snapshot[k] for k in ("calls", "compared", "agreed", "shadow_errors", "dropped")} == {
        "calls": 3, "compared": 3, "agreed": 2, "shadow_errors": 0, "dropped": 1}
    assert snapshot["confusion"] == {"a": {"b": 1, "a": 2}}
    assert snapshot["champion_p50_ms"] == pytest.approx(10.0)
    assert snapshot["shadow_p50_ms"] == pytest.approx(40.0)
    snapshot["confusion"]["a"]["a"] = 99  # a copy: the counter's own table is untouched
    assert counter.confusion == {"a": {"b": 1, "a": 2}}


def test_a_quiet_window_closes_after_m_seconds_and_an_empty_one_never() -> None:
    now = [100.0]
    counter = WindowCounter(model="m", tool="t", shadow_version="2", window_calls=100, window_seconds=5,
                            clock=lambda: now[0])
    now[0] += 10
    assert not counter.due()
    counter.add("1", compare({"prediction": 1}, {"prediction": 1}), None, 0.001)
    assert not counter.due()
    now[0] += 5
    assert counter.due()


def window(sequence: int, compared: int, agreed: int) -> ShadowWindow:
    return ShadowWindow(model="m", tool="t", shadow_version="2", champion_version="1", sequence=sequence,
                        ended_at=1.0, seconds=1.0, compared=compared, agreed=agreed,
                        confusion={"a": {"a": agreed, "b": compared - agreed}})


def test_the_summary_adds_windows_once_even_when_a_write_is_retried() -> None:
    first = merged_summary(None, [(0, window(0, 10, 9)), (1, window(1, 10, 7))], "run-1")
    again = merged_summary(first, [(1, window(1, 10, 7)), (2, window(2, 20, 20))], "run-1")
    totals = json.loads(again)
    assert (totals["calls_compared"], totals["agreed"], totals["last_step"]) == (40, 36, 2)
    assert totals["agreement"] == pytest.approx(0.9) and totals["confusion"] == {"a": {"a": 36, "b": 4}}
    assert json.loads(merged_summary("not json", [], "run-1"))["calls_compared"] == 0


# --- the mirror behind the invoker --------------------------------------------------------------------------

class Host:
    """Answers `answer(x)`; optionally slow (an event to wait for) or failing on some rows."""

    def __init__(self, answer: Any, gate: asyncio.Event | None = None) -> None:
        self.answer, self.gate = answer, gate
        self.calls = 0

    async def predict(self, key: str, payload: dict[str, Any],
                      uri: str | None = None) -> list[dict[str, Any]]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        x = payload["records"][0]["x"]
        return [{"prediction": self.answer(x)}]


def live(version: str, host: Host, sensitivity: str = "normal") -> LiveVersion:
    spec = ToolSpec(name="scorer", description="d", model_name="scorer_model", model_version=version,
                    model_uri=f"models:/scorer_model/{version}", input_schema=input_schema(SIGNATURE),
                    output_schema={"type": "object"}, signature=SIGNATURE, sensitivity=sensitivity)
    return LiveVersion(spec=spec, host=host, host_name="shared-0",  # type: ignore[arg-type]
                       validator=compile_validator(spec.input_schema), smoke_tested=True)


def ref(tags: dict[str, str] | None = None, rate: float = 1.0) -> ModelVersionRef:
    return ModelVersionRef(name="scorer_model", version="2", uri="models:/scorer_model/2", tool_name="scorer",
                           role="shadow", shadow_rate=rate, model_tags=tags or {})


def setup(shadow_host: Host, *, queue_size: int = 100, window_calls: int = 1000,
          canary: LiveVersion | None = None, sensitivity: str = "normal", tags: dict[str, str] | None = None,
          rate: float = 1.0) -> tuple[Invoker, ShadowMirror, Host]:
    champion_host = Host(lambda x: "high" if x >= 50 else "low")
    champion = live("1", champion_host, sensitivity)
    shadow = live("2", shadow_host, sensitivity)
    routes = {"scorer": Route(champion=champion, canary=canary, canary_weight=1.0 if canary else 0.0,
                              pinned={"1": champion, **({"3": canary} if canary else {})},
                              shadow=shadow_target(shadow, ref(tags, rate)))}
    settings = ShadowSettings(queue_size=queue_size, concurrency=1, window_calls=window_calls)
    mirror = ShadowMirror(settings, lambda: routes, rng=random.Random(0))
    return Invoker(lambda: routes, rng=random.Random(0), shadow=mirror), mirror, champion_host


def totals(mirror: ShadowMirror) -> dict[str, Any]:
    row = mirror.status()[0]
    open_window = row["open_window"] or {}
    return {"compared": row["totals"]["calls_compared"] + open_window.get("compared", 0),
            "agreed": row["totals"]["agreed"] + open_window.get("agreed", 0),
            "errors": row["totals"]["shadow_errors"] + open_window.get("shadow_errors", 0),
            "dropped": row["totals"]["dropped"] + open_window.get("dropped", 0)}


async def test_callers_get_the_champions_answer_while_the_shadow_is_stuck_and_a_full_queue_drops() -> None:
    gate = asyncio.Event()
    invoker, mirror, _ = setup(Host(lambda x: "high" if x >= 40 else "low", gate), queue_size=2)
    await mirror.start()
    try:
        answers = [await invoker.invoke("scorer", {"x": 0})]
        for _ in range(3):  # the worker takes that call and waits on the stuck shadow
            await asyncio.sleep(0)
        answers += [await invoker.invoke("scorer", {"x": x}) for x in range(1, 10)]
        assert [a.output["prediction"] for a in answers] == ["low"] * 10
        assert {a.model_version for a in answers} == {"1"}
        # One call held by the stuck worker, two waiting in the queue: the other seven were dropped.
        assert totals(mirror)["dropped"] == 7 and mirror.queued == 2
        gate.set()
        await mirror.drain()
        assert totals(mirror) == {"compared": 3, "agreed": 3, "errors": 0, "dropped": 7}
    finally:
        await mirror.stop()


async def test_agreement_is_the_share_of_answers_alike_and_windows_reach_the_listeners() -> None:
    invoker, mirror, _ = setup(Host(lambda x: "high" if x >= 40 else "low"), window_calls=25)
    windows: list[ShadowWindow] = []
    examples: list[Disagreement] = []
    mirror.window_listeners.append(windows.append)
    mirror.disagreement_listeners.append(examples.append)
    await mirror.start()
    try:
        for x in range(100):
            await invoker.invoke("scorer", {"x": x})
            await mirror.drain()
    finally:
        await mirror.stop()
    assert [w.compared for w in windows] == [25, 25, 25, 25]
    assert sum(w.agreed for w in windows) == 90  # 40..49 answered differently
    # GET /shadow lists each window's confusion table (champion label → shadow label → calls)
    listed = mirror.status()[0]["windows"]
    assert [w["confusion"] for w in listed] == [{"low": {"low": 25}}, {"low": {"low": 15, "high": 10}},
                                                {"high": {"high": 25}}, {"high": {"high": 25}}]
    assert [w["calls_compared"] for w in listed] == [25, 25, 25, 25]
    assert len(examples) == 10 and examples[0].champion_output == {"prediction": "low"}
    assert examples[0].shadow_output == {"prediction": "high"} and len(examples[0].input_sha256) == 64


async def test_a_failing_shadow_is_counted_and_never_reaches_the_caller() -> None:
    def sometimes(x: int) -> str:
        if x % 3 == 0:
            raise ValueError("shadow cannot score this row")
        return "low"

    invoker, mirror, _ = setup(Host(sometimes))
    await mirror.start()
    try:
        for x in range(30):
            assert (await invoker.invoke("scorer", {"x": x})).output["prediction"] == "low"
        await mirror.drain()
        assert totals(mirror) == {"compared": 20, "agreed": 20, "errors": 10, "dropped": 0}
    finally:
        await mirror.stop()


async def test_canary_and_pinned_calls_are_not_mirrored() -> None:
    shadow_host = Host(lambda x: "low")
    invoker, mirror, _ = setup(shadow_host, canary=live("3", Host(lambda x: "low")))
    await mirror.start()
    try:
        assert (await invoker.invoke("scorer", {"x": 1})).model_version == "3"  # canary weight 1
        assert (await invoker.invoke("scorer", {"x": 1}, version="1")).model_version == "1"
        await mirror.drain()
        assert shadow_host.calls == 0
    finally:
        await mirror.stop()


async def test_a_restricted_tool_is_mirrored_only_when_its_tag_allows_it() -> None:
    blocked_host, allowed_host = Host(lambda x: "low"), Host(lambda x: "low")
    blocked, blocked_mirror, _ = setup(blocked_host, sensitivity="restricted")
    allowed, allowed_mirror, _ = setup(allowed_host, sensitivity="restricted",
                                       tags={"toolbridge.shadow_restricted": "true"})
    for invoker, mirror in ((blocked, blocked_mirror), (allowed, allowed_mirror)):
        await mirror.start()
        await invoker.invoke("scorer", {"x": 1})
        await mirror.drain()
        await mirror.stop()
    assert blocked_host.calls == 0 and allowed_host.calls == 1
    assert "toolbridge.shadow_restricted=true" in blocked_mirror.status()[0]["blocked"]


async def test_the_rate_mirrors_a_sample_of_the_calls() -> None:
    shadow_host = Host(lambda x: "low")
    invoker, mirror, _ = setup(shadow_host, rate=0.3, queue_size=1000)
    await mirror.start()
    try:
        for x in range(1000):
            await invoker.invoke("scorer", {"x": x % 40})
        await mirror.drain()
    finally:
        await mirror.stop()
    assert 230 <= shadow_host.calls <= 370


def test_steps_continue_after_the_summary_and_a_retried_window_keeps_its_step() -> None:
    first, second = window(0, 10, 9), window(1, 10, 9)
    assert [s for s, _ in assign_steps([first, second], None, {})] == [0, 1]
    assert [s for s, _ in assign_steps([first, second], 6, {})] == [7, 8]
    # `first` was logged at step 7 by a write that failed before its summary: it keeps it, `second` follows
    assert [s for s, _ in assign_steps([first, second], 6, {("m/2", 0): 7})] == [7, 8]


async def test_shadow_calls_wait_while_a_caller_is_being_answered() -> None:
    shadow_host = Host(lambda x: "low")
    invoker, mirror, champion_host = setup(shadow_host)
    slow = asyncio.Event()
    answer = champion_host.answer

    async def predict(key: str, payload: dict[str, Any], uri: str | None = None) -> list[dict[str, Any]]:
        if payload["records"][0]["x"] == 99:
            await slow.wait()
        return [{"prediction": answer(payload["records"][0]["x"])}]

    champion_host.predict = predict  # type: ignore[method-assign]
    await mirror.start()
    try:
        pending = asyncio.create_task(invoker.invoke("scorer", {"x": 99}))  # a caller still being answered
        await asyncio.sleep(0)
        await invoker.invoke("scorer", {"x": 1})  # answered, and offered to the shadow
        for _ in range(5):
            await asyncio.sleep(0)
        assert shadow_host.calls == 0 and mirror.queued == 0  # taken by the worker, held back
        slow.set()
        await pending
        await mirror.drain()
        assert shadow_host.calls == 2
    finally:
        await mirror.stop()
