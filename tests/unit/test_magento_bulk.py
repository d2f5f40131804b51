"""Magento bulk mode (``connectors/magento/bulk.py``) against the Magento simulator's
async/bulk endpoints and its consumer, driven through the sink's batch: above
``magento_bulk_above`` pending writes the saves go as bulk operations and end as their
operations end; below it every save is the single PUT it always was."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from catalogflow.agents.sink import SinkBatch
from catalogflow.connectors.magento.bulk import CONSUMER_COMMAND
from catalogflow.connectors.magento.target import MagentoTarget
from catalogflow.connectors.targets.base import SyncTarget, TargetContext
from catalogflow.streams.app import Topology
from catalogflow.streams.clock import SystemClock
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import ConfigError, InvalidMessage
from catalogflow.streams.records import SyncRequest, SyncResult, Value
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import request_id, value_hash
from catalogflow.testbench.magento.simulator import MagentoSimulatorThread

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEMAS = SchemaStore.shipped()
TOKEN_ENV = "CATALOGFLOW_TEST_BULK_TOKEN"
PRODUCTS = 6
BULK = "/async/bulk/V1/products/bySku"
#: Test-sized: the consumer ticks every 20 ms, the target polls every 20 ms.
TICK_S, POLL_S = 0.02, 0.02


@contextmanager
def open_shop() -> Iterator[MagentoSimulatorThread]:
    """A shop with PRODUCTS cat foods (a global flavor, store-scoped meta titles)."""
    with MagentoSimulatorThread() as thread:
        sim = thread.simulator
        sim.add_attribute("flavor", "select", ("Salmon", "Chicken", "Tuna"), scope="global")
        for n in range(PRODUCTS):
            sim.add_product(
                f"CAT-{n}",
                {"flavor": "Salmon", "meta_title": f"Cat food {n}"},
                name=f"Cat Food {n}",
            )
        yield thread


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    with open_shop() as thread:
        yield thread


def make_target(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch, **changes: Any
) -> MagentoTarget:
    monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
    values: dict[str, Any] = {
        "magento_url": shop.url,
        "magento_token_env": TOKEN_ENV,
        "magento_bulk_above": 2,
        "magento_bulk_size": 50,
        "magento_bulk_timeout": 5.0,
        "magento_bulk_poll": POLL_S,
        **changes,
    }
    settings = dataclasses.replace(Settings.load(environ={}), **values)
    return MagentoTarget(TargetContext(settings, {}, SystemClock()))


@dataclasses.dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclasses.dataclass
class Event:
    message: Message


class DeadLetters:
    async def send(self, message: Message, error: InvalidMessage, agent: str) -> None:
        raise AssertionError(f"dead letter from {agent}: {error}")


class FakeTopology:
    """What the sink reads of a topology, without faust; the ledger lives across runs."""

    def __init__(self, target: SyncTarget) -> None:
        self.settings = Settings.load(environ={})
        self.tables: dict[str, dict[str, Any]] = {
            name: {}
            for name in ("sync-ledger", "sync-pending", "sync-failed", "sync-failed-requests")
        }
        self.targets = {"magento": target}
        self.clock = SystemClock()
        self.schemas = SCHEMAS
        self.dead_letters = DeadLetters()
        self.sent: list[tuple[str, Any]] = []

    async def send(
        self, topic: str, key: str | None, record: Any, partition: int | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, record))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def sync(self, *requests: SyncRequest) -> dict[str, SyncResult]:
        """One sink batch of ``requests``; their results by request id."""
        start = len(self.sent)
        batch: list[Any] = [
            Event(Message("sync-requests", 0, n, None, SCHEMAS.encode("SyncRequest", r)))
            for n, r in enumerate(requests)
        ]
        await SinkBatch(cast(Topology, self)).run(batch)
        return {
            record["request_id"]: record
            for topic, record in self.sent[start:]
            if topic == "sync-results"
        }


def request(sku: str, *fields: tuple[str, Value, Value], store: str = "all") -> SyncRequest:
    task_id = f"{sku}@run-1"
    return {
        "request_id": request_id(task_id, "magento", store),
        "task_id": task_id,
        "run_id": "run-1",
        "sku": sku,
        "target": "magento",
        "store_scope": store,
        "fields": [
            {"attribute": a, "value": v, "read_value": r, "value_hash": value_hash(v)}
            for a, v, r in fields
        ],
        "requested_at": NOW,
    }


def titled(n: int, store: str = "all") -> SyncRequest:
    """New meta title and flavor for CAT-n, read as the shop holds them."""
    return request(
        f"CAT-{n}",
        ("meta_title", f"Adult cat food {n} | Brand", f"Cat food {n}"),
        ("flavor", "Tuna", "Salmon"),
        store=store,
    )


def single_puts(shop: MagentoSimulatorThread) -> list[str]:
    return [p for m, p in shop.simulator.request_log if m == "PUT" and BULK not in p]


def bulk_puts(shop: MagentoSimulatorThread) -> list[str]:
    return [p for m, p in shop.simulator.request_log if m == "PUT" and BULK in p]


def writes_of(shop: MagentoSimulatorThread, sku: str, store: str, attribute: str) -> int:
    return sum(
        1
        for w in shop.simulator.writes
        if (w.sku, w.store) == (sku, store) and attribute in w.attributes
    )


async def test_above_the_threshold_saves_go_as_bulk_operations_and_each_field_is_written_once(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = shop.simulator
    sim.configure(consumer_tick_s=TICK_S)
    target = make_target(shop, monkeypatch)
    german = [
        request(f"CAT-{n}", ("name", f"Katzenfutter {n}", None), store="de")
        for n in range(PRODUCTS)
    ]  # each after its product's global write, in a bulk of their own
    requests = [titled(n) for n in range(PRODUCTS)] + german
    try:
        results = await FakeTopology(target).sync(*requests)
    finally:
        await target.aclose()

    assert {r["status"] for r in results.values()} == {"SYNCED"}
    for result in results.values():
        assert {f["status"] for f in result["fields"]} == {"SYNCED"}
    assert single_puts(shop) == []  # no PUT of a product: every save was a bulk operation
    assert bulk_puts(shop) and len(bulk_puts(shop)) < len(requests)
    assert all(BULK in w.path for w in sim.writes)
    for n in range(PRODUCTS):
        assert sim.value(f"CAT-{n}", "all", "meta_title") == f"Adult cat food {n} | Brand"
        assert sim.value(f"CAT-{n}", "all", "flavor") == sim.option_id("flavor", "Tuna")
        assert writes_of(shop, f"CAT-{n}", "all", "meta_title") == 1
        assert writes_of(shop, f"CAT-{n}", "all", "flavor") == 1
        assert sim.value(f"CAT-{n}", "de", "name") == f"Katzenfutter {n}"
        assert sim.value(f"CAT-{n}", "all", "name") == f"Cat Food {n}"  # the global stays
        assert writes_of(shop, f"CAT-{n}", "de", "name") == 1
        assert writes_of(shop, f"CAT-{n}", "de", "url_key") == 1  # derived from the name
    assert {op.status for op in sim.bulk_operations} == {1}


async def test_a_retriably_failed_operation_is_submitted_again_and_completes(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = shop.simulator
    sim.inject("deadlock", 1, path_contains=BULK)  # the first operation the consumer runs
    sim.configure(consumer_tick_s=TICK_S)
    target = make_target(shop, monkeypatch)
    try:
        results = await FakeTopology(target).sync(*(titled(n) for n in range(4)))
    finally:
        await target.aclose()

    assert {r["status"] for r in results.values()} == {"SYNCED"}
    by_sku: dict[str | None, list[int]] = {}
    for op in sim.bulk_operations:
        by_sku.setdefault(op.sku, []).append(op.status)
    assert sorted(by_sku.values()) == [[1], [1], [1], [2, 1]]  # failed once, then done
    for n in range(4):
        assert writes_of(shop, f"CAT-{n}", "all", "meta_title") == 1
    assert single_puts(shop) == []


async def test_a_must_change_failure_is_that_requests_categorised_error_only(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAT-1 asks for CAT-0's URL key: Magento refuses that operation (status 3) with the
    message a single save gets, so it is the same DUPLICATE_URL_KEY error, not retried."""
    sim = shop.simulator
    sim.configure(consumer_tick_s=TICK_S)
    taken = request("CAT-1", ("url_key", "cat-food-0", "cat-food-1"))
    target = make_target(shop, monkeypatch)
    try:
        results = await FakeTopology(target).sync(titled(0), taken, titled(2), titled(3))
    finally:
        await target.aclose()
    single = make_target(shop, monkeypatch, magento_bulk_above=0)
    try:
        alone = await FakeTopology(single).sync(taken)
    finally:
        await single.aclose()

    refused = results[taken["request_id"]]
    assert refused["status"] == "ERROR"
    assert refused["error_category"] == "DUPLICATE_URL_KEY"
    assert refused["error_category"] == alone[taken["request_id"]]["error_category"]
    assert "URL key for specified store already exists" in (refused["message"] or "")
    assert [f["status"] for f in refused["fields"]] == ["ERROR"]
    assert [op.status for op in sim.bulk_operations if op.sku == "CAT-1"] == [3]  # once
    others = [r for rid, r in results.items() if rid != taken["request_id"]]
    assert {r["status"] for r in others} == {"SYNCED"}
    assert sim.value("CAT-1", "all", "url_key") == "cat-food-1"


