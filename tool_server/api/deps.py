"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from registry_sync.webhooks import SIGNATURE_HEADER
from tool_server.access.scopes import Forbidden, Principal, presented_key
from tool_server.api.middleware import request_id_of
from tool_server.calls import CallContext
from tool_server.runtime import Runtime

__all__ = ["WEBHOOK_SIGNATURE", "AdminDep", "CallerDep", "CatalogReaderDep", "HttpCallDep", "RawBody",
           "RuntimeDep"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a costly hop per call.
async def _runtime(request: Request) -> Runtime:
    return get_runtime(request)


# For the API description (/api/openapi.json) only: auto_error=False, so they never answer; `presented_key`
# reads the key from either header.
_BEARER = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                     description="Authorization: Bearer <Toolbridge API key>")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKeyHeader",
                        description="X-API-Key: <Toolbridge API key>")
WEBHOOK_SIGNATURE = Security(APIKeyHeader(
    name=SIGNATURE_HEADER, auto_error=False, scheme_name="mlflowSignature",
    description="MLflow's webhook signature: v1,<base64 HMAC-SHA256 of '{delivery id}.{timestamp}.{body}'> "
                "with the shared secret, plus the X-MLflow-Delivery-Id and X-MLflow-Timestamp headers"))


async def get_caller(request: Request,
                     _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
                     _api_key: Annotated[str | None, Security(_API_KEY)] = None) -> Principal:
    """The key's principal; 401 without a valid key. Checked against the in-memory key cache (by hash, expiry
    at each call); the database is read only when the cache refreshes (access/key_cache.py)."""
    runtime = get_runtime(request)
    return await runtime.calls.authenticate(presented_key(request.headers))


async def get_catalog_reader(
        request: Request,
        token: Annotated[str | None, Query(description="catalog token from `toolbridge keys schema-url`, for "
                                                       "clients that send no header (Dify's Import from URL)",
                                           max_length=200)] = None,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
        _api_key: Annotated[str | None, Security(_API_KEY)] = None) -> Principal:
    """Who reads a catalog document: the API key's principal, or that of a read-only catalog token."""
    runtime = get_runtime(request)
    if token is not None and presented_key(request.headers) is None:
        return await asyncio.to_thread(runtime.catalog_tokens.principal, token)
    return await runtime.calls.authenticate(presented_key(request.headers))


async def get_admin(caller: Annotated[Principal, Depends(get_caller)]) -> Principal:
    if not caller.is_admin:
        raise Forbidden("this endpoint needs an API key with the `admin` scope")
    return caller


async def raw_body(request: Request) -> bytes:
    return await request.body()


async def http_call(request: Request) -> CallContext:
    return CallContext(request_id=request_id_of(request.scope), channel="http")


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
CallerDep = Annotated[Principal, Depends(get_caller)]
CatalogReaderDep = Annotated[Principal, Depends(get_catalog_reader)]
AdminDep = Annotated[Principal, Depends(get_admin)]
RawBody = Annotated[bytes, Depends(raw_body)]
HttpCallDep = Annotated[CallContext, Depends(http_call)]
