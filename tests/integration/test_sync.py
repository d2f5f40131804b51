"""Review and write-back end to end, on the real broker with both simulators: the
seed example's 500 Dry Cat Food products, reviewed by a script, written to the
Magento simulator once per product, scope and field; a replay writes nothing; a
person's edit made after the AI read the product is left alone."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import WorkflowDefinition, parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import ProductChanged
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import (
    MagentoSimConfig,
    MagentoSimulatorThread,
)
from catalogflow.testbench.workerproc import WorkerProcess
from confluent_kafka import Consumer, TopicPartition

from tests.integration.catalog import import_products, sample_shop

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"


@pytest.fixture
def llm() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as sim:
        yield sim


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    shop = sample_shop(2000)
    yield shop
    shop.stop()


def sync_worker(
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> WorkerProcess:
    monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
    return start_worker(
        llm_base_url=f"{llm.url}/v1",
        llm_kind="compatible",
        magento_url=shop.url,
        magento_token_env=TOKEN_ENV,
        action_batch_size=64,
        action_concurrency=16,
    )


def seed_workflow(review: tuple[str, ...] = ("enrich", "translate")) -> WorkflowDefinition:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for action in document["actions"]:
        action.pop("moderation", None)
        if action["id"] in review:
            action["moderation"] = {"mode": "always"}
    return parse_definition(yaml.safe_dump(document), str(EXAMPLE))


def counts(run: Any) -> dict[str, int]:
    return dict(run.get("counts", {}))


def price_change(sku: str, price: float) -> ProductChanged:
    """A person's change of ``sku``'s price, a field the seed workflow does not read."""
    base = next(sample_changes(1, start=int(sku.removeprefix("PF-"))))
    return {
        **base,
        "event_id": f"price-{sku}-{price}",
        "change_type": "UPDATED",
        "author": {"kind": "PERSON", "id": "anna", "name": None},
        "values": [{"attribute": "price", "locale": None, "scope": None, "value": price}],
        "categories": None,
        "supplier": None,
        "status": None,
        "family": None,
    }


def price_of(product: Any) -> Any:
    return next((v["value"] for v in product.get("values", []) if v["attribute"] == "price"), None)


def messages(settings: Settings, name: str) -> int:
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    consumer = Consumer({**conf, "group.id": f"{settings.app_id}-count"})
    try:
        topic = settings.topic(name)
        return sum(
            high - low
            for low, high in (
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in range(settings.partitions)
            )
        )
    finally:
        consumer.close()


def every_message(settings: Settings, name: str) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every message of topic ``name``, from offset 0 to its end."""
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    consumer = Consumer({**conf, "group.id": f"{settings.app_id}-replay"})
    topic = settings.topic(name)
    try:
        ends = {}
        for p in range(settings.partitions):
            ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        found: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + 60
        while len(found) < sum(ends.values()):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                found.append((message.key(), message.value() or b""))
        return found
    finally:
        consumer.close()


