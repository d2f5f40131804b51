"""The real metrics backend: ``prometheus_client`` families in one registry, created
the first time a metric is recorded, served by whatever exposes the registry."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import prometheus_client
from catalogflow.streams.metrics.base import Metric, MetricsError
from prometheus_client import CollectorRegistry

__all__ = ["PrometheusMetrics"]


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self._families: dict[str, tuple[Metric, Any]] = {}
        self._lock = threading.Lock()  # the API records from several threads

    def inc(self, metric: Metric, amount: float = 1.0, **labels: str) -> None:
        self._child(metric, labels, "counter", "gauge").inc(amount)

    def set(self, metric: Metric, value: float, **labels: str) -> None:
        self._child(metric, labels, "gauge").set(value)

    def observe(self, metric: Metric, value: float, **labels: str) -> None:
        self._child(metric, labels, "histogram").observe(value)

    def remove(self, metric: Metric, **labels: str) -> None:
        values = metric.check(labels)
        family = self._family(metric)
        if not metric.labels:
            return
        with contextlib.suppress(KeyError):
            family.remove(*values)

    def _child(self, metric: Metric, labels: dict[str, str], *kinds: str) -> Any:
        if metric.kind not in kinds:
            raise MetricsError(f"{metric.name!r} is a {metric.kind}, not a {'/'.join(kinds)}")
        values = metric.check(labels)
        family = self._family(metric)
        return family.labels(*values) if metric.labels else family

    def _family(self, metric: Metric) -> Any:
        with self._lock:
            known = self._families.get(metric.name)
            if known is not None:
                if known[0] != metric:
                    raise MetricsError(f"metric {metric.name!r} declared twice, differently")
                return known[1]
            family = _make(metric, self.registry)
            self._families[metric.name] = (metric, family)
            return family


def _make(metric: Metric, registry: CollectorRegistry) -> Any:
    # prometheus_client adds `_total` to counters itself.
    if metric.kind == "counter":
        return prometheus_client.Counter(
            metric.name.removesuffix("_total"), metric.help, metric.labels, registry=registry
        )
    if metric.kind == "gauge":
        return prometheus_client.Gauge(metric.name, metric.help, metric.labels, registry=registry)
    return prometheus_client.Histogram(
        metric.name, metric.help, metric.labels, buckets=metric.buckets, registry=registry
    )
