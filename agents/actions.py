"""Action agents: one per action type, consuming ``tasks.<type>``.

Model calls take seconds, so one product at a time would be far too slow, and
faust's ``concurrency=N`` can commit an offset past a message still in flight
(faust-streaming #606), losing it on a crash. Instead each agent takes a batch of
events, runs them concurrently (bounded), sends every result and waits for the
broker's confirmation, and only then asks for the next batch, which is when faust
acks the batch. Tasks of one SKU inside a batch run one after another, in order.
Nothing may escape the batch: an exception here would make faust ack (and so
lose) the whole batch, so every failure becomes a categorised task result.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter, OrderedDict
from dataclasses import replace
from typing import Any

from catalogflow.agents.routing import Router, definition_of_task, queue_share, review_queue
from catalogflow.streams.actions import (
    Action,
    ActionFailure,
    ActionInput,
    ActionResult,
    output_record,
)
from catalogflow.streams.app import Topology
from catalogflow.streams.engine import TaskStatus
from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.llmcache import TableCache
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.partitioner import partition_for
from catalogflow.streams.scope import keep_only_empty, out_of_scope
from catalogflow.streams.tables import copy_key
from catalogflow.streams.topics import task_topic

log = logging.getLogger(__name__)

#: Exit code of a worker that stopped so that its uncommitted batch is replayed.
EXIT_REPLAY = 75
Record = dict[str, Any]


def register(topology: Topology) -> None:
    for kind, action in topology.registry.actions.items():
        _register_one(topology, kind, action)


def _register_one(topology: Topology, kind: str, action: Action) -> None:
    settings = topology.settings
    name = f"action.{kind}"

    @topology.app.agent(topology.inputs[task_topic(kind)], name=name)
    async def run_actions(stream: Any) -> None:
        async for events in stream.take_events(settings.action_batch_size, within=0.2):
            runner = BatchRunner(topology, kind, action, name)
            try:
                await runner.run(events)
            except Exception:
                # Only the broker refusing our sends gets here. Returning or raising
                # would let faust ack the batch; dying without a commit replays it.
                log.critical("results of a batch could not be sent; exiting to replay it")
                os._exit(EXIT_REPLAY)


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

    async def run(self, events: list[Any]) -> None:
        by_sku: OrderedDict[str, list[Record]] = OrderedDict()
        for event in events:
            try:
                task = self.topology.schemas.decode(event.message.value or b"", expected="Task")
            except InvalidMessage as exc:
                await self.topology.dead_letters.send(event.message, exc, self.agent)
                continue
            by_sku.setdefault(task["sku"], []).append(task)
        await asyncio.gather(*(self._run_in_order(tasks) for tasks in by_sku.values()))
        await self.outbox.confirm()

    async def _run_in_order(self, tasks: list[Record]) -> None:
        for task in tasks:
            async with self.limit:
                try:
                    await self._run_task(task)
                except Exception as exc:  # our bug: record it on the task, keep the batch
                    log.exception("task %s failed inside catalogflow", task["task_id"])
                    failure = ActionFailure("INVALID_PROMPT", f"internal error: {exc!r}")
                    await self._fail(task, failure)

    async def _run_task(self, task: Record) -> None:
        partition = partition_for(task["sku"], self.topology.settings.partitions)
        control = self.controls.get(copy_key(task["run_id"], partition))
        if control is not None and control["command"] == "PAUSE":
            self.parked[task["task_id"]] = task
            await self._event(task, "PAUSED", reason="run paused")
            return
        if control is not None and control["command"] == "STOP":
            await self._event(task, "SKIPPED", reason="run stopped")
            return
        definition = definition_of_task(task)
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
        product = self.topology.products.get(task["sku"])
        if product is None or product["deleted"]:
            await self._event(task, "RUNNING")
            await self._fail(
                task, ActionFailure("INCOMPLETE_SOURCE_DATA", "product not in catalog")
            )
            return
        reason = out_of_scope(spec.scope, product)
        if reason is not None:
            skipped = output_record(spec.id, self.kind, ActionResult(fields=()), skipped=reason)
            await self.router.advance(task, definition, skipped, f"{spec.id} skipped: {reason}")
            return
        await self._event(task, "RUNNING")
        request = ActionInput(
            sku=task["sku"],
            product=product,
            action_id=spec.id,
            settings=spec.settings,
            previous_outputs=tuple(task["outputs"]),
            attempt=task["attempt"],
            reads=spec.reads,
            cache=TableCache(self.cache, task["sku"]),
            feedback=self._feedback(task),
        )
        missing = request.missing(spec.reads)
        if missing:
            failure = ActionFailure(
                "INCOMPLETE_SOURCE_DATA", f"{spec.id} needs {', '.join(missing)}, which are empty"
            )
            await self._fail(task, failure)
            return
        try:
            result = await self._run_with_retries(request)
        except ActionFailure as failure:
            await self._fail(task, failure)
            return
        note = None
        if spec.scope.only_empty:
            kept, dropped = keep_only_empty(result.fields, product)
            result = replace(result, fields=kept)
            if dropped:
                note = f"{spec.id} kept existing values of {', '.join(dropped)}"
        output = output_record(
            spec.id, self.kind, result, skipped=note if not result.fields else None
        )
        await self.router.after_action(task, definition, output, note)

    def _feedback(self, task: Record) -> str | None:
        """The reviewer's comment when this step runs again on a regenerate decision."""
        decision = self.feedback.get(f"{task['task_id']}#{task['step_index']}")
        return decision["feedback"] if decision is not None else None

    async def _run_with_retries(self, request: ActionInput) -> Any:
        attempts = self.topology.settings.action_retries
        for attempt in range(1, attempts + 1):
            try:
                return await self.action.run(request)
            except ActionFailure as failure:
                if not failure.retryable or attempt == attempts:
                    raise
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
            except Exception as exc:  # the action's bug: a configuration problem, not ours
                raise ActionFailure(
                    "INVALID_PROMPT", f"action {self.kind} raised {type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    async def _fail(self, task: Record, failure: ActionFailure) -> None:
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
        task: Record,
        status: TaskStatus,
        *,
        reason: str | None = None,
        failure_category: str | None = None,
        with_outputs: bool = False,
    ) -> None:
        await self.router.event(
            task,
            status,
            reason=reason,
            failure_category=failure_category,
            with_outputs=with_outputs,
        )
