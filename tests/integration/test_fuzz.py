"""Schemathesis against the OpenAPI documents a real tool server serves, with the admin key.

Both documents, every operation of each:

- `GET /openapi.json`, the tool OpenAPI a Dify custom tool imports: one operation per live tool, its exact
  input and output schemas;
- `GET /api/openapi.json`, FastAPI's description of the management API (/tools, /status, /audit, /metrics,
  the exports, the generic invoke routes and the MLflow webhook).

Schemathesis' examples, coverage and fuzzing phases send valid and invalid requests (wrong types, missing
fields, extra properties, bad query parameters, unexpected methods) and run every response check: never a
5xx; status, content type, headers and body as the document declares (errors too, with our error body);
invalid input refused with a 4xx, valid input accepted; no operation that declares auth answers without it.

CI runs EXAMPLES fuzzed cases per operation, derandomized (the same cases every run). `make fuzz` sets
TOOLBRIDGE_FUZZ_EXAMPLES for a long randomized run; TOOLBRIDGE_FUZZ_SEED replays one (its seed is printed).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from registry_sync.webhooks import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.conftest import FAST_SYNC, ToolbridgeProcess

pytestmark = pytest.mark.integration

# Read at import: the autouse `clean_environ` fixture hides TOOLBRIDGE_* variables from the tests themselves.
EXAMPLES = int(os.environ.get("TOOLBRIDGE_FUZZ_EXAMPLES") or 30)
LONG_RUN = "TOOLBRIDGE_FUZZ_EXAMPLES" in os.environ
SEED = int(os.environ.get("TOOLBRIDGE_FUZZ_SEED") or random.randrange(2**32))
DERANDOMIZE = not LONG_RUN and "TOOLBRIDGE_FUZZ_SEED" not in os.environ

SIGN_ME = "sign-me"  # the webhook "credential" schemathesis sends; SigningSession signs for real
WEBHOOK_SECRET = FAST_SYNC["TOOLBRIDGE_WEBHOOK_SECRET"]


def fuzz_config(server: ToolbridgeProcess, management: bool) -> SchemathesisConfig:
    credentials: dict[str, Any] = {"bearerAuth": {"bearer": server.admin_key}}
    if management:  # only the management API has the webhook's scheme; schemathesis warns about unused ones
        credentials["mlflowSignature"] = {"api_key": SIGN_ME}
    # The management API's invoke routes take any JSON object: whether it is valid depends on `{name}`, so a
    # schema-valid body may rightly get a 422 (each tool's exact schema is fuzzed in the tool OpenAPI). A
    # tool's own operation may answer a valid body with 422 only when the model refused the values:
    # `test_every_tool_operation_keeps_its_contract` checks that it says so.
    invoke_checks = ({"positive_data_acceptance": {"enabled": False}} if management else
                     {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}})
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "base-url": server.url,
        "request-timeout": 60,  # a busy shared machine; a slow answer is not what this test judges
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": DERANDOMIZE,
                       "database": "none"},
        # Stateful needs links between operations; ours are independent reads and tool calls.
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # With the admin key and a signed webhook, a valid request has no excuse for a 401 or 403: the
            # default list allows them (and 5xx), which would let a broken key or signature pass unseen.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "404"]},
        },
        "auth": {"openapi": credentials},
        "operations": [{"include-path-regex": "/invoke$", "checks": invoke_checks}],
    })


class SigningSession(requests.Session):
    """Signs webhook deliveries as MLflow does, so that the fuzzer gets past the HMAC to the payload.

    Only requests carrying the SIGN_ME placeholder are signed: schemathesis' own probes with no or a made-up
    signature must still be refused.
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if request.headers.get(SIGNATURE_HEADER) == SIGN_ME:
            body = request.body or b""
            body = body.encode() if isinstance(body, str) else body
            delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()))
            request.headers[DELIVERY_ID_HEADER] = delivery_id
            request.headers[TIMESTAMP_HEADER] = timestamp
            request.headers[SIGNATURE_HEADER] = sign(WEBHOOK_SECRET, delivery_id, timestamp, body)
        return super().send(request, **kwargs)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5's `from_fixture` tests read and rename `item._nodeid`, which pytest 9.2 renamed
    `_id` (a NodeId): give them the string they expect (it only labels each operation's subtest)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with SigningSession() as http:
        yield http


def _load(server: ToolbridgeProcess, path: str, management: bool) -> BaseSchema:
    print(f"fuzzing {server.url}{path}: {EXAMPLES} examples per operation, seed {SEED}, "
          f"derandomized {DERANDOMIZE}")
    return schemathesis.openapi.from_url(f"{server.url}{path}", config=fuzz_config(server, management),
                                         headers=server.headers, timeout=30)


@pytest.fixture(scope="module")
def tool_openapi(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> BaseSchema:
    return _load(toolbridge, "/openapi.json", management=False)


@pytest.fixture(scope="module")
def management_openapi(toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]) -> BaseSchema:
    return _load(toolbridge, "/api/openapi.json", management=True)


def test_both_documents_are_served_with_every_operation(toolbridge: ToolbridgeProcess,
                                                        demo_tools: dict[str, Any]) -> None:
    """What the fuzz tests below cover: every demo tool and every management route."""
    def operations(path: str, **kwargs: Any) -> set[str]:
        document = httpx.get(f"{toolbridge.url}{path}", timeout=30, **kwargs).json()
        return {f"{method.upper()} {route}" for route, item in document["paths"].items() for method in item}

    assert {f"POST /tools/{name}/invoke" for name in demo_tools} <= operations("/openapi.json",
                                                                              headers=toolbridge.headers)
    assert operations("/api/openapi.json") >= {
        "GET /healthz", "GET /status", "GET /metrics", "GET /audit", "GET /tools", "GET /tools/{name}",
        "POST /tools/{name}/invoke", "POST /tools/{name}/versions/{version}/invoke", "GET /openapi.json",
        "GET /openapi.yaml", "GET /tools/{name}/openapi.json", "GET /openai/tools", "POST /hooks/mlflow"}


@schemathesis.pytest.from_fixture("tool_openapi").parametrize()
def test_every_tool_operation_keeps_its_contract(case: Case, session: requests.Session) -> None:
    response = case.call_and_validate(session=session)
    if response.status_code == 422 and case.meta is not None and case.meta.generation.mode.is_positive:
        # Valid by the schema, refused anyway: only the model may do that (a value it cannot compute with).
        assert response.json()["error"] == "model_rejected_input", response.text


@schemathesis.pytest.from_fixture("management_openapi").parametrize()
def test_every_management_operation_keeps_its_contract(case: Case, session: requests.Session) -> None:
    case.call_and_validate(session=session)
