"""`POST /hooks/mlflow`: MLflow's webhook deliveries wake the registry watcher (a short adapter).

A delivery carries no state we trust: once verified, it only makes the next registry pass run now. Polling
stays on for what MLflow sends no event for (deleted versions, registered-model tags) and lost deliveries.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Request

from registry_sync.errors import WebhookRejected
from registry_sync.webhooks import DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerifier
from tool_server.api.deps import WEBHOOK_SIGNATURE, RuntimeDep
from tool_server.api.encoding import PythonJSONResponse
from tool_server.api.wire import WEBHOOK_OPENAPI, WEBHOOK_RESPONSES
from tool_server.runtime import Runtime
from tool_server.settings import ServerSettings, persistent_secret

__all__ = ["WEBHOOK_PATH", "ensure_webhook_secret", "router", "startup_webhook"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/hooks/mlflow"
MAX_BODY_BYTES = 1 << 20  # MLflow's payloads are a few hundred bytes; refuse to buffer floods before the HMAC

router = APIRouter()


def ensure_webhook_secret(settings: ServerSettings) -> str:
    """TOOLBRIDGE_WEBHOOK_SECRET, else the state dir's webhook_secret, generated (mode 0600) on first use."""
    return settings.configured_webhook_secret() or persistent_secret(
        settings.webhook_secret_path, lambda: secrets.token_urlsafe(32))


def startup_webhook(settings: ServerSettings, embedded: bool) -> tuple[str, str] | None:
    """(url, secret) `toolbridge up` registers, or None when it cannot know where MLflow should call.

    The embedded MLflow runs next to us and calls us on loopback. An external one only gets a webhook when
    both TOOLBRIDGE_WEBHOOK_SECRET and TOOLBRIDGE_PUBLIC_URL say how: we will not guess a reachable address.
    """
    if embedded and settings.port:  # port 0: uvicorn picks one we cannot know yet
        host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", "localhost"} else settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{settings.port}{WEBHOOK_PATH}", ensure_webhook_secret(settings)
    if settings.webhook_secret is not None and settings.public_url:
        return f"{settings.base_url}{WEBHOOK_PATH}", settings.webhook_secret.get_secret_value()
    return None


def _verifier(request: Request, runtime: Runtime) -> WebhookVerifier | None:
    """One verifier per app (it holds the replay memory), built once a secret exists."""
    verifier: WebhookVerifier | None = getattr(request.app.state, "webhook_verifier", None)
    if verifier is None:
        secret = runtime.server.configured_webhook_secret()
        if secret is None:
            return None
        # With Redis, replay ids are shared: a delivery replayed to another replica is refused there too.
        verifier = request.app.state.webhook_verifier = WebhookVerifier(secret,
                                                                        shared_replays=runtime.shared.replays)
    return verifier


def _error(status: int, error: str, message: str) -> PythonJSONResponse:
    return PythonJSONResponse({"error": error, "message": message, "problems": []}, status_code=status)


@router.post(WEBHOOK_PATH, tags=["service"], dependencies=[WEBHOOK_SIGNATURE], responses=WEBHOOK_RESPONSES,
             openapi_extra=WEBHOOK_OPENAPI)
async def mlflow_webhook(request: Request, runtime: RuntimeDep) -> PythonJSONResponse:
    verifier = _verifier(request, runtime)
    if verifier is None:
        # 404, not 503: MLflow retries 5xx, and retrying cannot switch webhooks on.
        return _error(404, "webhooks_disabled",
                      "webhooks are off: no secret configured. Set TOOLBRIDGE_WEBHOOK_SECRET and restart, or "
                      "run `toolbridge webhook register` with this server's --state-dir; until then the "
                      "registry is polled")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "webhook_rejected", f"webhook body larger than {MAX_BODY_BYTES} bytes")
    headers = request.headers
    try:
        event = verifier.verify(headers.get(DELIVERY_ID_HEADER), headers.get(TIMESTAMP_HEADER),
                                headers.get(SIGNATURE_HEADER), bytes(body))
    except WebhookRejected as exc:
        log.warning("webhook rejected: %s", exc)
        return _error(401, "webhook_rejected", f"webhook rejected: {exc}")
    log.info("webhook %s for %s: syncing now (and every replica, with Redis)", event.event,
             event.model_name or "?")
    runtime.request_sync()
    return PythonJSONResponse({"accepted": True})
