"""Errors raised by registry_sync.

    RegistrySyncError
    ├── RegistryUnavailable   MLflow did not answer, answered 5xx, or timed out (fail-static: keep the last snapshot)
    └── MalformedEntry        one model version cannot be used (bad tag JSON, no signature...); excluded, pass goes on
"""

from __future__ import annotations

__all__ = ["MalformedEntry", "RegistrySyncError", "RegistryUnavailable"]


class RegistrySyncError(Exception):
    """Root of every registry_sync error."""


class RegistryUnavailable(RegistrySyncError):
    """The MLflow registry could not be read right now."""


class MalformedEntry(RegistrySyncError):
    """A registry entry Toolbridge cannot turn into a tool; the message says what to fix in MLflow."""
