"""Verification of MLflow webhook deliveries: HMAC signature, freshness, replay, payload shape.

MLflow (3.x) signs each delivery the Standard Webhooks way: headers `X-MLflow-Delivery-Id` (a UUID),
`X-MLflow-Timestamp` (unix seconds) and `X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}">`,
keyed with the webhook's secret. The body is `{"entity", "action", "timestamp", "data": {...}}`.

Pure: no mlflow, no HTTP framework. A webhook only tells the watcher to look sooner; the registry stays the
source of truth, so an event is never applied from its payload.

Replays are refused by delivery id. Several replicas behind a load balancer share the ids through a
`ReplayStore` (the tool server's Redis one); without one, or while it cannot answer, each process keeps its
own (bounded) memory of ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from registry_sync.errors import WebhookRejected

__all__ = [
    "DELIVERY_ID_HEADER",
    "ReplayStore",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookEvent",
    "WebhookVerifier",
    "sign",
]

DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNATURE_HEADER = "X-MLflow-Signature"
SIGNATURE_VERSION = "v1"


@dataclass(frozen=True)
class WebhookEvent:
    """One verified delivery. `payload` is MLflow's `data` object (model name, version, alias or tag)."""

    delivery_id: str
    timestamp: int
    entity: str
    action: str
    model_name: str | None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.action}"


class ReplayStore(Protocol):
    """Delivery ids shared by every replica."""

    def first_time(self, delivery_id: str, keep_seconds: int) -> bool | None:
        """Record the id for `keep_seconds`: True if it was new, False if seen before; None when the store
        cannot answer now (the verifier then uses its own memory)."""
        ...


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for this delivery (also what tests sign with)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


class WebhookVerifier:
    """Checks deliveries signed with one shared secret; remembers recent delivery ids to refuse replays.

    Memory is bounded: an id is forgotten once its timestamp leaves the window (a replay of it would then be
    refused as stale anyway), or, under a flood of fresh ids, when more than `replay_cache_size` are held.
    """

    def __init__(self, secret: str, max_age_seconds: int = 300, replay_cache_size: int = 10_000,
                 clock: Callable[[], float] = time.time, shared_replays: ReplayStore | None = None) -> None:
        if not secret:
            raise ValueError("a webhook secret is required; an empty one would accept any forged delivery")
        if max_age_seconds <= 0 or replay_cache_size <= 0:
            raise ValueError("max_age_seconds and replay_cache_size must be positive")
        self._key = secret.encode("utf-8")
        self.max_age_seconds = max_age_seconds
        self.replay_cache_size = replay_cache_size
        self._clock = clock
        self._shared_replays = shared_replays
        self._seen: OrderedDict[str, int] = OrderedDict()  # delivery id -> its timestamp, oldest first
        self._lock = threading.Lock()  # verify() may be called from worker threads

    def verify(self, delivery_id: str | None, timestamp: str | None, signature_header: str | None,
               body: bytes) -> WebhookEvent:
        """The verified event, or WebhookRejected saying what was wrong. Records the id only on success."""
        if not (delivery_id and timestamp and signature_header):
            headers = {DELIVERY_ID_HEADER: delivery_id, TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: signature_header}
            missing = [name for name, value in headers.items() if not value]
            raise WebhookRejected(f"missing header(s) {', '.join(missing)}; is this a signed MLflow webhook "
                                  "(created with a secret)?")
        sent_at = self._parse_timestamp(timestamp)
        self._check_signature(delivery_id, timestamp, signature_header, body)
        # Freshness after authenticity: an unsigned caller learns nothing about our clock.
        now = self._clock()
        age = now - sent_at
        if abs(age) > self.max_age_seconds:
            when = f"{age:.0f}s old" if age > 0 else f"{-age:.0f}s in the future"
            raise WebhookRejected(f"delivery {delivery_id} timestamp {sent_at} is {when}, outside the "
                                  f"{self.max_age_seconds}s window (stale, or a clock is off)")
        event = _parse_body(delivery_id, sent_at, body)
        self._remember(delivery_id, sent_at, now)
        return event

    def _check_signature(self, delivery_id: str, timestamp: str, header: str, body: bytes) -> None:
        expected = hmac.new(self._key, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        # Space-separated list, as in Standard Webhooks: lets a sender sign with an old and a new secret.
        candidates = [part.split(",", 1)[1] for part in header.split()
                      if part.startswith(f"{SIGNATURE_VERSION},")]
        if not candidates:
            raise WebhookRejected(f"{SIGNATURE_HEADER} must look like 'v1,<base64 HMAC-SHA256>'")
        for candidate in candidates:
            try:
                given = base64.b64decode(candidate, validate=True)
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(given, expected):
                return
        raise WebhookRejected("signature does not match; the webhook's secret in MLflow differs from "
                              "Toolbridge's (TOOLBRIDGE_WEBHOOK_SECRET or the state dir's webhook_secret)")

    def _remember(self, delivery_id: str, sent_at: int, now: float) -> None:
        if self._shared_replays is not None:
            # Kept until its timestamp leaves the window: a replay after that is refused as stale.
            keep = max(1, int(sent_at + self.max_age_seconds - now) + 1)
            first = self._shared_replays.first_time(delivery_id, keep)
            if first is False:
                raise WebhookRejected(f"delivery {delivery_id} was already accepted; replays are refused")
            if first:
                return
        with self._lock:
            if delivery_id in self._seen:
                raise WebhookRejected(f"delivery {delivery_id} was already accepted; replays are refused")
            self._seen[delivery_id] = sent_at
            horizon = now - self.max_age_seconds
            while self._seen:
                oldest_id, oldest_at = next(iter(self._seen.items()))
                if oldest_at >= horizon and len(self._seen) <= self.replay_cache_size:
                    break
                del self._seen[oldest_id]

    @staticmethod
    def _parse_timestamp(timestamp: str) -> int:
        if not (timestamp.isascii() and timestamp.isdigit()):  # int() would also take "+1", " 1", "1_0"
            raise WebhookRejected(f"{TIMESTAMP_HEADER} must be unix seconds, got {timestamp[:40]!r}")
        return int(timestamp)


def _parse_body(delivery_id: str, sent_at: int, body: bytes) -> WebhookEvent:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise WebhookRejected(f"delivery {delivery_id}: body is not JSON we can read "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(document, dict):
        raise WebhookRejected(f"delivery {delivery_id}: body must be a JSON object (entity, action, data)")
    entity, action, data = document.get("entity"), document.get("action"), document.get("data", {})
    if not isinstance(entity, str) or not isinstance(action, str) or not isinstance(data, dict):
        raise WebhookRejected(f"delivery {delivery_id}: expected string 'entity' and 'action' and an object "
                              f"'data', got keys {sorted(document)[:10]}")
    name = data.get("name")
    return WebhookEvent(delivery_id=delivery_id, timestamp=sent_at, entity=entity, action=action,
                        model_name=name if isinstance(name, str) else None, payload=data)
