"""Where a task goes once a step has produced its output.

Used by the action agents (after an action) and the moderation agent (after a
decision), so the slip moves the same way from both: to review when the step's
moderation policy (or a failed check) says so, else on to the next action's topic,
else to the sync targets, else Completed. Before that, a value a person already
decided from the same input takes that decision (``streams/remembered.py``) and is
not asked again. Every row this writes is keyed by the
task's SKU, so it lands on the partition of the event being handled.
"""

from __future__ import annotations

import math

from catalogflow.connectors.targets.base import unknown_target
from catalogflow.streams.app import Topology
from catalogflow.streams.definitions import ModerationPolicy, WorkflowDefinition, parse_field_ref
from catalogflow.streams.engine import Slip, advance, is_last_step, task_event
from catalogflow.streams.moderation import approve_all, new_item, review_reason
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.records import (
    ActionOutput,
    AttributeValue,
    FailureCategory,
    SyncTaskState,
    Task,
    TaskStatus,
)
from catalogflow.streams.remembered import read_hash, recall
from catalogflow.streams.rules import field_value
from catalogflow.streams.sync import (
    is_sync_approval,
    sync_approval_output,
    sync_requests,
)
from catalogflow.streams.topics import task_topic


def queue_share(limit: int, partitions: int) -> int:
    """A review queue limit per partition: each partition holds its share."""
    return max(1, math.ceil(limit / partitions))


def review_queue(topology: Topology, run_id: str, action_id: str, partition: int) -> int:
    """Results of ``action_id`` in ``run_id`` waiting for review on ``partition``."""
    items = topology.tables["moderation"]
    return sum(
        1
        for key, item in list(items.items())
        if item is not None
        and item["run_id"] == run_id
        and item["action_id"] == action_id
        and items.partition_of(key) == partition
    )


class Router:
    def __init__(self, topology: Topology, outbox: Outbox) -> None:
        self.topology = topology
        self.outbox = outbox
        self.moderation = topology.tables["moderation"]
        self.remembered = topology.tables["remembered-decisions"]
        self.pending_sync = topology.tables["sync-pending"]

    async def after_action(
        self, task: Task, definition: WorkflowDefinition, output: ActionOutput, note: str | None
    ) -> None:
        """The gate: apply remembered decisions, then review what is left, or approve
        and move on."""
        spec = definition.actions[task["step_index"]]
        product = self.topology.products.get(task["sku"])
        source: list[AttributeValue] = []
        for text in spec.reads:
            ref = parse_field_ref(text)
            source.append(
                {
                    "attribute": ref.field,
                    "locale": ref.locale,
                    "scope": ref.scope,
                    "value": field_value(product, ref) if product is not None else None,
                }
            )
        recalled = recall(
            output["fields"],
            self.remembered.get,
            sku=task["sku"],
            action_id=spec.id,
            input_hash=read_hash(source, task["outputs"]),
        )
        memo = recalled.note
        if memo is not None:
            if not recalled.fields:  # every value was rejected before
                await self.event(task, "REJECTED", reason=memo, spent=output)
                return
            output = {**output, "fields": recalled.fields}
        reason = review_reason(spec.moderation, recalled.undecided, task["task_id"])
        if reason is None:
            approved: ActionOutput = {**output, "fields": approve_all(output["fields"])}
            why = "; ".join(filter(None, [note, memo])) or None
            await self.advance(task, definition, approved, why, spent=approved)
            return
        item = new_item(
            task,
            output,
            source_values=source,
            reason=reason,
            policy=spec.moderation,
            now=self.topology.clock.now(),
            review_fields=recalled.undecided,
        )
        self.moderation[item["item_id"]] = item
        why = "; ".join(filter(None, [reason, memo]))
        await self.event(item["task"], "AWAITING_MODERATION", reason=why, spent=output)

    async def advance(
        self,
        task: Task,
        definition: WorkflowDefinition,
        output: ActionOutput,
        reason: str | None = None,
        spent: ActionOutput | None = None,
    ) -> None:
        """Move the slip on: the next action's topic, the sync targets, or Completed."""
        advanced = advance(task, output)
        if not is_last_step(advanced):
            next_type = definition.actions[advanced["step_index"]].type
            await self.event(advanced, "WAITING", reason=reason, spent=spent)
            await self.outbox.send(task_topic(next_type), advanced["sku"], advanced)
            return
        product = self.topology.products.get(advanced["sku"])
        if definition.sync_mode == "after_approval" and not is_sync_approval(output):
            values = sync_approval_output(advanced)
            if values["fields"] and definition.sync_targets:
                reason = "the workflow syncs only what a person approved"
                item = new_item(
                    advanced,
                    values,
                    source_values=[],
                    reason=reason,
                    policy=ModerationPolicy(mode="always"),
                    now=self.topology.clock.now(),
                )
                self.moderation[item["item_id"]] = item
                await self.event(item["task"], "AWAITING_MODERATION", reason=reason, spent=spent)
                return
        known = self.topology.targets
        unknown = [name for name in definition.sync_targets if name not in known]
        if unknown:  # the worker lacks a plug-in the workflow was applied with
            problem = unknown_target(unknown[0], list(known))
            await self.event(
                advanced, "ERROR", reason=problem, failure_category="SYNC_ISSUE", spent=spent
            )
            return
        chosen = {name: known[name] for name in definition.sync_targets}
        requests, notes = sync_requests(advanced, chosen, product, self.topology.clock.now())
        why = "; ".join(filter(None, [reason, *notes])) or None
        if not requests:
            await self.event(advanced, "COMPLETED", with_outputs=True, reason=why, spent=spent)
            return
        syncing: SyncTaskState = {
            "task_id": advanced["task_id"],
            "run_id": advanced["run_id"],
            "workflow_id": advanced["workflow_id"],
            "sku": advanced["sku"],
            "steps": list(advanced["steps"]),
            "step_index": advanced["step_index"],
            "attempt": advanced["attempt"],
            "request_ids": [r["request_id"] for r in requests],
            "outcomes": {},
        }
        self.pending_sync[advanced["task_id"]] = syncing
        targets = ", ".join(sorted({f"{r['target']}/{r['store_scope']}" for r in requests}))
        waiting = f"waiting for sync to {targets}" + (f"; {why}" if why else "")
        await self.event(advanced, "WAITING", with_outputs=True, reason=waiting, spent=spent)
        for request in requests:
            await self.outbox.send("sync-requests", advanced["sku"], request)

    async def event(
        self,
        task: Slip,
        status: TaskStatus,
        *,
        reason: str | None = None,
        failure_category: FailureCategory | None = None,
        with_outputs: bool = False,
        spent: ActionOutput | None = None,
    ) -> None:
        record = task_event(
            task,
            status,
            now=self.topology.clock.now(),
            reason=reason,
            failure_category=failure_category,
            with_outputs=with_outputs,
            spent=spent,
        )
        await self.outbox.send("task-events", task["sku"], record)
