"""Errors raised by registry_sync.

    RegistrySyncError
    ├── RegistryUnavailable   MLflow did not answer, answered 5xx, or timed out
    │                         (fail-static: keep the last snapshot)
    ├── MalformedEntry        one model version cannot be used (bad tag JSON, no signature...);
    │                         excluded, pass goes on
    ├── WebhookRejected       an incoming webhook failed verification (signature, age, replay, body): 401
    └── WebhookSetupFailed    MLflow refused to create or update our webhook (URL scheme, private IP...)
"""

from __future__ import annotations

__all__ = [
    "MalformedEntry",
    "RegistrySyncError",
    "RegistryUnavailable",
    "WebhookRejected",
    "WebhookSetupFailed",
]


class RegistrySyncError(Exception):
    """Root of every registry_sync error."""


class RegistryUnavailable(RegistrySyncError):
    """The MLflow registry could not be read right now."""


class MalformedEntry(RegistrySyncError):
    """A registry entry Toolbridge cannot turn into a tool; the message says what to fix in MLflow."""


class WebhookRejected(RegistrySyncError):
    """A webhook delivery is not authentic, not fresh, a replay, or unreadable; the message says which."""


class WebhookSetupFailed(RegistrySyncError):
    """MLflow would not register Toolbridge's webhook; the message says what MLflow said and what to set."""
