"""Serves the UI's static files (no key: they hold no data) and `GET /ui/session` (the key's name, roles)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from tool_server.access.scopes import ADMIN, RESTRICTED
from tool_server.api.deps import CallerDep
from tool_server.api.wire import error_responses

__all__ = ["ASSETS", "router"]

# The only files served, by name: nothing else under the package is reachable.
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
# The page runs only its own script and style, talks only to this server, and cannot be framed.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cache-Control": "no-cache"}  # no-cache: revalidate (ETag) on every load

router = APIRouter()


@dataclass(frozen=True)
class _Asset:
    body: bytes
    etag: str


def _asset(name: str) -> _Asset:
    # Read on each request (a few kB): an upgraded or edited file is served at once, its ETag with it.
    body = (files("tool_server.ui") / "static" / name).read_bytes()
    return _Asset(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _serve(name: str, request: Request) -> Response:
    asset = _asset(name)
    headers = {**HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=ASSETS[name], headers=headers)


@router.get("/ui", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    # Relative, so the page also works behind a proxy that serves Toolbridge under a path prefix.
    return RedirectResponse("ui/", status_code=308)


@router.get("/ui/", include_in_schema=False)
async def ui_page(request: Request) -> Response:
    return _serve("index.html", request)


@router.get("/ui/session", tags=["ui"], responses=error_responses(401))
async def ui_session(caller: CallerDep) -> dict[str, Any]:
    """Who the presented key is: its name, scopes and roles (what the UI shows and which pages it offers)."""
    return {"name": caller.name, "key_id": caller.key_id, "scopes": sorted(caller.scopes),
            "admin": ADMIN in caller.scopes, "restricted": RESTRICTED in caller.scopes}


@router.get("/ui/{name}", include_in_schema=False)
async def ui_asset(name: str, request: Request) -> Response:
    if name not in ASSETS or name == "index.html":
        raise HTTPException(404)  # the app's usual 404 body
    return _serve(name, request)
