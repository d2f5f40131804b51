"""The domain metrics are recorded where things happen, with their declared labels:
the model client against the LLM simulator, the Magento client against the shop
simulator, the cache, the dead-letter path, the sink's batch and the progress agents'
folds (the last two without faust, on a fake topology), all read from the recording
twin."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from catalogflow.agents.progress import RunGauges, fold_run_progress, fold_task_events
from catalogflow.agents.sink import SinkBatch
from catalogflow.connectors.llm.provider import LLMClient, ModelEndpoint
from catalogflow.connectors.magento.client import MagentoClient
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.targets.base import Placement, Refusal
from catalogflow.streams.actions import ActionFailure
from catalogflow.streams.app import Topology
from catalogflow.streams.clock import FakeClock
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.deadletter import DeadLetters
from catalogflow.streams.engine import new_task, task_event
from catalogflow.streams.llmcache import TableCache
from catalogflow.streams.metrics.current import configure_metrics
from catalogflow.streams.metrics.deadletters import DEAD_LETTERS
from catalogflow.streams.metrics.model import (
    CACHE_REQUESTS,
    MODEL_COST,
    MODEL_REQUEST_SECONDS,
    MODEL_REQUESTS,
    MODEL_TOKENS,
    RATE_LIMIT,
    RATE_LIMITER_WAIT,
)
from catalogflow.streams.metrics.recording import RecordingMetrics
from catalogflow.streams.metrics.runs import (
    RUN_BUDGET_USED,
    RUN_LAST_PROGRESS,
    RUN_TASKS_DONE,
    RUNS_ACTIVE,
)
from catalogflow.streams.metrics.sync import MAGENTO_REQUEST_SECONDS, SYNC_RESULTS
from catalogflow.streams.metrics.tasks import TASK_TRANSITIONS
from catalogflow.streams.moderation import Queue, review_queues
from catalogflow.streams.records import (
    ActionOutput,
    ModerationItem,
    RunProgress,
    SyncRequest,
    SyncResult,
    SyncStatus,
    TaskEvent,
    TaskStatus,
    field_results,
    run_progress,
    sync_result,
)
from catalogflow.streams.settings import Secret, Settings
from catalogflow.streams.sync import request_id, value_hash
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimConfig, MagentoSimulatorThread

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEMAS = SchemaStore.shipped()
KEY_ENV = {"CATALOGFLOW_TEST_KEY": "sk-catalogflow-TEST-KEY-0123456789abcdef"}
MODEL = "gpt-4o-mini"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"flavor": {"type": "string", "enum": ["Chicken", "Salmon"]}},
    "required": ["flavor"],
    "additionalProperties": False,
}


@pytest.fixture
def recorded() -> Iterator[RecordingMetrics]:
    twin = RecordingMetrics()
    configure_metrics(twin)
    try:
        yield twin
    finally:
        configure_metrics(None)


# -- the model client ------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig()) as simulator:
        yield simulator


def model_client(sim: SimulatorThread, **changes: Any) -> LLMClient:
    settings: dict[str, Any] = {
        "name": "test",
        "model": MODEL,
        "base_url": f"{sim.url}/v1",
        "api_key_env": "CATALOGFLOW_TEST_KEY",
        "timeout_s": 5.0,
        "price_input_per_million": 0.15,
        "price_output_per_million": 0.60,
    }
    settings.update(changes)
    return LLMClient(ModelEndpoint(**settings), clock=FakeClock(), environ=KEY_ENV)


async def ask(client: LLMClient) -> Any:
    try:
        return await client.complete(
            system="Extract the flavor.", user="Salmon cat food", schema_name="a", schema=SCHEMA
        )
    finally:
        await client.aclose()


async def test_a_model_call_records_its_request_latency_tokens_and_cost(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    completion = await ask(model_client(sim, rpm=600, tpm=100_000))
    assert recorded.value(MODEL_REQUESTS, model=MODEL, outcome="ok") == 1
    assert len(recorded.observed(MODEL_REQUEST_SECONDS, model=MODEL)) == 1
    assert recorded.value(MODEL_TOKENS, model=MODEL, kind="prompt") == completion.input_tokens
    tokens = recorded.value(MODEL_TOKENS, model=MODEL, kind="completion")
    assert tokens == completion.output_tokens > 0
    assert recorded.value(MODEL_COST, model=MODEL) == pytest.approx(completion.cost)
    assert recorded.value(RATE_LIMITER_WAIT, model=MODEL) is not None  # waited 0 s, or more
    assert recorded.value(RATE_LIMIT, model=MODEL, unit="requests") == 600
    assert recorded.value(RATE_LIMIT, model=MODEL, unit="tokens") == 100_000


async def test_429s_and_invalid_samples_count_as_their_own_outcomes(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    sim.configure(faults=[("rate_limit", None), ("rate_limit", None), ("malformed", None)])
    completion = await ask(model_client(sim))
    assert completion.attempts == 4
    assert recorded.series(MODEL_REQUESTS) == {
        (MODEL, "rate_limited"): 2,
        (MODEL, "invalid_output"): 1,
        (MODEL, "ok"): 1,
    }
    assert len(recorded.observed(MODEL_REQUEST_SECONDS, model=MODEL)) == 4
    # The 429 pause is waited out at the limiter (on the fake clock: 1 s each).
    assert (recorded.value(RATE_LIMITER_WAIT, model=MODEL) or 0) >= 2.0
    # Every answered request was billed, the unusable sample too.
    assert recorded.value(MODEL_TOKENS, model=MODEL, kind="prompt") == completion.input_tokens


async def test_server_errors_that_outlast_the_attempts_count_every_request(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    sim.configure(faults=[("status", 503)] * 4)
    with pytest.raises(ActionFailure):
        await ask(model_client(sim))
    assert recorded.series(MODEL_REQUESTS) == {(MODEL, "server_error"): 4}
    assert recorded.total(MODEL_TOKENS) == 0  # refused requests cost nothing


async def test_the_limit_gauge_follows_a_lower_limit_the_headers_announce(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    sim.configure(rpm=300)  # the provider's limit, below the configured one
    await ask(model_client(sim, rpm=1000))
    assert recorded.value(RATE_LIMIT, model=MODEL, unit="requests") == 300
    assert recorded.value(RATE_LIMIT, model=MODEL, unit="tokens") is None  # none known


# -- the result cache ------------------------------------------------------------------


def test_cache_lookups_count_as_hits_and_misses(recorded: RecordingMetrics) -> None:
    table: dict[str, Any] = {}
    cache = TableCache(table, "PF-1")
    assert cache.get("k") is None
    table["PF-1@k"] = {
        "content": '{"flavor": "Salmon"}',
        "token_logprobs": None,
        "logprob_tokens": [],
        "logprob_values": [],
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.0,
        "model": MODEL,
    }
    assert cache.get("k") is not None
    assert cache.get("k") is not None
    assert recorded.series(CACHE_REQUESTS) == {("miss",): 1, ("hit",): 2}


# -- the Magento client ----------------------------------------------------------------


async def test_every_magento_request_is_timed_by_method(recorded: RecordingMetrics) -> None:
    with MagentoSimulatorThread(MagentoSimConfig()) as shop:
        shop.simulator.add_product("CAT-1", {"price": 19.99}, name="Cat Food")
        config = MagentoConfig(
            base_url=shop.url,
            token=Secret(shop.simulator.issue_integration_token("catalogflow")),
            max_attempts=1,
        )
        async with MagentoClient(config) as client:
            await client.get_product("CAT-1")
            await client.save_fields("CAT-1", "all", {"name": "Cat Food 2 kg"})
    assert len(recorded.observed(MAGENTO_REQUEST_SECONDS, method="GET")) >= 1
    assert len(recorded.observed(MAGENTO_REQUEST_SECONDS, method="PUT")) == 1
    assert all(s >= 0 for s in recorded.observed(MAGENTO_REQUEST_SECONDS, method="GET"))


# -- a fake topology: what the sink and progress folds read of one, without faust -------


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


class DeadLetterTopic:
    """What :class:`DeadLetters` sends to: keeps the records, confirms at once."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    async def send(self, key: bytes | None, value: Any) -> asyncio.Future[None]:
        self.records.append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class FakeTopology:
    def __init__(self, targets: dict[str, Any] | None = None) -> None:
        self.settings = Settings.load(environ={})
        self.tables: dict[str, dict[str, Any]] = {
            name: {}
            for name in (
                "task-states",
                "runs",
                "sync-ledger",
                "sync-pending",
                "sync-failed",
                "sync-failed-requests",
            )
        }
        self.targets = targets or {}
        self.clock = FakeClock(wall_start=NOW)
        self.schemas = SCHEMAS
        self.dead_letter_topic = DeadLetterTopic()
        self.dead_letters = DeadLetters(cast(Any, self.dead_letter_topic))
        self.sent: list[tuple[str, Any]] = []

    async def send(
        self, topic: str, key: str | None, record: Any, partition: int | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, record))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def take(self, topic: str) -> list[Any]:
        """The records sent to ``topic`` since the last take."""
        taken = [record for name, record in self.sent if name == topic]
        self.sent = [(name, record) for name, record in self.sent if name != topic]
        return taken


