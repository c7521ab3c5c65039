"""`GET /shadow`: each shadow version's comparison with its champion (admin only)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from tool_server.api.deps import AdminDep, RuntimeDep
from tool_server.api.wire import error_responses
from tool_server.shadow.examples import read_examples

__all__ = ["router"]

router = APIRouter()


@router.get("/shadow", tags=["service"], responses=error_responses(401, 403, 422))
async def shadow(runtime: RuntimeDep, _: AdminDep,
                 model: Annotated[str | None, Query(min_length=1, max_length=256,
                                                    description="only this registered model")] = None,
                 examples: Annotated[int, Query(ge=0, le=1000, description="disagreement examples per "
                                                                          "shadow version")] = 10,
                 ) -> dict[str, Any]:
    """Each shadow version (routed now, or seen by this process): mirroring or not and why, its totals,
    its last windows (agreement, errors, drops, differences, latencies), the open window, the MLflow run it
    is written to, and its newest disagreements (input hash and both answers). Counted in this process."""
    rows = [row for row in runtime.bridge.shadow.status() if model is None or row["model"] == model]
    writeback = runtime.shadow
    await asyncio.to_thread(writeback.flush_examples)  # what was seen before this request is in the answer

    def read() -> None:
        for row in rows:
            row["run_id"] = writeback.run_ids.get(f"{row['model']}/{row['shadow_version']}")
            row["examples"] = read_examples(runtime.engine, row["model"], row["shadow_version"], examples)

    await asyncio.to_thread(read)
    return {"queued": runtime.bridge.shadow.queued, "shadows": rows}
