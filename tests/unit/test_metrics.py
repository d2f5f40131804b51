"""The metrics seam: the declaration rules, and one contract suite run over both
backends (the Prometheus one read back from its registry, the recording twin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
from catalogflow.streams.metrics import declared
from catalogflow.streams.metrics.base import (
    UNBOUNDED_LABELS,
    Metric,
    Metrics,
    MetricsError,
    counter,
    gauge,
    histogram,
)
from catalogflow.streams.metrics.current import configure_metrics, metrics
from catalogflow.streams.metrics.prometheus import PrometheusMetrics
from catalogflow.streams.metrics.recording import RecordingMetrics
from prometheus_client import CollectorRegistry

CALLS = counter("catalogflow_test_calls_total", "Calls.", "model", "outcome")
DEPTH = gauge("catalogflow_test_depth", "Depth.", "workflow")
RUN_DONE = gauge("catalogflow_test_run_done", "Done.", "run_id", per_active_run=True)
LATENCY = histogram("catalogflow_test_latency_seconds", "Latency.", "model")


class Readable(Protocol):
    """What the contract suite reads back, whichever backend recorded it."""

    backend: Metrics

    def value(self, metric: Metric, **labels: str) -> float | None: ...

    def count(self, metric: Metric, **labels: str) -> float: ...


class ReadPrometheus:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.backend: Metrics = PrometheusMetrics(self.registry)

    def value(self, metric: Metric, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric.name, labels)

    def count(self, metric: Metric, **labels: str) -> float:
        return self.registry.get_sample_value(f"{metric.name}_count", labels) or 0.0


class ReadRecording:
    def __init__(self) -> None:
        self.twin = RecordingMetrics()
        self.backend: Metrics = self.twin

    def value(self, metric: Metric, **labels: str) -> float | None:
        return self.twin.value(metric, **labels)

    def count(self, metric: Metric, **labels: str) -> float:
        return float(len(self.twin.observed(metric, **labels)))


def read_prometheus() -> Readable:
    return ReadPrometheus()


def read_recording() -> Readable:
    return ReadRecording()


BACKENDS: dict[str, Callable[[], Readable]] = {
    "prometheus": read_prometheus,
    "recording": read_recording,
}


@pytest.fixture(params=sorted(BACKENDS))
def readable(request: pytest.FixtureRequest) -> Readable:
    return BACKENDS[request.param]()


# -- the contract every backend keeps ----------------------------------------------------


def test_counters_add_up_per_label_set(readable: Readable) -> None:
    readable.backend.inc(CALLS, model="m", outcome="ok")
    readable.backend.inc(CALLS, 2, model="m", outcome="ok")
    readable.backend.inc(CALLS, model="m", outcome="rate_limited")
    assert readable.value(CALLS, model="m", outcome="ok") == 3
    assert readable.value(CALLS, model="m", outcome="rate_limited") == 1


def test_gauges_are_set_and_removed(readable: Readable) -> None:
    readable.backend.set(DEPTH, 4, workflow="w")
    readable.backend.set(DEPTH, 2, workflow="w")
    assert readable.value(DEPTH, workflow="w") == 2
    readable.backend.set(RUN_DONE, 7, run_id="r1")
    readable.backend.remove(RUN_DONE, run_id="r1")
    readable.backend.remove(RUN_DONE, run_id="never-set")  # no error
    assert readable.value(RUN_DONE, run_id="r1") is None


def test_histograms_count_observations(readable: Readable) -> None:
    for seconds in (0.2, 3.0, 45.0):
        readable.backend.observe(LATENCY, seconds, model="m")
    assert readable.count(LATENCY, model="m") == 3


@pytest.mark.parametrize(
    "record",
    [
        lambda m: m.inc(CALLS, model="m"),  # a label missing
        lambda m: m.inc(CALLS, model="m", outcome="ok", sku="PF-1"),  # one too many
        lambda m: m.set(CALLS, 1, model="m", outcome="ok"),  # a counter is not set
        lambda m: m.observe(DEPTH, 1, workflow="w"),  # a gauge is not observed
        lambda m: m.inc(LATENCY, model="m"),  # nor a histogram counted
    ],
)
def test_a_use_against_the_declaration_is_refused(
    readable: Readable, record: Callable[[Metrics], None]
) -> None:
    with pytest.raises(MetricsError):
        record(readable.backend)


# -- the declarations --------------------------------------------------------------------


def test_every_declared_metric_follows_the_naming_and_label_rules() -> None:
    metrics_ = declared()
    names = [m.name for m in metrics_]
    assert len(names) == len(set(names)), "a metric is declared twice"
    for metric in metrics_:
        assert metric.help.endswith("."), metric.name
        unbounded = set(metric.labels) & UNBOUNDED_LABELS
        assert unbounded <= ({"run_id"} if metric.per_active_run else set()), metric.name
        if metric.kind == "histogram":
            assert metric.name.endswith("_seconds"), metric.name


def test_every_declared_metric_registers_in_one_registry() -> None:
    backend = PrometheusMetrics(CollectorRegistry())
    for metric in declared():
        labels = {name: "x" for name in metric.labels}
        if metric.kind == "histogram":
            backend.observe(metric, 1.0, **labels)
        elif metric.kind == "gauge":
            backend.set(metric, 1.0, **labels)
        else:
            backend.inc(metric, 1.0, **labels)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: counter("catalogflow_calls", "Calls."), "_total"),
        (lambda: gauge("catalogflow_depth_total", "Depth."), "_total"),
        (lambda: counter("calls_total", "Calls."), "catalogflow_"),
        (lambda: counter("catalogflow_x_total", "X.", "sku"), "unbounded"),
        (lambda: counter("catalogflow_x_total", "X.", "run_id"), "unbounded"),
        (lambda: Metric("catalogflow_x_seconds", "X.", "histogram"), "buckets"),
    ],
)
def test_a_declaration_against_the_rules_is_refused(
    make: Callable[[], Metric], problem: str
) -> None:
    with pytest.raises(MetricsError, match=problem):
        make()


# -- the process backend ---------------------------------------------------------------


@pytest.fixture
def twin() -> Iterator[RecordingMetrics]:
    recording = RecordingMetrics()
    configure_metrics(recording)
    yield recording
    configure_metrics(None)


def test_a_configured_twin_records_what_the_process_records(twin: RecordingMetrics) -> None:
    metrics().inc(CALLS, model="m", outcome="ok")
    assert twin.value(CALLS, model="m", outcome="ok") == 1