def events(topic: str, schema: str, records: list[Any], first: int = 0) -> list[Any]:
    return [
        Event(
            Message(
                topic,
                0,
                first + n,
                None,
                record if isinstance(record, bytes) else SCHEMAS.encode(schema, record),
            )
        )
        for n, record in enumerate(records)
    ]


# -- the dead-letter path --------------------------------------------------------------


async def test_a_dead_letter_counts_once_it_is_written_by_agent_and_reason(
    recorded: RecordingMetrics,
) -> None:
    fake = FakeTopology()
    batch = events("task-events", "TaskEvent", [b"\x00 not an Avro record", b"\xc3\x01\x00"])
    await fold_task_events(cast(Topology, fake), batch)
    assert len(fake.dead_letter_topic.records) == 2
    assert recorded.series(DEAD_LETTERS) == {
        ("task-events", "bad-magic"): 1,
        ("task-events", "short-payload"): 1,
    }


# -- the sink --------------------------------------------------------------------------


class Target:
    """A sync target that writes everything, except that PF-2's write is a conflict."""

    def place(self, field: str, locale: str | None) -> Placement | Refusal:
        return Placement(locale or "all", field)

    async def write(self, request: SyncRequest) -> SyncResult:
        status: SyncStatus = "CONFLICT" if request["sku"] == "PF-2" else "SYNCED"
        fields = field_results(request, status)
        return sync_result(request, status, at=NOW, fields=fields)

    async def aclose(self) -> None:
        """Nothing to close."""


