"""The sink's batch (``agents/sink.py``) without faust: requests of different products
are written at the same time, up to the target's own limit, one product's requests in
order; results go out in the batch's order and settle each task once; a replayed
request writes nothing, a bad message is dead-lettered and a target's bug is an ERROR
result, none of them stopping the batch."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from catalogflow.agents.sink import SinkBatch
from catalogflow.connectors.targets.base import Placement, Refusal, write_limit
from catalogflow.streams.app import Topology
from catalogflow.streams.clock import FakeClock
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import ConfigError, InvalidMessage
from catalogflow.streams.records import (
    SyncRequest,
    SyncResult,
    SyncTaskState,
    field_results,
    sync_result,
)
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import request_id, value_hash

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEMAS = SchemaStore.shipped()
#: Turns of the event loop each write takes: enough for every other write to start.
TURNS = 5


class RecordingTarget:
    """A plug-in target that records when each write starts and ends and how many run
    at once; ``fail_sku`` makes it raise, as a buggy target would."""

    def __init__(self, concurrency: int, fail_sku: str | None = None) -> None:
        self.concurrency = concurrency
        self.fail_sku = fail_sku
        self.log: list[tuple[str, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def place(self, field: str, locale: str | None) -> Placement | Refusal:
        return Placement(locale or "all", field)

    async def write(self, request: SyncRequest) -> SyncResult:
        self.log.append(("start", request["request_id"]))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(TURNS):
            await asyncio.sleep(0)
        self.in_flight -= 1
        self.log.append(("end", request["request_id"]))
        if request["sku"] == self.fail_sku:
            raise RuntimeError("the target has a bug")
        fields = field_results(request, "SYNCED")
        return sync_result(request, "SYNCED", at=NOW, fields=fields)

    async def aclose(self) -> None:
        """Nothing to close."""


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Event:
    message: Message


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[Message, str]] = []

    async def send(self, message: Message, error: InvalidMessage, agent: str) -> None:
        self.sent.append((message, agent))


class FakeTopology:
    """What the sink reads of a topology, without faust."""

    def __init__(self, targets: dict[str, RecordingTarget]) -> None:
        self.settings = Settings.load(environ={})
        self.tables: dict[str, dict[str, Any]] = {
            name: {}
            for name in ("sync-ledger", "sync-pending", "sync-failed", "sync-failed-requests")
        }
        self.targets = targets
        self.clock = FakeClock(wall_start=NOW)
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

    def topics(self, topic: str) -> list[Any]:
        return [record for name, record in self.sent if name == topic]


def request(sku: str, scope: str = "all", target: str = "slow") -> SyncRequest:
    task_id = f"{sku}@run-1"
    return {
        "request_id": request_id(task_id, target, scope),
        "task_id": task_id,
        "run_id": "run-1",
        "sku": sku,
        "target": target,
        "store_scope": scope,
        "fields": [
            {
                "attribute": "title",
                "value": f"{sku} {scope}",
                "read_value": None,
                "value_hash": value_hash(f"{sku} {scope}"),
            }
        ],
        "requested_at": NOW,
    }


def pending(*requests: SyncRequest) -> SyncTaskState:
    """The ``sync-pending`` row of the task that planned ``requests``."""
    first = requests[0]
    return {
        "task_id": first["task_id"],
        "run_id": first["run_id"],
        "workflow_id": "wf",
        "sku": first["sku"],
        "steps": ["a"],
        "step_index": 1,
        "attempt": 0,
        "request_ids": [r["request_id"] for r in requests],
        "outcomes": {},
    }


def events(*items: SyncRequest | bytes) -> list[Any]:
    return [
        Event(
            Message(
                "sync-requests",
                0,
                offset,
                None,
                item if isinstance(item, bytes) else SCHEMAS.encode("SyncRequest", item),
            )
        )
        for offset, item in enumerate(items)
    ]


async def run(fake: FakeTopology, batch: list[Any]) -> None:
    await SinkBatch(cast(Topology, fake)).run(batch)


async def test_products_are_written_at_once_up_to_the_limit_and_one_product_in_order() -> None:
    target = RecordingTarget(concurrency=3)
    fake = FakeTopology({"slow": target})
    a_all, a_de = request("A"), request("A", "de")
    others = [request(sku) for sku in ("B", "C", "D", "E")]
    fake.tables["sync-pending"][a_all["task_id"]] = pending(a_all, a_de)
    await run(fake, events(a_all, *others, a_de))

    assert target.most_in_flight == 3  # more than one at a time, never above the limit
    assert target.log.index(("end", a_all["request_id"])) < target.log.index(
        ("start", a_de["request_id"])
    )
    sent = [r["request_id"] for r in fake.topics("sync-results")]
    assert sent == [r["request_id"] for r in (a_all, *others, a_de)]  # the batch's order
    [event] = fake.topics("task-events")  # task A settled once, with both outcomes
    assert (event["task_id"], event["status"]) == (a_all["task_id"], "SYNCED")
    assert "slow/all SYNCED" in event["reason"] and "slow/de SYNCED" in event["reason"]
    assert fake.tables["sync-pending"] == {}
    assert len(fake.tables["sync-ledger"]) == 6


async def test_requests_of_one_task_to_two_targets_settle_without_losing_an_outcome() -> None:
    first, second = RecordingTarget(concurrency=2), RecordingTarget(concurrency=2)
    fake = FakeTopology({"slow": first, "other": second})
    to_first, to_second = request("A"), request("A", target="other")
    fake.tables["sync-pending"][to_first["task_id"]] = pending(to_first, to_second)
    await run(fake, events(to_first, to_second))
    [event] = fake.topics("task-events")
    assert event["status"] == "SYNCED"
    assert "slow/all SYNCED" in event["reason"] and "other/all SYNCED" in event["reason"]


async def test_a_request_replayed_in_the_same_batch_writes_nothing_again() -> None:
    target = RecordingTarget(concurrency=2)
    fake = FakeTopology({"slow": target})
    await run(fake, events(request("A"), request("A")))
    assert [what for what, _ in target.log] == ["start", "end"]
    assert [r["status"] for r in fake.topics("sync-results")] == ["SYNCED", "UNCHANGED"]


async def test_a_bad_message_is_dead_lettered_and_a_target_bug_is_an_error_result() -> None:
    target = RecordingTarget(concurrency=2, fail_sku="B")
    fake = FakeTopology({"slow": target})
    await run(fake, events(request("A"), b"not avro", request("B")))
    assert [(m.offset, agent) for m, agent in fake.dead_letters.sent] == [(1, "sink")]
    results = {r["sku"]: r for r in fake.topics("sync-results")}
    assert results["A"]["status"] == "SYNCED"
    assert (results["B"]["status"], results["B"]["error_category"]) == ("ERROR", "OTHER")
    assert "the target has a bug" in (results["B"]["message"] or "")
    assert len(fake.tables["sync-ledger"]) == 1  # only what was written


async def test_a_request_for_a_target_the_worker_lacks_is_an_error_result() -> None:
    fake = FakeTopology({"slow": RecordingTarget(concurrency=1)})
    await run(fake, events(request("A", target="gone")))
    [result] = fake.topics("sync-results")
    assert result["status"] == "ERROR"
    assert "unknown sync target 'gone'" in (result["message"] or "")


@pytest.mark.parametrize("limit", [0, -1, "2", True])
def test_a_target_with_a_bad_concurrency_is_refused(limit: object) -> None:
    target = RecordingTarget(concurrency=1)
    target.concurrency = cast(int, limit)
    with pytest.raises(ConfigError, match="sync target 'slow': concurrency must be at least 1"):
        write_limit("slow", target)