async def test_a_bulk_no_consumer_runs_is_a_sync_error_and_is_never_sent_twice(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No consumer: after the timeout every request is an error naming the bulk and the
    consumer to start. Sent again while the operations are open, nothing more is
    submitted; once the consumer runs each value is written once, and sending the
    requests again then finds them UNCHANGED."""
    sim = shop.simulator
    target = make_target(shop, monkeypatch, magento_bulk_timeout=0.3)
    sink = FakeTopology(target)
    requests = [titled(n) for n in range(3)]
    try:
        first = await sink.sync(*requests)
        [bulk_uuid] = {op.bulk_uuid for op in sim.bulk_operations}
        for result in first.values():
            assert result["status"] == "ERROR"
            assert result["error_category"] == "CONNECTION"
            message = result["message"] or ""
            assert bulk_uuid in message and CONSUMER_COMMAND in message
            assert "still open after 0.3 s" in message
        assert sim.writes == []

        again = await sink.sync(*requests)  # e.g. retry-failed before any consumer ran
        assert {r["status"] for r in again.values()} == {"ERROR"}
        assert all("still open" in (r["message"] or "") for r in again.values())
        assert len(sim.bulk_operations) == 3  # nothing submitted a second time

        assert sim.tick_consumers() == 3  # the consumer starts at last
        for n in range(3):
            assert sim.value(f"CAT-{n}", "all", "meta_title") == f"Adult cat food {n} | Brand"
            assert writes_of(shop, f"CAT-{n}", "all", "meta_title") == 1

        after = await sink.sync(*requests)
        assert {r["status"] for r in after.values()} == {"UNCHANGED"}
        assert len(sim.writes) == 3 and len(sim.bulk_operations) == 3
    finally:
        await target.aclose()


async def test_a_persons_edit_since_our_last_write_is_a_conflict_and_not_submitted(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = shop.simulator
    sim.configure(consumer_tick_s=TICK_S)
    sim.set_value("CAT-1", "all", "meta_title", "Edited by a person")
    target = make_target(shop, monkeypatch)
    edited = request("CAT-1", ("meta_title", "Adult cat food 1 | Brand", "Cat food 1"))
    try:
        results = await FakeTopology(target).sync(titled(0), edited, titled(2), titled(3))
    finally:
        await target.aclose()

    conflict = results[edited["request_id"]]
    assert conflict["status"] == "CONFLICT"
    assert [f["status"] for f in conflict["fields"]] == ["CONFLICT"]
    assert sim.value("CAT-1", "all", "meta_title") == "Edited by a person"
    assert "CAT-1" not in {op.sku for op in sim.bulk_operations}
    assert {op.sku for op in sim.bulk_operations} == {"CAT-0", "CAT-2", "CAT-3"}
    assert writes_of(shop, "CAT-1", "all", "meta_title") == 0


async def test_below_the_threshold_every_write_is_exactly_the_single_save(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same batch through a target that never bulks and one whose threshold is not
    reached: the same requests to the shop, the same results, no bulk operation."""
    seen: list[tuple[list[tuple[str, str]], list[tuple[str, list[Any]]]]] = []
    for above in (0, 10):
        with open_shop() as shop:
            target = make_target(shop, monkeypatch, magento_bulk_above=above)
            try:
                results = await FakeTopology(target).sync(*(titled(n) for n in range(3)))
            finally:
                await target.aclose()
            assert shop.simulator.bulk_operations == []
            assert len(single_puts(shop)) == 3
            outcome = sorted(
                (r["request_id"], [(f["attribute"], f["status"]) for f in r["fields"]])
                for r in results.values()
            )
            seen.append((sorted(shop.simulator.request_log), outcome))
    assert seen[0] == seen[1]
    assert {status for _, fields in seen[0][1] for _, status in fields} == {"SYNCED"}


def test_bulk_mode_lets_the_sink_hand_over_a_bulk_at_once(
    shop: MagentoSimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_target(shop, monkeypatch, magento_bulk_above=0).concurrency == 2
    assert make_target(shop, monkeypatch, magento_bulk_above=8).concurrency == 58


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CATALOGFLOW_MAGENTO_BULK_ABOVE": "-1"}, "magento_bulk_above must be at least 0"),
        ({"CATALOGFLOW_MAGENTO_BULK_SIZE": "5001"}, "magento_bulk_size must be 1 to 5000"),
        ({"CATALOGFLOW_MAGENTO_BULK_TIMEOUT": "0"}, "magento_bulk_timeout must be above 0"),
        ({"CATALOGFLOW_MAGENTO_BULK_POLL": "900"}, "magento_bulk_poll must be above 0 and at"),
    ],
)
def test_bad_bulk_settings_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ=environ)