def sync_request(sku: str) -> SyncRequest:
    task_id = f"{sku}@run-1"
    return {
        "request_id": request_id(task_id, "shop", "all"),
        "task_id": task_id,
        "run_id": "run-1",
        "sku": sku,
        "target": "shop",
        "store_scope": "all",
        "fields": [
            {"attribute": "title", "value": sku, "read_value": None, "value_hash": value_hash(sku)}
        ],
        "requested_at": NOW,
    }


async def test_sync_results_count_by_target_and_outcome_and_a_replay_is_unchanged(
    recorded: RecordingMetrics,
) -> None:
    fake = FakeTopology({"shop": Target()})
    batch = [sync_request("PF-1"), sync_request("PF-2")]
    await SinkBatch(cast(Topology, fake)).run(events("sync-requests", "SyncRequest", batch))
    assert recorded.series(SYNC_RESULTS) == {("shop", "synced"): 1, ("shop", "conflict"): 1}
    replay = events("sync-requests", "SyncRequest", batch[:1])
    await SinkBatch(cast(Topology, fake)).run(replay)  # the ledger holds it: no write
    assert recorded.value(SYNC_RESULTS, target="shop", outcome="synced") == 1
    assert recorded.value(SYNC_RESULTS, target="shop", outcome="unchanged") == 1


# -- task transitions and the run gauges -----------------------------------------------


def the_task() -> Any:
    return new_task(
        run_id="run-1",
        workflow_id="dry-cat-food",
        workflow_version=1,
        sku="PF-1",
        steps=["extract"],
        definition_json="{}",
        input_hash="h",
        now=NOW,
        origin={"topic": "t", "partition": 0, "offset": 0},
    )


SPENT: ActionOutput = {
    "action_id": "extract",
    "action_type": "attribute_extraction",
    "fields": [],
    "model": MODEL,
    "prompt_version": "v1",
    "input_tokens": 100,
    "output_tokens": 20,
    "cost": 0.25,
    "skipped": None,
}


def status_event(status: TaskStatus, minutes: int, spent: ActionOutput | None = None) -> TaskEvent:
    return task_event(the_task(), status, now=NOW + timedelta(minutes=minutes), spent=spent)


async def test_each_task_transition_counts_once_however_often_its_event_comes(
    recorded: RecordingMetrics,
) -> None:
    fake = FakeTopology()
    waiting, running = status_event("WAITING", 0), status_event("RUNNING", 1)
    await fold_task_events(
        cast(Topology, fake), events("task-events", "TaskEvent", [waiting, running, waiting])
    )
    # A redelivery (the same events again, at later offsets) changes no state.
    await fold_task_events(
        cast(Topology, fake), events("task-events", "TaskEvent", [waiting, running], first=3)
    )
    assert recorded.series(TASK_TRANSITIONS) == {
        ("dry-cat-food", "extract", "WAITING"): 1,
        ("dry-cat-food", "extract", "RUNNING"): 1,
    }


