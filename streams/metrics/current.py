"""The metrics backend of this process: Prometheus on the default registry unless a
process (a test) configures another. Read at the moment of recording, so a test that
configures a twin sees everything recorded after it."""

from __future__ import annotations

from catalogflow.streams.metrics.base import Metrics
from catalogflow.streams.metrics.prometheus import PrometheusMetrics

__all__ = ["configure_metrics", "metrics"]

_current: Metrics | None = None
#: One per process: its families register on the default registry once, so going back
#: to it after a test's twin must not build (and register) a second one.
_default: PrometheusMetrics | None = None


def metrics() -> Metrics:
    global _current, _default
    if _current is None:
        if _default is None:
            _default = PrometheusMetrics()
        _current = _default
    return _current


def configure_metrics(backend: Metrics | None) -> None:
    """Use ``backend`` from now on (None: back to the default Prometheus one)."""
    global _current
    _current = backend
