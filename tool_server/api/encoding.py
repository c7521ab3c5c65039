"""JSON answers byte-identical to Python's `json.dumps(obj, ensure_ascii=False)`.

Dify shows its LLM the raw body of a tool's answer and, when they differ, `json.dumps(obj,
ensure_ascii=False)` of the parsed body too: a compact body (`{"a":1}`) reaches the LLM twice. Invoke
answers and every error body are written exactly as that call prints them (separators `", "` and `": "`,
non-ASCII as is), so they are read once. NaN and Infinity are refused (JSON cannot carry them).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["PythonJSONResponse", "python_json"]


def python_json(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, allow_nan=False).encode("utf-8")


class PythonJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return python_json(content)
