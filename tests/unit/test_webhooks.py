"""WebhookVerifier accepts exactly the deliveries MLflow signs, fresh and once; it refuses everything else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest

from registry_sync.errors import RegistrySyncError, WebhookRejected
from registry_sync.webhooks import WebhookEvent, WebhookVerifier, sign

SECRET = "s3cret-for-tests-only-0123456789"
NOW = 1_750_000_000


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mlflow_body(entity: str = "model_version_alias", action: str = "created", **data: Any) -> bytes:
    """A body shaped like mlflow.webhooks.delivery._send_webhook_request's (json.dumps of the payload)."""
    data = data or {"name": "fin_sentiment", "alias": "champion", "version": "3"}
    return json.dumps({"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00",
                       "data": data}).encode()


def hmac_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """Computed independently of `sign`, exactly as MLflow documents it."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{body.decode()}".encode(), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def delivery(body: bytes | None = None, *, secret: str = SECRET, at: int = NOW,
             delivery_id: str | None = None) -> tuple[str, str, str, bytes]:
    body = mlflow_body() if body is None else body
    delivery_id = delivery_id or str(uuid.uuid4())
    return delivery_id, str(at), hmac_signature(secret, delivery_id, str(at), body), body


def rejection(verifier: WebhookVerifier, *args: Any) -> str:
    with pytest.raises(WebhookRejected) as caught:
        verifier.verify(*args)
    return str(caught.value)


@pytest.fixture
def verifier() -> WebhookVerifier:
    return WebhookVerifier(SECRET, max_age_seconds=300, clock=Clock())


def test_a_delivery_signed_like_mlflow_is_accepted_and_decoded(verifier: WebhookVerifier) -> None:
    delivery_id, ts, signature, body = delivery()
    event = verifier.verify(delivery_id, ts, signature, body)
    assert event == WebhookEvent(delivery_id=delivery_id, timestamp=NOW, entity="model_version_alias",
                                 action="created", model_name="fin_sentiment",
                                 payload={"name": "fin_sentiment", "alias": "champion", "version": "3"})
    assert event.event == "model_version_alias.created"


def test_sign_matches_an_independent_hmac_of_id_ts_body() -> None:
    body = mlflow_body()
    assert sign(SECRET, "abc", "123", body) == hmac_signature(SECRET, "abc", "123", body)


@pytest.mark.parametrize("missing", [0, 1, 2])
def test_each_missing_header_is_rejected_by_name(verifier: WebhookVerifier, missing: int) -> None:
    args: list[Any] = list(delivery())
    args[missing] = None
    message = rejection(verifier, *args)
    assert ["X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature"][missing] in message


def test_an_empty_signature_header_counts_as_missing(verifier: WebhookVerifier) -> None:
    delivery_id, ts, _, body = delivery()
    assert "X-MLflow-Signature" in rejection(verifier, delivery_id, ts, "", body)


def test_a_signature_made_with_another_secret_is_rejected_unechoed(verifier: WebhookVerifier) -> None:
    message = rejection(verifier, *delivery(secret="not-the-secret"))
    assert "signature does not match" in message
    assert SECRET not in message


@pytest.mark.parametrize("tamper", ["body", "delivery_id", "timestamp"])
def test_changing_any_signed_part_breaks_the_signature(verifier: WebhookVerifier, tamper: str) -> None:
    delivery_id, ts, signature, body = delivery()
    if tamper == "body":
        body = mlflow_body(name="credit_risk", alias="champion", version="1")
    elif tamper == "delivery_id":
        delivery_id = str(uuid.uuid4())
    else:
        ts = str(NOW + 1)
    assert "signature does not match" in rejection(verifier, delivery_id, ts, signature, body)


@pytest.mark.parametrize("header", ["sha256=abc", "v2,AAAA", "v1", "garbage"])
def test_a_signature_header_not_in_v1_form_is_rejected(verifier: WebhookVerifier, header: str) -> None:
    delivery_id, ts, _, body = delivery()
    assert "v1," in rejection(verifier, delivery_id, ts, header, body)


def test_a_v1_signature_that_is_not_base64_is_rejected(verifier: WebhookVerifier) -> None:
    delivery_id, ts, _, body = delivery()
    assert "signature does not match" in rejection(verifier, delivery_id, ts, "v1,***not base64***", body)


def test_any_of_several_space_separated_signatures_may_match(verifier: WebhookVerifier) -> None:
    delivery_id, ts, good, body = delivery()
    bad = hmac_signature("old-secret", delivery_id, ts, body)
    assert verifier.verify(delivery_id, ts, f"{bad} {good}", body).delivery_id == delivery_id


@pytest.mark.parametrize(("offset", "said"), [(-301, "301s old"), (301, "301s in the future"),
                                             (-86_400, "86400s old")])
def test_a_timestamp_outside_the_window_is_rejected_even_when_signed(verifier: WebhookVerifier,
                                                                     offset: int, said: str) -> None:
    message = rejection(verifier, *delivery(at=NOW + offset))
    assert "outside the 300s window" in message and said in message


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_timestamp_at_the_window_edges_is_accepted(verifier: WebhookVerifier, offset: int) -> None:
    verifier.verify(*delivery(at=NOW + offset))


@pytest.mark.parametrize("timestamp", ["soon", "-5", "1.5", "1e9", "+17", "1_0", "\u00b2"])
def test_a_timestamp_that_is_not_unix_seconds_is_rejected(verifier: WebhookVerifier, timestamp: str) -> None:
    delivery_id, _, _, body = delivery()
    signature = hmac_signature(SECRET, delivery_id, timestamp, body)
    assert "unix seconds" in rejection(verifier, delivery_id, timestamp, signature, body)


def test_the_same_delivery_id_is_accepted_once(verifier: WebhookVerifier) -> None:
    first = delivery()
    verifier.verify(*first)
    assert "already accepted" in rejection(verifier, *first)


def test_a_rejected_delivery_does_not_use_up_its_id(verifier: WebhookVerifier) -> None:
    delivery_id, ts, signature, body = delivery()
    rejection(verifier, delivery_id, ts, "v1,AAAA", body)
    verifier.verify(delivery_id, ts, signature, body)


def test_replay_memory_forgets_ids_once_they_are_too_old_to_replay() -> None:
    clock = Clock()
    verifier = WebhookVerifier(SECRET, max_age_seconds=300, clock=clock)
    old = delivery(at=NOW)
    verifier.verify(*old)
    clock.now = NOW + 301
    verifier.verify(*delivery(at=NOW + 301))
    assert len(verifier._seen) == 1  # the first id left the window and was dropped
    assert "outside" in rejection(verifier, *old)  # ...and its replay is refused as stale instead


def test_replay_memory_is_bounded_under_a_flood_of_fresh_ids() -> None:
    verifier = WebhookVerifier(SECRET, replay_cache_size=3, clock=Clock())
    deliveries = [delivery() for _ in range(5)]
    for one in deliveries:
        verifier.verify(*one)
    assert len(verifier._seen) == 3
    assert "already accepted" in rejection(verifier, *deliveries[-1])


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"entity": 1, "action": "created"}',
                                  b'{"entity": "model_version", "action": "created", "data": []}'])
def test_a_signed_body_that_is_not_an_mlflow_payload_is_rejected(verifier: WebhookVerifier,
                                                                  body: bytes) -> None:
    delivery_id = str(uuid.uuid4())
    signature = sign(SECRET, delivery_id, str(NOW), body)
    assert f"delivery {delivery_id}" in rejection(verifier, delivery_id, str(NOW), signature, body)


def test_an_event_without_a_model_name_still_verifies() -> None:
    verifier = WebhookVerifier(SECRET, clock=Clock())
    event = verifier.verify(*delivery(mlflow_body("prompt", "created", prompt="x")))
    assert event.model_name is None and event.entity == "prompt"


def test_rejections_belong_to_the_registry_sync_error_tree() -> None:
    assert issubclass(WebhookRejected, RegistrySyncError)


@pytest.mark.parametrize("kwargs", [{"secret": ""}, {"secret": SECRET, "max_age_seconds": 0},
                                    {"secret": SECRET, "replay_cache_size": 0}])
def test_a_verifier_refuses_an_empty_secret_or_empty_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WebhookVerifier(**kwargs)


def test_a_signed_body_nested_absurdly_deep_is_rejected_not_a_crash(verifier: WebhookVerifier) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    assert "body is not JSON we can read (RecursionError" in rejection(verifier, *delivery(deep))
