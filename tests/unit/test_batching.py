"""bridge.model_host.batching: grouping, merging and splitting of concurrent calls, per-call fault isolation,
and the asyncio micro-batcher (pure and in-process: fake models, no HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.model_host.batching import MicroBatcher, merge, merge_key, predict_jobs, rows_of, split


def records(*values: float, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "records", "records": [{"x": v} for v in values], "params": params or {}}


class DoublingModel:
    """Answers 2·x per row and remembers each call's input; refuses a row whose x is negative."""

    def __init__(self) -> None:
        self.calls: list[list[float]] = []

    def __call__(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        xs = [row["x"] for row in payload["records"]] if payload["kind"] == "records" else payload["data"]
        self.calls.append(xs)
        if any(x < 0 for x in xs):
            raise ValueError("x must be >= 0")
        return [{"prediction": 2 * x} for x in xs]


def accept(payload: dict[str, Any]) -> None:
    """A validator with nothing to object to."""


def refuse_strings(payload: dict[str, Any]) -> None:
    for row in payload["records"]:
        if isinstance(row["x"], str):
            raise ValueError(f"field `x`: expected number, got string {row['x']!r}")


def test_calls_with_the_same_kind_and_params_share_a_key_and_others_do_not() -> None:
    assert merge_key(records(1), True) == merge_key(records(2, 3), True)
    assert merge_key(records(1, params={"t": 0.5}), True) == merge_key(records(2, params={"t": 0.5}), True)
    assert merge_key(records(1, params={"t": 0.5}), True) != merge_key(records(1, params={"t": 0.9}), True)
    tensor = {"kind": "tensor", "data": [[1.0]], "dtype": "float64"}
    assert merge_key(records(1), True) != merge_key(tensor, True)
    assert merge_key({"kind": "tensors", "data": {"a": [1]}, "dtype": {"a": "int64"}}, True) is None
    assert merge_key(records(1), batch_axis=False) is None


def test_merge_concatenates_rows_in_order_and_split_cuts_them_back() -> None:
    payloads = [records(1), records(2, 3), records(4)]

    merged = merge(payloads)

    assert [row["x"] for row in merged["records"]] == [1, 2, 3, 4]
    assert [rows_of(p) for p in payloads] == [1, 2, 1]
    assert split([{"p": 1}, {"p": 2}, {"p": 3}, {"p": 4}], [1, 2, 1]) == [[{"p": 1}], [{"p": 2}, {"p": 3}],
                                                                        [{"p": 4}]]
    tensors = merge([{"kind": "tensor", "data": [[1, 2]], "dtype": "float64"},
                     {"kind": "tensor", "data": [[3, 4], [5, 6]], "dtype": "float64"}])
    assert tensors == {"kind": "tensor", "data": [[1, 2], [3, 4], [5, 6]], "dtype": "float64", "params": {}}


def test_split_refuses_an_output_that_does_not_have_one_row_per_input_row() -> None:
    with pytest.raises(ValueError, match="2 rows for 3 input rows"):
        split([{"p": 1}, {"p": 2}], [1, 2])


def test_mergeable_calls_run_as_one_model_call_and_each_gets_its_own_rows() -> None:
    model = DoublingModel()

    results, outcome = predict_jobs([records(1), records(2, 3), records(4)], accept, model)

    assert results == [[{"prediction": 2}], [{"prediction": 4}, {"prediction": 6}], [{"prediction": 8}]]
    assert model.calls == [[1, 2, 3, 4]]
    assert (outcome.model_calls, outcome.fallbacks) == (1, 0)


def test_calls_with_different_params_get_a_model_call_per_group() -> None:
    model = DoublingModel()

    results, outcome = predict_jobs([records(1, params={"t": 1}), records(2, params={"t": 2}),
                                     records(3, params={"t": 1})], accept, model)

    assert results == [[{"prediction": 2}], [{"prediction": 4}], [{"prediction": 6}]]
    assert sorted(model.calls) == [[1, 3], [2]]
    assert outcome.model_calls == 2


def test_an_invalid_call_fails_alone_before_any_model_call() -> None:
    model = DoublingModel()

    results, _ = predict_jobs([records(1), records("forty"), records(3)], refuse_strings, model)  # type: ignore[arg-type]

    assert results[0] == [{"prediction": 2}] and results[2] == [{"prediction": 6}]
    assert isinstance(results[1], ValueError) and "field `x`" in str(results[1])
    assert model.calls == [[1, 3]]


def test_a_merged_call_the_model_refuses_is_rerun_per_call_so_the_fault_stays_with_its_caller() -> None:
    model = DoublingModel()

    results, outcome = predict_jobs([records(1), records(-5), records(3)], accept, model)

    assert results[0] == [{"prediction": 2}] and results[2] == [{"prediction": 6}]
    assert isinstance(results[1], ValueError) and "x must be >= 0" in str(results[1])
    assert model.calls == [[1, -5, 3], [1], [-5], [3]]
    assert (outcome.model_calls, outcome.fallbacks) == (4, 1)


def test_a_model_that_answers_the_wrong_number_of_rows_is_rerun_per_call() -> None:
    def one_answer_per_call(payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"prediction": len(payload["records"])}]

    results, outcome = predict_jobs([records(1), records(2)], accept, one_answer_per_call)

    assert results == [[{"prediction": 1}], [{"prediction": 1}]]
    assert outcome.fallbacks == 1


