"""Shadow write-back without servers: windows kept while MLflow fails and written once it answers, dropped for
a version gone from the registry; disagreement examples trimmed to the newest N per shadow version, inputs
only when the audit may keep them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bridge.shadow.mirror import Disagreement
from registry_sync.errors import MalformedEntry, RegistryUnavailable
from registry_sync.shadow import ShadowWindow
from tool_server.access.db import make_engine
from tool_server.access.migrate import HEAD, current_revision
from tool_server.shadow.examples import read_examples
from tool_server.shadow.writeback import ShadowWriteback


class Sink:
    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.written: list[list[int]] = []

    def write_shadow(self, windows: Sequence[ShadowWindow]) -> str:
        if self.fail is not None:
            raise self.fail
        self.written.append([w.sequence for w in windows])
        return "run-1"


def window(sequence: int, version: str = "2") -> ShadowWindow:
    return ShadowWindow(model="m", tool="t", shadow_version=version, champion_version="1", sequence=sequence,
                        ended_at=1.0, seconds=1.0, compared=10, agreed=9)


def example(n: int, restricted: bool = False) -> Disagreement:
    return Disagreement(time=1000.0 + n, tool="t", model="m", champion_version="1", shadow_version="2",
                        input_sha256=f"{n:064d}", arguments={"x": n}, restricted=restricted,
                        champion_output={"prediction": "low"}, shadow_output={"prediction": "high"})


def writeback(tmp_path: Path, sink: Sink, keep: int = 3, audit_inputs: bool = False) -> ShadowWriteback:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")  # the migrations create the table
    assert current_revision(engine) == HEAD
    return ShadowWriteback(sink, engine, interval=1.0, keep_examples=keep, audit_inputs=audit_inputs)


def test_windows_wait_while_mlflow_is_down_and_go_in_order_once_it_answers(tmp_path: Path) -> None:
    sink = Sink()
    back = writeback(tmp_path, sink)
    back.add_window(window(0))
    sink.fail = RegistryUnavailable("MLflow at http://127.0.0.1:1 is unreachable")
    back.flush()
    back.add_window(window(1))
    sink.fail = None
    back.flush()
    assert sink.written == [[0, 1]] and back.run_ids == {"m/2": "run-1"} and back.windows_written == 2


def test_windows_of_a_version_gone_from_the_registry_are_dropped(tmp_path: Path) -> None:
    sink = Sink()
    back = writeback(tmp_path, sink)
    back.add_window(window(0))
    sink.fail = MalformedEntry("version 2 of 'm' does not exist")
    back.flush()
    sink.fail = None
    back.flush()
    assert sink.written == []


def test_examples_keep_the_newest_n_and_inputs_only_when_the_audit_may(tmp_path: Path) -> None:
    back = writeback(tmp_path, Sink(), keep=3, audit_inputs=True)
    for n in range(5):
        back.add_disagreement(example(n, restricted=n == 4))
    back.flush()
    kept = read_examples(back.engine, "m", "2")
    assert [e["input_sha256"][-1] for e in kept] == ["4", "3", "2"]
    assert [e["inputs"] for e in kept] == [None, {"x": 3}, {"x": 2}]  # never a restricted tool's
    assert kept[0]["shadow_output"] == {"prediction": "high"}
    (tmp_path / "other").mkdir()
    hidden = writeback(tmp_path / "other", Sink(), audit_inputs=False)
    hidden.add_disagreement(example(0))
    hidden.flush()
    assert read_examples(hidden.engine, "m", "2")[0]["inputs"] is None
