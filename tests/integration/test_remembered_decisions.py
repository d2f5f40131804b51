"""Remembered decisions on a real broker with the Magento simulator: a second run over
unchanged products does not ask again about values a person rejected or edited, it
applies those decisions (and says whose, from when and which run); a product whose
input changed is asked about again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import ModerationDecision
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.magento.simulator import (
    MagentoSimConfig,
    MagentoSimulatorThread,
    seed_sample,
)
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import chain_yaml, import_products
from tests.integration.engine_actions import TYPES

pytestmark = pytest.mark.kafka

CATALOG = 100  # 25 Dry Cat Food
MATCHING = CATALOG // 4
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"
GERMAN = ("shopping_title", "de_DE")


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    shop = MagentoSimulatorThread(MagentoSimConfig())
    shop.start()
    seed_sample(shop.simulator, CATALOG)
    shop.simulator.add_attribute("shopping_title", "text")
    yield shop
    shop.stop()


def counts(run: Any) -> dict[str, int]:
    return dict(run.get("counts", {}))


def when(record: ModerationDecision) -> str:
    return record["decided_at"].strftime("%Y-%m-%d %H:%M:%S UTC")


def test_a_second_run_applies_remembered_rejections_and_edits_instead_of_asking(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
    worker = start_worker(magento_url=shop.url, magento_token_env=TOKEN_ENV)
    catalog = list(sample_changes(CATALOG))
    import_products(settings, worker, catalog)
    document = yaml.safe_load(chain_yaml("dry-cat-remembered"))
    document["actions"][2]["moderation"] = {"mode": "always"}  # the German title
    document["sync"] = {"targets": ["magento"]}
    definition = parse_definition(yaml.safe_dump(document), "remembered.yaml", TYPES)
    apply_definition(settings, definition, "remembered.yaml", "test")

    # Run 1: a reviewer rejects 10 German titles (5 whole items, 5 by field), edits 5
    # and approves the other 10.
    first = start_run(settings, definition.id, "test")
    worker.wait_for(
        f"/runs/{first}/", lambda r: counts(r) == {"AWAITING_MODERATION": MATCHING}, timeout=180
    )
    items = pending_items(settings, run_id=first)
    rejected, edited, approved = items[:10], items[10:15], items[15:]
    rejections = [decision(i, "REJECT", actor="rita") for i in rejected[:5]]
    rejections += [
        decision(i, "REJECT", actor="rita", field="shopping_title", locale="de_DE")
        for i in rejected[5:]
    ]
    edits = [
        decision(
            i,
            "EDIT",
            actor="erik",
            field="shopping_title",
            locale="de_DE",
            value=f"Von Hand {i['sku']}",
        )
        for i in edited
    ]
    approvals = [decision(i, "APPROVE", actor="anna") for i in approved]
    send_decisions(settings, rejections + edits + approvals)
    run = worker.wait_for(f"/runs/{first}/", lambda r: r.get("status") == "COMPLETED")
    assert counts(run) == {"SYNCED": 15, "REJECTED": 10}
    sim = shop.simulator
    for item in edited:
        assert sim.override(item["sku"], "de", "shopping_title") == f"Von Hand {item['sku']}"

    # One approved product changes its name: that input is new, so it is asked again.
    changed_sku = approved[0]["sku"]
    [change] = [c for c in catalog if c["sku"] == changed_sku]
    renamed = [
        {**v, "value": f"{v['value']} (neu)"} if v["attribute"] == "name" else v
        for v in change["values"]
    ]
    update = {
        **change,
        "event_id": f"rename-{changed_sku}",
        "change_type": "UPDATED",
        "source_timestamp": change["source_timestamp"] + timedelta(days=1),
        "values": renamed,
    }
    producer = RecordProducer(settings)
    producer.send("product-changes", changed_sku, update)
    producer.flush()
    worker.wait_for(
        f"/products/{changed_sku}/",
        lambda p: any(
            v["value"].endswith("(neu)") for v in p["values"] if v["attribute"] == "name"
        ),
    )
    writes = len(sim.writes)

    # Run 2 over the same products: only the renamed one waits for review.
    second = start_run(settings, definition.id, "test")
    expected = {"SYNCED": 14, "REJECTED": 10, "AWAITING_MODERATION": 1}
    worker.wait_for(f"/runs/{second}/", lambda r: counts(r) == expected, timeout=180)
    [asked] = pending_items(settings, run_id=second)
    assert asked["sku"] == changed_sku
    decided = {i["sku"] for i in rejected + edited}
    assert decided.isdisjoint(i["sku"] for i in pending_items(settings))
    send_decisions(settings, [decision(asked, "APPROVE", actor="anna")])
    run = worker.wait_for(f"/runs/{second}/", lambda r: r.get("status") == "COMPLETED")
    assert counts(run) == {"SYNCED": 15, "REJECTED": 10}

    tasks = {t["sku"]: t for t in worker.get(f"/runs/{second}/tasks/")["tasks"]}
    by_sku = {d["sku"]: d for d in rejections + edits}
    for item in rejected:
        task = tasks[item["sku"]]
        assert task["status"] == "REJECTED"
        reason = task["history"][-1]["reason"]
        said = f"shopping_title@de_DE rejected by rita (editor) at {when(by_sku[item['sku']])}"
        assert said in reason and f"in run {first}" in reason, reason
        assert sim.value(item["sku"], "all", "shopping_title") is None  # never synced
        assert sim.override(item["sku"], "de", "shopping_title") is None
    for item in edited:
        task = tasks[item["sku"]]
        assert task["status"] == "SYNCED"
        person = f"Von Hand {item['sku']}"
        german = {(f["field"], f["locale"]): f for o in task["outputs"] for f in o["fields"]}
        assert german[GERMAN]["value"] == person
        assert german[GERMAN]["reasoning"].startswith(
            f"Human-authored by erik (editor) in run {first}"
        )
        reasons = " | ".join(h["reason"] or "" for h in task["history"])
        said = f"edited to {person!r} by erik (editor) at {when(by_sku[item['sku']])}"
        assert said in reasons and f"in run {first}" in reasons, reasons
        assert sim.override(item["sku"], "de", "shopping_title") == person
    # Nothing of the rejected products was written by run 2, and no edit was undone.
    later = sim.writes[writes:]
    assert not {w.sku for w in later} & {i["sku"] for i in rejected}
    for w in later:
        if w.sku in {i["sku"] for i in edited} and w.store == "de":
            assert "shopping_title" not in w.attributes or (
                w.attributes["shopping_title"] == f"Von Hand {w.sku}"
            )