def test_reviewed_seed_example_is_written_once_per_product_scope_and_field(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = sync_worker(start_worker, llm, shop, monkeypatch)
    import_products(settings, worker, list(sample_changes(2000)))  # 500 Dry Cat Food
    definition = seed_workflow()
    apply_definition(settings, definition, str(EXAMPLE), "test")
    run_id = start_run(settings, definition.id, "test")
    url = f"/runs/{run_id}/"

    # Review 1: the shopping content. Reject 10, edit 10 titles (and approve the rest of
    # those items: a decision on one field leaves the others waiting), approve the rest.
    worker.wait_for(url, lambda r: counts(r).get("AWAITING_MODERATION") == 500, timeout=600)
    enriched = pending_items(settings, run_id=run_id, action_id="enrich")
    assert len(enriched) == 500
    rejected, edited, approved = enriched[:10], enriched[10:20], enriched[20:]
    send_decisions(
        settings,
        [decision(i, "REJECT", actor="rita") for i in rejected]
        + [
            decision(i, "EDIT", actor="erik", field="shopping_title", value=f"Edited {i['sku']}")
            for i in edited
        ]
        + [decision(i, "APPROVE", actor="erik") for i in edited]
        + [decision(i, "APPROVE", actor="anna") for i in approved],
    )

    # Review 2: the German texts, all approved with one batch filter.
    def german_waiting(run: Any) -> bool:
        return counts(run) == {"AWAITING_MODERATION": 490, "REJECTED": 10}

    worker.wait_for(url, german_waiting, timeout=600)
    german = pending_items(settings, run_id=run_id, action_id="translate")
    send_decisions(settings, [decision(i, "APPROVE", actor="anna") for i in german])
    run = worker.wait_for(url, lambda r: r.get("status") == "COMPLETED", timeout=600)
    assert counts(run) == {"SYNCED": 490, "REJECTED": 10}, run

    sim = shop.simulator
    tasks = {t["sku"]: t for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]}
    one = approved[0]["sku"]
    values = {
        (f["field"], f["locale"]): f["value"] for o in tasks[one]["outputs"] for f in o["fields"]
    }
    # Extracted attributes as option ids, globally; German texts on the de store view.
    assert sim.value(one, "all", "flavor") == sim.option_id("flavor", values[("Flavor", None)])
    assert sim.override(one, "de", "shopping_title") == values[("shopping_title", "de_DE")]
    assert sim.override(one, "all", "shopping_title") == values[("shopping_title", None)]
    assert sim.override(one, "de", "flavor") is None  # global stays global
    for item in edited:
        assert sim.value(item["sku"], "all", "shopping_title") == f"Edited {item['sku']}"
    for item in rejected:
        assert sim.value(item["sku"], "all", "shopping_title") is None
        assert sim.value(item["sku"], "all", "flavor") is None

    # Exactly one write per product, scope and field.
    written = Counter((w.sku, w.store, a) for w in sim.writes for a in w.attributes)
    assert written and max(written.values()) == 1, written.most_common(3)
    assert {sku for sku, _, _ in written} == set(tasks) - {i["sku"] for i in rejected}
    writes = len(sim.writes)

    # Replaying the whole sync-requests topic from offset 0 writes nothing.
    results = messages(settings, "sync-results")
    replay = every_message(settings, "sync-requests")
    assert len(replay) == 490 * 2  # global and German values of every synced product
    producer = RecordProducer(settings)
    for key, value in replay:
        producer.send_raw("sync-requests", key, value)
    producer.flush()
    deadline = time.monotonic() + 120
    while messages(settings, "sync-results") < results + len(replay):
        assert time.monotonic() < deadline, "the replayed requests were not answered"
        time.sleep(0.5)
    assert len(sim.writes) == writes


def test_a_persons_edit_after_the_ai_read_is_a_conflict_not_overwritten(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = sync_worker(start_worker, llm, shop, monkeypatch)
    import_products(settings, worker, list(sample_changes(8)))  # 2 Dry Cat Food
    definition = seed_workflow(review=("extract",))
    apply_definition(settings, definition, str(EXAMPLE), "test")
    run_id = start_run(settings, definition.id, "test")
    worker.wait_for(f"/runs/{run_id}/", lambda r: counts(r) == {"AWAITING_MODERATION": 2})
    first, second = pending_items(settings, run_id=run_id)
    # While the values wait for review, a person sets the flavour in Magento.
    person = shop.simulator.option_id("flavor", "Lamb")
    shop.simulator.set_value(first["sku"], "all", "flavor", person)
    send_decisions(settings, [decision(i, "APPROVE", actor="anna") for i in (first, second)])
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert counts(run) == {"SYNCED": 2}

    assert shop.simulator.value(first["sku"], "all", "flavor") == person
    tasks = {t["sku"]: t for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]}
    reason = tasks[first["sku"]]["history"][-1]["reason"]
    assert "magento/all CONFLICT" in reason and "flavor conflict" in reason, reason
    assert "CONFLICT" not in tasks[second["sku"]]["history"][-1]["reason"]


def test_translations_leave_global_values_inherited_in_legacy_copy_mode(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = sample_shop(8, MagentoSimConfig(store_save_mode="legacy_copy"))
    try:
        worker = sync_worker(start_worker, llm, shop, monkeypatch)
        import_products(settings, worker, list(sample_changes(8)))
        definition = seed_workflow(review=())
        apply_definition(settings, definition, str(EXAMPLE), "test")
        run_id = start_run(settings, definition.id, "test")
        run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
        assert counts(run) == {"SYNCED": 2}
        sim = shop.simulator
        for sku in (t["sku"] for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]):
            assert sim.override(sku, "de", "shopping_title")  # the translation is there …
            for untouched in ("name", "description", "price", "brand"):
                assert sim.override(sku, "de", untouched) is None, (sku, untouched)
    finally:
        shop.stop()


