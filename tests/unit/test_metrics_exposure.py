"""Where the metrics are seen: the worker's page (faust's sensor and the domain metrics
on one registry), the assigned-partitions gauge, the lag arithmetic, the projector's
small server and the API's /metrics with its request metrics by route template."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalogflow.streams.app import build_topology
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.lag import lag_by_topic
from catalogflow.streams.metrics.api import API_REQUEST_SECONDS, API_REQUESTS
from catalogflow.streams.metrics.current import configure_metrics
from catalogflow.streams.metrics.recording import RecordingMetrics
from catalogflow.streams.metrics.server import MetricsServer
from catalogflow.streams.metrics.workers import ASSIGNED_PARTITIONS
from catalogflow.streams.settings import Settings
from fastapi.testclient import TestClient
from faust.sensors.prometheus import PrometheusMonitor
from faust.types import TP
from prometheus_client import Counter, generate_latest

from catalogflow.worker import build_worker, expose_metrics, input_partitions
from tests.unit.api_app import api, bearer


@pytest.fixture
def recorded() -> Iterator[RecordingMetrics]:
    backend = RecordingMetrics()
    configure_metrics(backend)
    yield backend
    configure_metrics(None)


def settings_in(tmp_path: Path) -> Settings:
    return Settings.load(environ={}).replace(data_dir=tmp_path / "worker")


# -- the worker ----------------------------------------------------------------------


def test_two_workers_built_in_one_process_each_get_faust_figures_without_a_clash(
    tmp_path: Path,
) -> None:
    first = build_worker(settings_in(tmp_path))
    second = build_worker(settings_in(tmp_path))  # the same app id, so the same names
    assert isinstance(first.app.monitor, PrometheusMonitor)
    assert isinstance(second.app.monitor, PrometheusMonitor)
    assert first.app.monitor is not second.app.monitor


def test_the_worker_page_serves_faust_figures_and_the_default_registry_together(
    tmp_path: Path,
) -> None:
    app = build_topology(settings_in(tmp_path)).app
    registry = expose_metrics(app)
    domain = Counter("catalogflow_exposure_probe", "A domain figure on the default registry.")
    domain.inc()
    page = generate_latest(registry).decode()
    assert "catalogflow_messages_received_total" in page  # faust's, named after the app id
    assert "catalogflow_exposure_probe_total 1.0" in page
    assert "process_resident_memory_bytes" in page


async def test_every_assignment_sets_the_assigned_partitions_gauge(
    tmp_path: Path, recorded: RecordingMetrics
) -> None:
    topology = build_worker(settings_in(tmp_path))
    changes = topology.settings.topic("product-changes")
    changelog = next(iter(topology.app.tables.changelog_topics))
    await topology.app.on_partitions_assigned.send(
        {TP(changes, 0), TP(changes, 3), TP(changelog, 0), TP(changelog, 1)}
    )
    assert recorded.value(ASSIGNED_PARTITIONS) == 2.0
    await topology.app.on_partitions_assigned.send(set())
    assert recorded.value(ASSIGNED_PARTITIONS) == 0.0


def test_changelog_partitions_are_not_counted_as_assigned_inputs() -> None:
    assigned = {TP("a", 0), TP("a", 1), TP("a-changelog", 0)}
    assert input_partitions(assigned, {"a-changelog"}) == 2


# -- lag -----------------------------------------------------------------------------


NAMES = {"p.tasks.translation": "tasks.translation", "p.moderation": "moderation"}


def test_lag_is_the_end_minus_the_position_summed_over_a_topics_partitions() -> None:
    end = {("p.tasks.translation", 0): 10, ("p.tasks.translation", 1): 7, ("p.moderation", 0): 3}
    position = {
        ("p.tasks.translation", 0): 4,
        ("p.tasks.translation", 1): 7,
        ("p.moderation", 0): 3,
    }
    assert lag_by_topic(NAMES, end, position, {}) == {"tasks.translation": 6, "moderation": 0}


def test_a_partition_without_a_position_counts_from_its_first_offset() -> None:
    end = {("p.moderation", 0): 50, ("p.moderation", 1): 5}
    position = {("p.moderation", 1): -1001}  # librdkafka: no committed offset
    start = {("p.moderation", 0): 20, ("p.moderation", 1): 0}
    assert lag_by_topic(NAMES, end, position, start)["moderation"] == 30 + 5


def test_a_position_read_after_the_end_offset_is_no_lag_and_other_topics_are_ignored() -> None:
    end = {("p.moderation", 0): 5, ("elsewhere", 0): 99}
    position = {("p.moderation", 0): 6}
    assert lag_by_topic(NAMES, end, position, {}) == {"tasks.translation": 0, "moderation": 0}


# -- the projector's server ----------------------------------------------------------


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_the_metrics_server_binds_a_free_port_serves_both_pages_and_releases_it() -> None:
    server = MetricsServer("127.0.0.1", 0, lambda: {"status": "ok", "folded": 3}).start()
    try:
        assert server.port > 0
        status, kind, body = fetch(f"{server.url}/metrics")
        assert status == 200 and kind.startswith("text/plain")
        assert "process_cpu_seconds_total" in body
        status, kind, body = fetch(f"{server.url}/health")
        assert (status, kind, json.loads(body)) == (
            200,
            "application/json",
            {"status": "ok", "folded": 3},
        )
        assert fetch(f"{server.url}/elsewhere")[0] == 404
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{server.url}/health", timeout=2)


def test_the_projector_port_is_a_setting_checked_at_start() -> None:
    loaded = Settings.load(environ={"CATALOGFLOW_PROJECTOR_PORT": "0"})
    assert (loaded.projector_host, loaded.projector_port) == ("127.0.0.1", 0)
    assert Settings().projector_port == 6071
    with pytest.raises(ConfigError, match="projector_port"):
        Settings(projector_port=70000)


# -- the API -------------------------------------------------------------------------


def test_api_metrics_need_no_token_and_stay_out_of_the_openapi_document(
    tmp_path: Path, recorded: RecordingMetrics
) -> None:
    client = TestClient(api(tmp_path))
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_api_requests_are_counted_by_route_template_never_by_the_concrete_path(
    tmp_path: Path, recorded: RecordingMetrics
) -> None:
    client = TestClient(api(tmp_path))
    client.get("/api/runs/run-one", headers=bearer("viewer"))
    client.get("/api/runs/run-two", headers=bearer("viewer"))
    client.get("/api/health")
    client.get("/no/such/page/42")
    client.request("BREW", "/api/health")
    requests = recorded.series(API_REQUESTS)
    assert requests == {
        ("/api/runs/{run_id}", "GET", "404"): 2.0,
        ("/api/health", "GET", "200"): 1.0,
        ("unmatched", "GET", "404"): 1.0,
        ("/api/health", "OTHER", "405"): 1.0,
    }
    assert len(recorded.observed(API_REQUEST_SECONDS, route="/api/runs/{run_id}")) == 2
    assert not any("run-one" in label for key in requests for label in key)
