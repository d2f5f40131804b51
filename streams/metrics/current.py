"""The metrics backend of this process: Prometheus on the default registry unless a
process (a test) configures another. Read at the moment of recording, so a test that
configures a twin sees everything recorded after it."""

from __future__ import annotations

from catalogflow.streams.metrics.base import Metrics
from catalogflow.streams.metrics.prometheus import PrometheusMetrics

__all__ = ["configure_metrics", "metrics"]

_current: Metrics | None = None


def metrics() -> Metrics:
    global _current
    if _current is None:
        _current = PrometheusMetrics()
    return _current


def configure_metrics(backend: Metrics | None) -> None:
    """Use ``backend`` from now on (None: back to the default Prometheus one)."""
    global _current
    _current = backend