def catalogflow(settings: Settings, *args: str, **extra_env: str) -> str:
    env = {**os.environ, **settings.to_env(), **extra_env}
    done = subprocess.run(
        [sys.executable, "-m", "catalogflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def catalog_csv(path: Path, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        columns = ["name", "description", "brand", "weight_kg", "price"]
        writer.writerow(["sku", "categories", "supplier", "status", "family", *columns])
        for change in sample_changes(count):
            values = {v["attribute"]: v["value"] for v in change["values"]}
            writer.writerow(
                [
                    change["sku"],
                    "|".join(change["categories"] or []),
                    change["supplier"],
                    change["status"],
                    change["family"],
                    *(values[c] for c in columns),
                ]
            )
    return path


def test_csv_product_reaches_magento_and_our_write_read_back_starts_nothing(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    shop = sample_shop(8)
    try:
        worker = sync_worker(start_worker, llm, shop, monkeypatch)
        catalogflow(settings, "import", str(catalog_csv(tmp_path / "catalog.csv", 8)))
        worker.wait_for("/products/", lambda a: a["count"] == 8)
        document = seed_workflow(review=()).to_dict()
        definition = WorkflowDefinition.from_dict({**document, "mode": "continuous"})
        apply_definition(settings, definition, "continuous.yaml", "test")
        run_id = start_run(settings, definition.id, "test")
        url = f"/runs/{run_id}/"
        worker.wait_for(url, lambda r: counts(r) == {"SYNCED": 2}, timeout=120)
        sim = shop.simulator
        writes = len(sim.writes)
        assert sim.value("PF-000000", "de", "shopping_title")  # the CSV product is in Magento

        magento_env = {
            "CATALOGFLOW_MAGENTO_URL": shop.url,
            "CATALOGFLOW_MAGENTO_TOKEN_ENV": TOKEN_ENV,
            TOKEN_ENV: os.environ[TOKEN_ENV],
        }
        task_events = messages(settings, "task-events")
        pulled = catalogflow(settings, "magento", "pull", **magento_env)
        assert pulled.startswith("8 products pulled"), pulled

        def read_back(product: Any) -> bool:
            values = {(v["attribute"], v["locale"]) for v in product.get("values", [])}
            return ("shopping_title", "de_DE") in values and ("flavor", None) in values

        worker.wait_for("/products/PF-000000/", read_back)
        # Sentinels: a later change of a field no action reads, on each product the
        # workflow matches (same partition, behind the read-back). The worker confirms
        # the tasks a change starts before it takes the next change, so once every
        # sentinel is in the products table, a task started by the read-back would
        # already be on task-events.
        producer = RecordProducer(settings)
        tasks = worker.get(f"{url}tasks/")["tasks"]
        for sku in {t["sku"] for t in tasks}:
            producer.send("product-changes", sku, price_change(sku, 12.5))
        producer.flush()
        for sku in {t["sku"] for t in tasks}:
            worker.wait_for(f"/products/{sku}/", lambda p: price_of(p) == 12.5)
        assert messages(settings, "task-events") == task_events
        run = worker.get(url)
        assert counts(run) == {"SYNCED": 2} and run["tasks_created"] == 2, run
        assert len(sim.writes) == writes
    finally:
        shop.stop()


def test_a_failed_write_ends_the_task_in_error_with_a_sync_issue(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = sample_shop(8)
    try:
        monkeypatch.delenv("CATALOGFLOW_TEST_NO_TOKEN", raising=False)
        worker = start_worker(
            llm_base_url=f"{llm.url}/v1",
            llm_kind="compatible",
            magento_url=shop.url,
            magento_token_env="CATALOGFLOW_TEST_NO_TOKEN",  # not set: Magento would say 401
        )
        import_products(settings, worker, list(sample_changes(8)))
        definition = seed_workflow(review=())
        apply_definition(settings, definition, str(EXAMPLE), "test")
        run_id = start_run(settings, definition.id, "test")
        run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
        assert counts(run) == {"ERROR": 2}
        for task in worker.get(f"/runs/{run_id}/tasks/")["tasks"]:
            assert task["failure_category"] == "SYNC_ISSUE"
            assert "CATALOGFLOW_TEST_NO_TOKEN" in task["reason"], task["reason"]
        assert shop.simulator.writes == []
    finally:
        shop.stop()
