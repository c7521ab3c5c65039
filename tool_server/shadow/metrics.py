"""Prometheus series per shadow version, read from the mirror when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from bridge.shadow import ShadowMirror

__all__ = ["shadow_families"]

LABELS = ["tool", "model", "shadow_version"]


def shadow_families(mirror: ShadowMirror) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    compared = CounterMetricFamily("toolbridge_shadow_calls_compared",
                                   "Calls both the champion and the shadow version answered", labels=LABELS)
    agreed = CounterMetricFamily("toolbridge_shadow_calls_agreed",
                                 "Compared calls answered like the champion", labels=LABELS)
    agreement = GaugeMetricFamily("toolbridge_shadow_agreement",
                                  "Share of compared calls answered alike, since start", labels=LABELS)
    errors = CounterMetricFamily("toolbridge_shadow_errors",
                                 "Mirrored calls the shadow version failed", labels=LABELS)
    dropped = CounterMetricFamily("toolbridge_shadow_dropped",
                                  "Calls not mirrored because the shadow queue was full", labels=LABELS)
    for row in mirror.status():
        labels = [row["tool"], row["model"], row["shadow_version"]]
        totals, open_window = row["totals"], row["open_window"] or {}
        n_compared = totals["calls_compared"] + open_window.get("compared", 0)
        n_agreed = totals["agreed"] + open_window.get("agreed", 0)
        compared.add_metric(labels, n_compared)
        agreed.add_metric(labels, n_agreed)
        if n_compared:
            agreement.add_metric(labels, n_agreed / n_compared)
        errors.add_metric(labels, totals["shadow_errors"] + open_window.get("shadow_errors", 0))
        dropped.add_metric(labels, totals["dropped"] + open_window.get("dropped", 0))
    yield from (compared, agreed, agreement, errors, dropped)
