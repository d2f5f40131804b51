"""The moderation agent: folds review decisions into pending items.

``moderation-decisions`` is keyed by SKU and the ``moderation`` table by item id
(task id first), so a decision and its item share a partition. Only the task under
review waits; the partition goes on with other products. A resolved item is
deleted, which writes a tombstone to the compacted ``moderation`` topic, and the
task moves on through the same router the action agents use. The effective decision
on each value of a resolved item goes to the ``remembered-decisions`` table (keyed
``<sku>@…``, so on the same partition), which the router reads before it would ask a
person again.

Metrics: each decision applied counts by kind and role; a timer sets the review
backlog gauges (items waiting and the oldest one's age, per workflow and action) from
the items of the partitions this worker holds.
"""

from __future__ import annotations

import logging
from typing import Any

from catalogflow.agents.routing import Router, queue_share, review_queue
from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.moderation import (
    MODERATION_DECISIONS,
    MODERATION_OLDEST_AGE,
    MODERATION_PENDING,
)
from catalogflow.streams.moderation import Folded, apply_decision, review_queues, reviewed_output
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.pinned import pinned_definition
from catalogflow.streams.records import ModerationDecision, ModerationItem, Task
from catalogflow.streams.remembered import remembered
from catalogflow.streams.signing import checked
from catalogflow.streams.tables import copy_key
from catalogflow.streams.topics import task_topic
from catalogflow.streams.workerstate import held_rows

log = logging.getLogger(__name__)

#: Seconds between updates of the review backlog gauges (one pass over held items).
GAUGE_INTERVAL = 5.0


def register(topology: Topology) -> None:
    items = topology.tables["moderation"]
    feedback = topology.tables["review-feedback"]
    memory = topology.tables["remembered-decisions"]
    validate = checked(topology.settings, _validate)  # signed decisions only, with a key

    @topology.app.agent(topology.inputs["moderation-decisions"], name="moderation")
    async def decide(stream: Any) -> None:
        async for event, decision in decoded(
            topology, stream, ModerationDecision, "moderation", validate
        ):
            item: ModerationItem | None = items.get(decision["item_id"])
            if item is None:
                # Decided already (a replay, or two reviewers racing) or never existed.
                problem = InvalidMessage(
                    "invalid-record",
                    f"{decision['decision']} for {decision['item_id']}: no such item is "
                    "waiting for review (decided already, or never existed)",
                )
                await topology.dead_letters.send(event.message, problem, "moderation")
                continue
            folded = apply_decision(item, decision)
            if _applies(item, folded):
                kind, role = decision["decision"], decision["actor"]["role"]
                metrics().inc(MODERATION_DECISIONS, kind=kind, role=role)
            outbox = Outbox(topology)
            router = Router(topology, outbox)
            task = item["task"]
            base: Task = {**task, "outputs": task["outputs"][:-1]}
            if folded.outcome in ("pending", "ignored"):
                items[decision["item_id"]] = folded.item
                if folded.outcome == "ignored":
                    log.warning("decision %s ignored: %s", decision["decision_id"], folded.note)
            elif folded.outcome == "approved":
                assert folded.item is not None
                del items[decision["item_id"]]
                _remember(memory, item, decision, folded)
                output = reviewed_output(item, folded.item["fields"])
                definition = pinned_definition(task["definition"])
                await router.advance(base, definition, output, folded.note)
            elif folded.outcome == "rejected":
                del items[decision["item_id"]]
                _remember(memory, item, decision, folded)
                await router.event(base, "REJECTED", reason=folded.note)
            elif task["step_index"] >= len(task["steps"]):
                # The sync approval has no action to run again: keep it waiting.
                log.warning("regenerate of %s ignored: it is a sync approval", item["item_id"])
            else:  # regenerate: the same step again, with the reviewer's comment
                del items[decision["item_id"]]
                retry: Task = {**base, "attempt": base["attempt"] + 1}
                feedback[f"{task['task_id']}#{task['step_index']}"] = decision
                await router.event(retry, "WAITING", reason=folded.note)
                step_type = pinned_definition(task["definition"]).actions[task["step_index"]].type
                await outbox.send(task_topic(step_type), task["sku"], retry)
            if folded.outcome not in ("pending", "ignored"):
                await _make_room(topology, outbox, item, event.message.partition)
            await outbox.confirm()

    shown: set[tuple[str, str]] = set()

    async def update_review_gauges() -> None:
        now = topology.clock.now()
        queues = review_queues((item for _, item in held_rows(topology.app, items)), now)
        shown.update(queues)
        for workflow, action in shown:  # a queue emptied here shows 0, not its last value
            queue = queues.get((workflow, action))
            pending, age = (queue.pending, queue.oldest_age_s) if queue else (0, 0.0)
            metrics().set(MODERATION_PENDING, float(pending), workflow=workflow, action=action)
            metrics().set(MODERATION_OLDEST_AGE, age, workflow=workflow, action=action)

    topology.app.timer(interval=GAUGE_INTERVAL)(update_review_gauges)


def _applies(item: ModerationItem, folded: Folded) -> bool:
    """The decision changes the item (an ignored one does not, nor a regenerate of a
    sync approval, which has no action to run again)."""
    if folded.outcome == "ignored":
        return False
    task = item["task"]
    return not (folded.outcome == "regenerate" and task["step_index"] >= len(task["steps"]))


def _remember(
    memory: Any, item: ModerationItem, decision: ModerationDecision, folded: Folded
) -> None:
    """Keep the effective decision on each value of a resolved item, so a later run
    that produces the same value from the same input does not ask again."""
    final = folded.item["fields"] if folded.item is not None else ()
    for key, row in remembered(item, decision, folded.outcome, final).items():
        memory[key] = row


async def _make_room(
    topology: Topology, outbox: Outbox, item: ModerationItem, partition: int
) -> None:
    """A decided item frees a place in its action's review queue (back-pressure): let
    tasks that were held at that action go on, as many as there is room for."""
    task = item["task"]
    if task["step_index"] >= len(task["steps"]):
        return  # a sync approval: no action is held back for it
    spec = pinned_definition(task["definition"]).actions[task["step_index"]]
    limit = spec.moderation.queue_limit
    if limit is None:
        return
    control = topology.tables["run-controls"].get(copy_key(item["run_id"], partition))
    if control is not None and control["command"] in ("PAUSE", "STOP"):
        return  # resume (or stop) decides about held tasks
    room = queue_share(limit, topology.settings.partitions) - review_queue(
        topology, item["run_id"], spec.id, partition
    )
    parked = topology.tables["parked"]
    for task_id, held in list(parked.items()):
        if room <= 0:
            break
        held_task: Task | None = held
        if (
            held_task is None
            or held_task["run_id"] != item["run_id"]
            or held_task["step_index"] != task["step_index"]
            or parked.partition_of(task_id) != partition
        ):
            continue
        del parked[task_id]
        await outbox.send(task_topic(spec.type), held_task["sku"], held_task)
        room -= 1


def _validate(decision: ModerationDecision) -> None:
    kind = decision["decision"]
    if kind == "EDIT" and decision["field"] is None:
        raise InvalidMessage("invalid-record", "EDIT decision without a field")
    if kind == "REGENERATE" and not (decision["feedback"] or "").strip():
        raise InvalidMessage("invalid-record", "REGENERATE decision without feedback")
