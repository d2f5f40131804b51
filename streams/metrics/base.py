"""The metrics seam: a metric is declared once (a :class:`Metric`), and code records
through a :class:`Metrics` backend, never through ``prometheus_client`` directly.

Two backends implement it: :class:`~catalogflow.streams.metrics.prometheus.PrometheusMetrics`
(the real one, served on ``/metrics``) and
:class:`~catalogflow.streams.metrics.recording.RecordingMetrics` (the twin tests read).
Both refuse a label set that differs from the declaration, so a wrong label fails in a
unit test rather than in production. :func:`catalogflow.streams.metrics.current.metrics`
is the backend of this process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "MODEL_BUCKETS",
    "Kind",
    "Metric",
    "Metrics",
    "MetricsError",
    "counter",
    "gauge",
    "histogram",
]

Kind = Literal["counter", "gauge", "histogram"]

#: Seconds, for anything that waits on a model or an outside service: 0.1 s to 60 s.
MODEL_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

#: Label names that would carry one value per product, item or run: never allowed,
#: except ``run_id`` on gauges declared ``per_active_run`` (removed when the run ends).
UNBOUNDED_LABELS = frozenset({"sku", "item_id", "task_id", "run_id", "decision_id", "actor"})

_NAME = re.compile(r"^catalogflow_[a-z][a-z0-9_]*$")
_UNITS = ("_seconds", "_bytes", "_ratio", "_messages", "_dollars", "_tokens")


class MetricsError(ValueError):
    """A metric declared or used against the rules (name, labels, kind)."""


@dataclass(frozen=True)
class Metric:
    """One metric family: what it is called, what it means, and its label names."""

    name: str
    help: str
    kind: Kind
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms only
    per_active_run: bool = False  # gauges only: may carry run_id while the run is active

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise MetricsError(f"metric {self.name!r}: names are catalogflow_<snake_case>")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise MetricsError(f"counter {self.name!r} must end in _total")
        if self.kind != "counter" and self.name.endswith("_total"):
            raise MetricsError(f"{self.kind} {self.name!r} must not end in _total")
        if self.kind == "histogram" and not self.buckets:
            raise MetricsError(f"histogram {self.name!r} needs buckets")
        if self.per_active_run and self.kind != "gauge":
            raise MetricsError(f"{self.name!r}: only gauges may be per active run")
        allowed = {"run_id"} if self.per_active_run else set()
        unbounded = (set(self.labels) & UNBOUNDED_LABELS) - allowed
        if unbounded:
            raise MetricsError(
                f"metric {self.name!r}: label(s) {sorted(unbounded)} have unbounded values"
            )

    def check(self, labels: dict[str, str]) -> tuple[str, ...]:
        """The label values in declaration order; a different label set is an error."""
        if set(labels) != set(self.labels):
            raise MetricsError(
                f"metric {self.name!r} takes labels {list(self.labels)}, got {sorted(labels)}"
            )
        return tuple(str(labels[name]) for name in self.labels)


def counter(name: str, help: str, *labels: str) -> Metric:
    return Metric(name, help, "counter", labels)


def gauge(name: str, help: str, *labels: str, per_active_run: bool = False) -> Metric:
    return Metric(name, help, "gauge", labels, per_active_run=per_active_run)


def histogram(
    name: str, help: str, *labels: str, buckets: tuple[float, ...] = MODEL_BUCKETS
) -> Metric:
    return Metric(name, help, "histogram", labels, buckets)


class Metrics(Protocol):
    """Where code records. Labels are keyword arguments named as declared."""

    def inc(self, metric: Metric, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter (or a gauge)."""
        ...

    def set(self, metric: Metric, value: float, **labels: str) -> None:
        """Set a gauge."""
        ...

    def observe(self, metric: Metric, value: float, **labels: str) -> None:
        """Record one value of a histogram."""
        ...

    def remove(self, metric: Metric, **labels: str) -> None:
        """Drop one labelled series (a gauge of a run that ended); unknown is no error."""
        ...