async def test_an_active_runs_gauges_carry_its_run_id_until_it_completes(
    recorded: RecordingMetrics,
) -> None:
    fake = FakeTopology()
    topology = cast(Topology, fake)
    gauges = RunGauges()
    run = {"workflow": "dry-cat-food", "run_id": "run-1"}
    started = run_progress(
        run_id="run-1",
        workflow_id="dry-cat-food",
        kind="STARTED",
        at=NOW,
        partitions=1,
        mode="one_time",
        budget=1.0,
        workflow_version=1,
    )
    scanned = run_progress(
        run_id="run-1", workflow_id="dry-cat-food", kind="SCANNED", at=NOW, tasks_created=1
    )
    offsets = {"run-progress": 0, "task-events": 0}

    def numbered(topic: str, schema: str, records: list[Any]) -> list[Any]:
        batch = events(topic, schema, records, first=offsets[topic])
        offsets[topic] += len(records)
        return batch

    async def fold(progress: list[RunProgress]) -> None:
        await fold_run_progress(topology, numbered("run-progress", "RunProgress", progress), gauges)

    async def step(*changes: TaskEvent) -> None:
        await fold_task_events(topology, numbered("task-events", "TaskEvent", list(changes)))
        await fold(fake.take("run-progress"))

    await fold([started, scanned])
    await step(status_event("WAITING", 0), status_event("RUNNING", 1))
    assert recorded.value(RUN_TASKS_DONE, **run) == 0
    last = (NOW + timedelta(minutes=1)).timestamp()
    assert recorded.value(RUN_LAST_PROGRESS, **run) == last
    assert recorded.value(RUN_BUDGET_USED, **run) == 0
    gauges.refresh(fake.tables["runs"].values(), NOW.timestamp())
    assert recorded.value(RUNS_ACTIVE, workflow="dry-cat-food") == 1

    await step(status_event("COMPLETED", 2, spent=SPENT))
    assert fake.tables["runs"]["run-1"]["status"] == "COMPLETED"
    for gauge in (RUN_TASKS_DONE, RUN_LAST_PROGRESS, RUN_BUDGET_USED):
        assert recorded.series(gauge) == {}, gauge.name  # removed with the run's end
    gauges.refresh(fake.tables["runs"].values(), NOW.timestamp())
    assert recorded.value(RUNS_ACTIVE, workflow="dry-cat-food") == 0
    assert recorded.series(TASK_TRANSITIONS)[("dry-cat-food", "extract", "COMPLETED")] == 1


async def test_a_run_whose_partition_moved_away_loses_its_series_here(
    recorded: RecordingMetrics,
) -> None:
    gauges = RunGauges()
    fake = FakeTopology()
    progress = run_progress(
        run_id="run-9", workflow_id="wf", kind="STARTED", at=NOW, partitions=1, mode="one_time"
    )
    await fold_run_progress(
        cast(Topology, fake), events("run-progress", "RunProgress", [progress]), gauges
    )
    assert recorded.value(RUN_TASKS_DONE, workflow="wf", run_id="run-9") == 0
    assert recorded.value(RUN_BUDGET_USED, workflow="wf", run_id="run-9") is None  # no budget
    gauges.refresh([], NOW.timestamp())  # the worker holds the run no longer
    assert recorded.series(RUN_TASKS_DONE) == {} and recorded.series(RUN_LAST_PROGRESS) == {}


# -- the review backlog ----------------------------------------------------------------


def item(workflow: str, action: str, minutes_ago: int) -> ModerationItem:
    return cast(
        ModerationItem,
        {
            "workflow_id": workflow,
            "action_id": action,
            "created_at": NOW - timedelta(minutes=minutes_ago),
        },
    )


def test_the_review_backlog_is_counted_per_workflow_and_action_with_its_oldest_age() -> None:
    items = [item("wf", "enrich", 5), item("wf", "enrich", 1), item("wf", "translate", 2)]
    assert review_queues(items, NOW) == {
        ("wf", "enrich"): Queue(2, 300.0),
        ("wf", "translate"): Queue(1, 120.0),
    }
    assert review_queues([], NOW) == {}
