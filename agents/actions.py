"""Action agents: one per action type, consuming ``tasks.<type>``.

Model calls take seconds, so one product at a time would be far too slow, and
faust's ``concurrency=N`` can commit an offset past a message still in flight
(faust-streaming #606), losing it on a crash. Instead each agent takes a batch of
events, runs them concurrently (bounded), sends every result and waits for the
broker's confirmation, and only then asks for the next batch, which is when faust
acks the batch. Tasks of one SKU inside a batch run one after another, in order.
Nothing may escape the batch: an exception here would make faust ack (and so
lose) the whole batch, so every failure becomes a categorised task result.

The step itself (scope, reads, the action call, ``only_empty``, the output record) is
:func:`catalogflow.streams.steps.run_step`, the same one ``workflow dry-run`` calls;
this module adds what needs the broker: pause and stop, the review queue limit, the
result cache table, and the events and sends of the result.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from catalogflow.agents.routing import Router, queue_share, review_queue
from catalogflow.streams.actions import Action, ActionFailure
from catalogflow.streams.app import Topology
from catalogflow.streams.batches import decode_batch, run_batches
from catalogflow.streams.llmcache import TableCache
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.tasks import ACTION_SECONDS
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.partitioner import partition_for
from catalogflow.streams.pinned import pinned_definition
from catalogflow.streams.records import FailureCategory, Task, TaskStatus
from catalogflow.streams.steps import Failed, Skipped, run_step
from catalogflow.streams.tables import copy_key
from catalogflow.streams.topics import task_topic
from faust.types import EventT

log = logging.getLogger(__name__)


def register(topology: Topology) -> None:
    for kind, action in topology.registry.actions.items():
        _register_one(topology, kind, action)


def _register_one(topology: Topology, kind: str, action: Action) -> None:
    settings = topology.settings
    name = f"action.{kind}"

    @topology.app.agent(topology.inputs[task_topic(kind)], name=name)
    async def run_actions(stream: Any) -> None:
        async def run(events: list[EventT[Any]]) -> None:
            await BatchRunner(topology, kind, action, name).run(events)

        await run_batches(
            stream, settings.action_batch_size, settings.batch_wait, run, f"{kind} tasks"
        )


class RunningNotice:
    """A step's RUNNING event, sent only once the step has run for ``after`` seconds.

    A fast step's outcome follows its start within milliseconds, and an event for
    each would double the bookkeeping of every step; a slow one (a model call waiting
    for its rate limit, a long generation) shows Running while it runs. ``after`` 0
    sends it at the start, before the action is called.
    """

    def __init__(self, send: Callable[[], Awaitable[None]], after: float) -> None:
        self._send = send
        self._after = after
        self._timer: asyncio.Task[None] | None = None
        self._sending = False

    async def start(self) -> None:
        if self._after <= 0:
            await self._send()
        else:
            self._timer = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(self._after)
        self._sending = True
        await self._send()

    async def settle(self) -> None:
        """Call when the step has ended: a RUNNING being sent goes out before the
        outcome; one not yet due is never sent."""
        if self._timer is None:
            return
        if self._sending:
            await self._timer
        else:
            self._timer.cancel()


class BatchRunner:
    def __init__(self, topology: Topology, kind: str, action: Action, agent: str) -> None:
        self.topology = topology
        self.kind = kind
        self.action = action
        self.agent = agent
        self.outbox = Outbox(topology)
        self.router = Router(topology, self.outbox)
        self.limit = asyncio.Semaphore(topology.settings.action_concurrency)
        self.controls = topology.tables["run-controls"]
        self.parked = topology.tables["parked"]
        self.failed = topology.tables["failed"]
        self.cache = topology.tables["llm-cache"]
        self.feedback = topology.tables["review-feedback"]
        self.entering: Counter[tuple[str, str, int]] = Counter()
        self.running_after = topology.settings.running_after

    async def run(self, events: list[EventT[Any]]) -> None:
        by_sku: OrderedDict[str, list[Task]] = OrderedDict()
        for _event, task in await decode_batch(self.topology, events, Task, self.agent):
            by_sku.setdefault(task["sku"], []).append(task)
        await asyncio.gather(*(self._run_in_order(tasks) for tasks in by_sku.values()))
        await self.outbox.confirm()

    async def _run_in_order(self, tasks: list[Task]) -> None:
        for task in tasks:
            async with self.limit:
                try:
                    await self._run_task(task)
                except Exception as exc:  # our bug: record it on the task, keep the batch
                    log.exception("task %s failed inside catalogflow", task["task_id"])
                    failure = ActionFailure("INVALID_PROMPT", f"internal error: {exc!r}")
                    await self._fail(task, failure)

    async def _run_task(self, task: Task) -> None:
        partition = partition_for(task["sku"], self.topology.settings.partitions)
        control = self.controls.get(copy_key(task["run_id"], partition))
        if control is not None and control["command"] == "PAUSE":
            self.parked[task["task_id"]] = task
            await self._event(task, "PAUSED", reason="run paused")
            return
        if control is not None and control["command"] == "STOP":
            await self._event(task, "SKIPPED", reason="run stopped")
            return
        definition = pinned_definition(task["definition"])
        spec = definition.actions[task["step_index"]]
        limit = spec.moderation.queue_limit
        if limit is not None:
            queue = (task["run_id"], spec.id, partition)
            waiting = review_queue(self.topology, *queue) + self.entering[queue]
            if waiting >= queue_share(limit, self.topology.settings.partitions):
                self.parked[task["task_id"]] = task
                full = f"review queue of {spec.id} is full ({limit} waiting across partitions)"
                await self._event(task, "PAUSED", reason=full)
                return
            self.entering[queue] += 1  # this batch's tasks count before their items exist
        running = RunningNotice(lambda: self._event(task, "RUNNING"), self.running_after)
        started = self.topology.clock.monotonic()
        try:
            step = await run_step(
                self.action,
                spec,
                self.topology.products.get(task["sku"]),
                previous_outputs=task["outputs"],
                attempt=task["attempt"],
                cache=TableCache(self.cache, task["sku"]),
                feedback=self._feedback(task),
                on_start=running.start,
            )
        finally:
            await running.settle()
        if not isinstance(step, Skipped):  # a step out of scope ran nothing
            seconds = self.topology.clock.monotonic() - started
            metrics().observe(ACTION_SECONDS, seconds, workflow=task["workflow_id"], action=spec.id)
        if isinstance(step, Skipped):
            note = f"{spec.id} skipped: {step.reason}"
            await self.router.advance(task, definition, step.output, note, spent=step.output)
        elif isinstance(step, Failed):
            await self._fail(task, step.failure)
        else:
            await self.router.after_action(task, definition, step.output, step.note)

    def _feedback(self, task: Task) -> str | None:
        """The reviewer's comment when this step runs again on a regenerate decision."""
        decision = self.feedback.get(f"{task['task_id']}#{task['step_index']}")
        return decision["feedback"] if decision is not None else None

    async def _fail(self, task: Task, failure: ActionFailure) -> None:
        """Record the failure; the slip is kept so ``retry-failed`` can resume it here."""
        self.failed[task["task_id"]] = task
        await self._event(
            task,
            "ERROR",
            reason=failure.message,
            failure_category=failure.category,
            with_outputs=True,
        )

    async def _event(
        self,
        task: Task,
        status: TaskStatus,
        *,
        reason: str | None = None,
        failure_category: FailureCategory | None = None,
        with_outputs: bool = False,
    ) -> None:
        await self.router.event(
            task,
            status,
            reason=reason,
            failure_category=failure_category,
            with_outputs=with_outputs,
        )
