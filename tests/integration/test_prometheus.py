"""A real Prometheus (Debian's ``prometheus``) scraping a real worker, projector and
API with the scrape config of ``deploy/prometheus``, while the seed example runs on
the simulators: every PromQL expression of the dashboards and the alert rules parses
and returns data (or is empty by design, listed below with the reason), a healthy run
fires no alert, and the scraped figures agree with the run's own totals."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.deploy.grafana import generate
from catalogflow.deploy.grafana.names import metric_names
from catalogflow.localbroker.launcher import free_port
from catalogflow.localbroker.prometheus import CONFIG, LocalPrometheus, scrape_config
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.apithread import ApiThread
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.store import open_read_model
from tests.integration.catalog import import_products, sample_shop

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
ALERTS = CONFIG.parent / "alerts.yml"
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"
CATALOG = 120  # a quarter is Dry Cat Food: 30 tasks
MATCHING = CATALOG // 4
WORKFLOW = "dry-cat-food"
#: What Grafana puts in the template variables, for a query Prometheus can run.
VARIABLES = {"$workflow": WORKFLOW, "$__rate_interval": "1m"}

#: Dashboard expressions that return nothing on this run, and why.
EMPTY_BY_DESIGN = {
    'sum by (model) (rate(catalogflow_model_requests_total{outcome="rate_limited"}[1m]))': (
        "the 429 series: the simulator's default limits are never reached"
    ),
}
#: Series an alert reads that this run does not produce, and why (none so far: the
#: run makes a dead letter and has a budget so that those series exist too).
SERIES_EMPTY_BY_DESIGN: dict[str, str] = {}


def dashboard_queries() -> list[str]:
    exprs = []
    for spec in generate.DASHBOARDS:
        for query in generate.queries(spec):
            expr = query.expr
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            exprs.append(expr)
    return list(dict.fromkeys(exprs))


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture
def llm() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as sim:
        yield sim


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    shop = sample_shop(CATALOG)
    yield shop
    shop.stop()


@pytest.fixture
def observed(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Settings, WorkerProcess, LocalPrometheus]]:
    """A worker on both simulators, a projector and the API in this process, and a
    Prometheus scraping all three every second."""
    monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
    settings = settings.replace(api_port=free_port(), projector_port=free_port())
    worker = start_worker(
        llm_base_url=f"{llm.url}/v1",
        llm_kind="compatible",
        magento_url=shop.url,
        magento_token_env=TOKEN_ENV,
        action_batch_size=16,
        action_concurrency=8,
        # Limits far above what the run needs: configured, so the limits panel has data.
        llm_rpm=100_000,
        llm_tpm=100_000_000,
    )
    engine = open_read_model(settings)
    projector = Projector(settings, engine)
    projector.start()
    api = ApiThread(settings, engine)
    api.start()
    # faust names its figures after the app id: the test's own, the dashboards' is
    # the production one.
    app_prefix = settings.app_id.replace("-", "_").replace(".", "_")
    config = scrape_config(
        {
            "worker": [f"127.0.0.1:{settings.web_port}"],
            "projector": [f"127.0.0.1:{settings.projector_port}"],
            "api": [f"127.0.0.1:{settings.api_port}"],
        },
        renames={app_prefix: generate.FAUST_PREFIX},
    )
    prometheus = LocalPrometheus(config)
    prometheus.start()
    try:
        yield settings, worker, prometheus
    finally:
        prometheus.stop()
        api.stop()
        projector.stop()
        engine.dispose()


def wait_until_scraped(prometheus: LocalPrometheus, timeout: float = 60.0) -> None:
    """Every target scraped, and healthy."""
    deadline = time.monotonic() + timeout
    while True:
        targets = prometheus.targets()
        health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
        if len(targets) == 3 and all(state == "up" for state, _ in health.values()):
            return
        assert time.monotonic() < deadline, f"targets not all up: {health}"
        time.sleep(0.5)


def collect(
    prometheus: LocalPrometheus,
    exprs: list[str],
    seen: set[str],
    until: Callable[[], bool],
    timeout: float = 45.0,
) -> None:
    """Run every expression (each must parse) until ``until()`` or ``timeout``, adding
    to ``seen`` those that returned data."""
    deadline = time.monotonic() + timeout
    while True:
        for expr in exprs:
            if expr not in seen and prometheus.query(expr):
                seen.add(expr)
        if until() or time.monotonic() > deadline:
            return
        time.sleep(1.0)


def listing(title: str, exprs: set[str]) -> str:
    return "\n  ".join([f"{title}:", *sorted(exprs)])


def scalar(prometheus: LocalPrometheus, expr: str) -> float:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


def agree(prometheus: LocalPrometheus, expected: dict[str, float], timeout: float = 30.0) -> None:
    """Each expression's value equals the run's own figure, once the last scrape of the
    finished run is in (figures only grow, so wait for them rather than sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {expr: scalar(prometheus, expr) for expr in expected}
        if got == pytest.approx(expected) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert got == pytest.approx(expected)


def test_every_dashboard_and_alert_query_returns_data_and_agrees_with_the_run(
    observed: tuple[Settings, WorkerProcess, LocalPrometheus], llm: SimulatorThread
) -> None:
    settings, worker, prometheus = observed
    wait_until_scraped(prometheus)
    import_products(settings, worker, list(sample_changes(CATALOG)))
    producer = RecordProducer(settings)  # one dead letter, for the dead-letter panel
    producer.send_raw("product-changes", b"PF-broken", b"\x00 not an Avro record")
    producer.flush()
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    definition = parse_definition(yaml.safe_dump(document), str(EXAMPLE))
    apply_definition(settings, definition, str(EXAMPLE), "test")
    run_id = start_run(settings, definition.id, "test", budget=1000.0)
    url = f"/runs/{run_id}/"
    httpx.get(f"http://127.0.0.1:{settings.api_port}/api/health", timeout=10)

    exprs = dashboard_queries()
    alert_series = sorted({name for rule in alert_rules() for name in metric_names(rule["expr"])})
    series_queries = [f"count({name})" for name in alert_series]
    seen: set[str] = set()

    # While the German texts wait for review: the gauges of an active run and of the
    # review queue exist only now.
    worker.wait_for(url, lambda r: r.get("counts") == {"AWAITING_MODERATION": MATCHING}, 600)
    active_only = {
        expr
        for expr in exprs
        if "catalogflow_run_" in expr or "catalogflow_moderation_pending" in expr
    }
    collect(prometheus, exprs + series_queries, seen, until=lambda: active_only <= seen)
    waiting = pending_items(settings, run_id=run_id, action_id="translate")
    assert len(waiting) == MATCHING
    send_decisions(settings, [decision(i, "APPROVE", actor="anna") for i in waiting])
    run = worker.wait_for(url, lambda r: r.get("status") == "COMPLETED", timeout=600)
    assert run["counts"] == {"SYNCED": MATCHING}, run

    expected = set(exprs) - set(EMPTY_BY_DESIGN)
    collect(prometheus, exprs + series_queries, seen, until=lambda: expected <= seen)
    assert not expected - seen, listing("dashboard queries that returned no data", expected - seen)
    stale = set(EMPTY_BY_DESIGN) & seen
    assert not stale, listing("listed in EMPTY_BY_DESIGN, but returned data", stale)
    missing_series = {
        name
        for name in alert_series
        if f"count({name})" not in seen and name not in SERIES_EMPTY_BY_DESIGN
    }
    assert not missing_series, listing("series an alert reads, never scraped", missing_series)

    # Prometheus evaluated every rule without error, and a healthy run fires none.
    groups = prometheus.api("/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(alert_rules())
    assert {r["name"]: r["lastError"] for r in rules if r["health"] != "ok"} == {}
    assert {r["name"] for r in rules if r["alerts"]} == set()
    for rule in alert_rules():
        assert prometheus.query(rule["expr"]) == [], rule["alert"]

    # The scraped figures are the run's own totals.
    worker_job = f'job="worker",workflow="{WORKFLOW}"'
    by_status = {
        f'sum(catalogflow_task_transitions_total{{{worker_job},status="{status}"}})': float(count)
        for status, count in run["counts"].items()
    }
    for status in ("ERROR", "REJECTED", "SKIPPED"):
        by_status[f'sum(catalogflow_task_transitions_total{{{worker_job},status="{status}"}})'] = 0
    agree(
        prometheus,
        {
            **by_status,
            'sum(catalogflow_model_requests_total{job="worker"})': float(
                llm.stats()["completions"]
            ),
            'sum(catalogflow_model_tokens_total{job="worker",kind="prompt"})': float(
                run["input_tokens"]
            ),
            'sum(catalogflow_model_tokens_total{job="worker",kind="completion"})': float(
                run["output_tokens"]
            ),
            'sum(catalogflow_model_cost_dollars_total{job="worker"})': float(run["cost"]),
            'sum(catalogflow_sync_results_total{job="worker",outcome="synced"}) > bool 0': 1.0,
        },
    )
