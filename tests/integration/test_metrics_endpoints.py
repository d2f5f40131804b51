"""Every catalogflow process serves ``/metrics`` on the real broker: a worker (faust's
figures and the domain ones on one page, its partitions, its group's lag), the
projector (what it folded, its own lag behind the event log, ``/health``) and the API
(its requests by route template)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from catalogflow.streams.control import apply_definition
from catalogflow.streams.settings import Settings
from catalogflow.testbench.apithread import ApiThread
from catalogflow.testbench.workerproc import WorkerProcess
from prometheus_client.parser import text_string_to_metric_families

from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.store import open_read_model
from tests.integration.catalog import chain, import_catalog

pytestmark = pytest.mark.kafka

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(page: str) -> Samples:
    """Every sample of an exposition page: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(page: Samples, name: str, **labels: str) -> float | None:
    return page.get((name, frozenset(labels.items())))


def scrape(url: str) -> tuple[str, Samples]:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text, samples(answer.text)


def scrape_until(url: str, done: Callable[[Samples], bool], timeout: float = 90.0) -> Samples:
    """Scrape until ``done`` holds (the lag gauges are measured every 10 s)."""
    deadline = time.monotonic() + timeout
    while True:
        _, page = scrape(url)
        if done(page) or time.monotonic() > deadline:
            return page
        time.sleep(1.0)


def test_the_worker_serves_faust_and_domain_figures_with_its_partitions_and_lag(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, 8)
    group = settings.app_id

    def caught_up(page: Samples) -> bool:
        lag = value(page, "catalogflow_consumer_lag_messages", group=group, topic="product-changes")
        return lag == 0.0

    page = scrape_until(worker.url, caught_up)
    assert caught_up(page), "no zero lag for product-changes after the import"
    text, page = scrape(worker.url)
    prefix = group.replace("-", "_").replace(".", "_")
    assert (value(page, f"{prefix}_messages_received_total") or 0) >= 8  # faust's sensor
    # One worker holds every partition of every topic its agents read.
    assert (value(page, "catalogflow_worker_assigned_partitions") or 0) >= settings.partitions
    lag_topics = {
        dict(labels)["topic"]
        for (name, labels), _ in page.items()
        if name == "catalogflow_consumer_lag_messages" and dict(labels)["group"] == group
    }
    assert {"product-changes", "workflow-commands", "task-events"} <= lag_topics
    assert not any(t.startswith(settings.topic_prefix) for t in lag_topics)  # short names
    assert "catalogflow_worker_state" in text
    assert "cannot measure the lag" not in worker.log_path.read_text()


def test_the_projector_and_the_api_serve_their_figures(settings: Settings) -> None:
    served = settings.replace(projector_port=0, api_port=0)
    engine = open_read_model(served)
    projector = Projector(served, engine)
    projector.start()
    api = ApiThread(served, engine)
    api.start()
    try:
        assert projector.port is not None and projector.port > 0
        url = f"http://{served.projector_host}:{projector.port}"
        group = f"{settings.app_id}-projector"

        def lag(page: Samples) -> float | None:
            return value(page, "catalogflow_consumer_lag_messages", group=group, topic="workflows")

        def folded(page: Samples) -> bool:
            events = value(page, "catalogflow_projector_events_total", topic="workflows")
            return (events or 0) >= 1 and lag(page) == 0.0

        # Measured at once on start, before there is anything to fold.
        assert lag(scrape_until(url, lambda page: lag(page) is not None)) == 0.0
        apply_definition(settings, chain("metrics-endpoints"), "metrics-endpoints.yaml", "test")
        page = scrape_until(url, folded)
        assert folded(page), "the projector's page shows no folded workflow version"
        assert (value(page, "catalogflow_projector_last_commit_timestamp_seconds") or 0) > 0
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["status"] == "ok" and health["group"] == group

        assert httpx.get(f"{api.url}/api/health", timeout=10).status_code == 200
        _, page = scrape(api.url)
        labels: dict[str, Any] = {"route": "/api/health", "method": "GET", "status": "200"}
        assert (value(page, "catalogflow_api_requests_total", **labels) or 0) >= 1
        assert (value(page, "catalogflow_api_request_seconds_count", route="/api/health") or 0) >= 1
    finally:
        api.stop()
        projector.stop()
        engine.dispose()
    assert projector.port is None  # the port is released with the projector
