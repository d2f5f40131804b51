"""A healthy worker's log is quiet and honest: the seed example run end to end on the
real broker with both simulators, then a normal shutdown, leaves no ERROR, WARNING or
traceback line and no unclosed client session in the worker's log; and none of the
run's secrets (the Magento token, the model key, the signing key) is in the log or in
any message of any of its topics (``testbench/secrets.py``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Secret, Settings
from catalogflow.testbench import secrets
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import (
    MagentoSimulatorThread,
)
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_products, sample_shop

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"
LLM_KEY_ENV = "CATALOGFLOW_TEST_LLM_KEY"
PRODUCTS = 40  # a quarter of the sample catalog is Dry Cat Food: 10 tasks

#: What a worker that is working must never write.
NOISE = re.compile(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback|Unclosed")


@pytest.fixture
def llm() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as sim:
        yield sim


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    shop = sample_shop(PRODUCTS)
    yield shop
    shop.stop()


def counts(run: Any) -> dict[str, int]:
    return dict(run.get("counts", {}))


def test_a_healthy_run_and_shutdown_leave_no_error_warning_or_unclosed_session_in_the_log(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token, llm_key = shop.simulator.issue_integration_token(), f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv(TOKEN_ENV, token)
    monkeypatch.setenv(LLM_KEY_ENV, llm_key)
    signing_key = Secret(uuid.uuid4().hex)
    settings = settings.replace(signing_key=signing_key)  # commands and decisions signed
    worker = start_worker(
        llm_base_url=f"{llm.url}/v1",
        llm_kind="compatible",
        llm_api_key_env=LLM_KEY_ENV,
        magento_url=shop.url,
        magento_token_env=TOKEN_ENV,
        signing_key=signing_key,
    )
    import_products(settings, worker, list(sample_changes(PRODUCTS)))
    definition = parse_definition(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    apply_definition(settings, definition, str(EXAMPLE), "test")
    run_id = start_run(settings, definition.id, "test")
    url = f"/runs/{run_id}/"
    tasks = PRODUCTS // 4
    worker.wait_for(url, lambda r: counts(r) == {"AWAITING_MODERATION": tasks}, timeout=300)
    german = pending_items(settings, run_id=run_id, action_id="translate")
    send_decisions(settings, [decision(i, "APPROVE", actor="anna") for i in german])
    run = worker.wait_for(url, lambda r: r.get("status") == "COMPLETED", timeout=300)
    assert counts(run) == {"SYNCED": tasks}, run
    assert shop.simulator.writes  # the write-back really ran, through the Magento client

    worker.stop()

    log = worker.log_path.read_text(errors="replace")
    assert "Closing event loop" in log, log[-2000:]  # a normal shutdown, to its end
    noisy = [line for line in log.splitlines() if NOISE.search(line)]
    assert not noisy, "\n".join(noisy[:40])

    configured = {
        "Magento token": token,
        "model API key": llm_key,
        "signing key": signing_key.reveal(),
    }
    messages = list(
        secrets.topic_messages(settings.bootstrap_servers, settings.topic_prefix, settings.app_id)
    )
    scanned = {where.partition(":")[0] for where, _ in messages}
    assert settings.topic("task-events") in scanned  # the run's topics were read,
    assert any(name.endswith("-changelog") for name in scanned)  # its tables' too
    places = [*secrets.files_under(worker.log_path), *messages]
    assert secrets.scan(configured, places) == []
