"""The fuzz tests record metrics into a twin, never into the process's Prometheus
registry: the hostile runs they fold would otherwise stay there as series (a run whose
last progress is decades old) and reach whatever serves that registry later in the same
test session, such as the in-process API that tests/integration/test_prometheus.py has a
real Prometheus scrape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogflow.streams.metrics.current import configure_metrics
from catalogflow.streams.metrics.recording import RecordingMetrics


@pytest.fixture(scope="package", autouse=True)
def metrics_twin() -> Iterator[RecordingMetrics]:
    twin = RecordingMetrics()
    configure_metrics(twin)
    yield twin
    configure_metrics(None)