def test_tensors_without_a_batch_axis_run_one_call_each() -> None:
    model = DoublingModel()
    fixed = [{"kind": "tensor", "data": [1.0, 2.0], "dtype": "float64"},
             {"kind": "tensor", "data": [3.0, 4.0], "dtype": "float64"}]

    results, outcome = predict_jobs(fixed, accept, model, batch_axis=False)

    assert results == [[{"prediction": 2.0}, {"prediction": 4.0}], [{"prediction": 6.0}, {"prediction": 8.0}]]
    assert model.calls == [[1.0, 2.0], [3.0, 4.0]]


class GatedRun:
    """A batch runner that holds each batch until released, so the test decides what arrives meanwhile."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.gate = asyncio.Event()
        self.model = DoublingModel()

    async def __call__(self, key: str, payloads: list[dict[str, Any]]) -> list[Any]:
        self.batches.append((key, payloads))
        await self.gate.wait()
        return predict_jobs(payloads, refuse_strings, self.model)[0]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_lone_call_runs_at_once_and_calls_arriving_meanwhile_run_together_next() -> None:
    async def scenario() -> None:
        run = GatedRun()
        batcher = MicroBatcher(run, max_rows=64)
        first = asyncio.create_task(batcher.submit("m/1", records(1)))
        await settle()
        assert [len(p) for _, p in run.batches] == [1]  # nobody to wait for: it went alone, at once
        later = [asyncio.create_task(batcher.submit("m/1", records(x))) for x in (2, 3, "four", 5)]
        await settle()
        assert len(run.batches) == 1  # queued behind the running batch
        run.gate.set()
        assert await first == [{"prediction": 2}]
        answers = await asyncio.gather(*later, return_exceptions=True)
        assert answers[0] == [{"prediction": 4}] and answers[1] == [{"prediction": 6}]
        assert isinstance(answers[2], ValueError) and "expected number" in str(answers[2])
        assert answers[3] == [{"prediction": 10}]
        assert [len(p) for _, p in run.batches] == [1, 4]
        assert batcher.stats.as_dict() == {"calls": 5, "batches": 2, "merged_batches": 1, "largest_batch": 4}

    asyncio.run(scenario())


def test_each_version_batches_on_its_own_and_a_batch_holds_at_most_max_rows() -> None:
    async def scenario() -> None:
        run = GatedRun()
        batcher = MicroBatcher(run, max_rows=3)
        calls = [asyncio.create_task(batcher.submit(key, records(x)))
                 for key in ("a/1", "b/1") for x in range(5)]
        await settle()
        run.gate.set()
        answers = await asyncio.gather(*calls)
        assert answers == [[{"prediction": 2 * x}] for _ in range(2) for x in range(5)]
        # All ten arrived before either version's first batch started: 3 rows, then the 2 left, per version.
        by_key = {key: [len(p) for k, p in run.batches if k == key] for key in ("a/1", "b/1")}
        assert by_key == {"a/1": [3, 2], "b/1": [3, 2]}

    asyncio.run(scenario())


def test_a_failing_runner_fails_that_batch_and_the_next_call_still_runs() -> None:
    async def scenario() -> None:
        failures = iter([RuntimeError("model host lost the version")])

        async def run(key: str, payloads: list[dict[str, Any]]) -> list[Any]:
            if (failure := next(failures, None)) is not None:
                raise failure
            return [[{"prediction": 0}] for _ in payloads]

        batcher = MicroBatcher(run)
        with pytest.raises(RuntimeError, match="lost the version"):
            await batcher.submit("m/1", records(1))
        assert await batcher.submit("m/1", records(2)) == [{"prediction": 0}]

    asyncio.run(scenario())
