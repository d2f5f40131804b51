"""The sink agent: writes approved output to its targets, exactly once per value.

Each field of a SyncRequest is first checked against the sync ledger, keyed by
(SKU, target, store scope, field) with the hash of the last value written: a
replayed request, or a re-run that produced the same value, writes nothing. The
rest goes to the request's target, found by name among the worker's sync targets
(``connectors/targets/``: Magento, the Merchant Center feed, the ``sync_plugins``
ones); the sink knows none of them. The ledger is updated only after the target
confirmed, then the SyncResult is sent, and once every request of a task has its
answer the task ends Synced (or in Error with a sync issue). A failed sync keeps its
state (``sync-failed``) and its failed requests (``sync-failed-requests``), so
``retry-failed`` sends exactly those again; the ledger makes the fields they did
write a no-op.

Like the action agents (``agents/actions.py``), the sink takes a batch of requests,
writes them concurrently, sends every result and waits for the broker's confirmation,
and only then asks for the next batch (faust acks a batch then; faust's own
``concurrency=N`` can lose messages, faust-streaming #606). Requests of one product and
target are written one after the other, in order (a target's store-view write follows
its global one); different products at the same time, up to each target's own limit
(:func:`~catalogflow.connectors.targets.base.write_limit`: ``magento_concurrency`` for
Magento). The ledger rows of a request are its own product's, so its group writes them;
the results are sent afterwards in the batch's order, and each task is settled once with
all its answers in the batch, so requests of one task (several scopes or targets) never
race on its ``sync-pending`` row, written once per batch. Nothing escapes the batch: a
target's bug is an ERROR result, and a batch whose results the broker refuses is
replayed (``exit_to_replay``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from catalogflow.connectors.targets.base import (
    SyncTarget,
    error_result,
    unknown_target,
    write_limit,
)
from catalogflow.streams.app import Topology
from catalogflow.streams.batches import decode_batch, run_batches
from catalogflow.streams.engine import sync_slip, task_event
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.sync import SYNC_RESULTS
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.records import (
    SyncField,
    SyncFieldResult,
    SyncRequest,
    SyncResult,
    SyncTaskState,
    sync_result,
)
from catalogflow.streams.shutdown import close_on_shutdown
from catalogflow.streams.sync import is_error_summary, ledger_key, summary, sync_outcome
from faust.types import EventT

log = logging.getLogger(__name__)

AGENT = "sink"


def register(topology: Topology) -> None:
    for name, target in topology.targets.items():
        close_on_shutdown(topology.app, f"the {name} sync target", target.aclose)
    settings = topology.settings

    @topology.app.agent(topology.inputs["sync-requests"], name=AGENT)
    async def sink(stream: Any) -> None:
        async def run(events: list[EventT[Any]]) -> None:
            await SinkBatch(topology).run(events)

        await run_batches(
            stream, settings.action_batch_size, settings.batch_wait, run, "sync requests"
        )


#: A request with its place in the batch.
Numbered = tuple[int, SyncRequest]


class SinkBatch:
    """One batch of SyncRequests: written concurrently, settled in order."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.ledger = topology.tables["sync-ledger"]
        self.outbox = Outbox(topology)
        self.limits = {
            name: asyncio.Semaphore(write_limit(name, target))
            for name, target in topology.targets.items()
        }

    async def run(self, events: list[EventT[Any]]) -> None:
        groups: dict[tuple[str, str], list[Numbered]] = {}
        decoded = await decode_batch(self.topology, events, SyncRequest, AGENT)
        for number, (_event, request) in enumerate(decoded):
            groups.setdefault((request["sku"], request["target"]), []).append((number, request))
        written = await asyncio.gather(*(self._write_in_order(g) for g in groups.values()))
        pending = self.topology.tables["sync-pending"]
        by_task: dict[str, list[tuple[SyncRequest, SyncResult]]] = {}
        for _, request, result in sorted(
            (done for group in written for done in group), key=lambda done: done[0]
        ):
            await self.outbox.send("sync-results", request["sku"], result)
            metrics().inc(SYNC_RESULTS, target=result["target"], outcome=sync_outcome(result))
            by_task.setdefault(request["task_id"], []).append((request, result))
        for answered in by_task.values():
            await _settle_task(self.topology, pending, self.outbox, answered)
        await self.outbox.confirm()

    async def _write_in_order(
        self, group: list[Numbered]
    ) -> list[tuple[int, SyncRequest, SyncResult]]:
        """One product's requests to one target, holding one of the target's slots, so
        its store-view writes follow its global one closely (the Magento writer reuses
        what that one read)."""
        limit = self.limits.get(group[0][1]["target"])
        async with limit if limit is not None else nullcontext():  # unknown: no write
            return [(number, request, await self._write_one(request)) for number, request in group]

    async def _write_one(self, request: SyncRequest) -> SyncResult:
        """The fields the ledger does not hold go to the target; what it wrote goes in
        the ledger."""
        fresh: list[SyncField] = []
        done: list[SyncField] = []
        for field in request["fields"]:
            key = ledger_key(
                request["sku"], request["target"], request["store_scope"], field["attribute"]
            )
            entry = self.ledger.get(key)
            if entry is not None and entry["value_hash"] == field["value_hash"]:
                done.append(field)
            else:
                fresh.append(field)
        result = None
        if fresh:
            result = await _write(
                self.topology, self.topology.targets, {**request, "fields": fresh}
            )
        result = _merge(self.topology, request, result, done)
        for field in _written(result, fresh):
            key = ledger_key(
                request["sku"], request["target"], request["store_scope"], field["attribute"]
            )
            self.ledger[key] = {
                "sku": request["sku"],
                "target": request["target"],
                "store_scope": request["store_scope"],
                "attribute": field["attribute"],
                "value_hash": field["value_hash"],
                "request_id": request["request_id"],
                "at": result["at"],
            }
        return result


async def _write(
    topology: Topology, targets: Mapping[str, SyncTarget], request: SyncRequest
) -> SyncResult:
    target = targets.get(request["target"])
    if target is None:
        why = unknown_target(request["target"], list(targets))
        return error_result(request, "OTHER", why, topology.clock.now())
    try:
        return await target.write(request)
    except Exception as exc:  # a bug in a target must not lose the request
        log.exception("sync of %s to %s failed", request["request_id"], request["target"])
        why = f"{type(exc).__name__}: {exc}"
        return error_result(request, "OTHER", why, topology.clock.now())


def _merge(
    topology: Topology, request: SyncRequest, result: SyncResult | None, done: list[SyncField]
) -> SyncResult:
    """The target's result plus the fields the ledger showed as written already."""
    unchanged: list[SyncFieldResult] = [
        {"attribute": f["attribute"], "status": "UNCHANGED", "message": "already written"}
        for f in done
    ]
    if result is None:
        return sync_result(request, "UNCHANGED", at=topology.clock.now(), fields=unchanged)
    return {**result, "fields": [*result["fields"], *unchanged]}


def _written(result: SyncResult, fresh: list[SyncField]) -> list[SyncField]:
    """Fields the target now holds with our value: these go in the ledger."""
    by_attribute = {f["attribute"]: f for f in fresh}
    return [
        by_attribute[r["attribute"]]
        for r in result["fields"]
        if r["status"] in ("SYNCED", "UNCHANGED") and r["attribute"] in by_attribute
    ]


async def _settle_task(
    topology: Topology,
    pending: Any,
    outbox: Outbox,
    answered: list[tuple[SyncRequest, SyncResult]],
) -> None:
    """Record the answers a batch holds for one task, in their order, and end the task
    once every request of its sync has one: one write of its ``sync-pending`` row per
    batch, not one per answer."""
    task_id, sku = answered[0][0]["task_id"], answered[0][0]["sku"]
    state: SyncTaskState | None = pending.get(task_id)
    if state is None:
        return  # not a sync under way (e.g. requests replayed by hand)
    failed_requests = topology.tables["sync-failed-requests"]
    outcomes = dict(state["outcomes"])
    for request, result in answered:
        if request["request_id"] not in state["request_ids"]:
            continue  # not a request of the task's current sync
        line = summary(result)
        if is_error_summary(line):
            failed_requests[request["request_id"]] = request  # kept for retry-failed
        elif request["request_id"] in failed_requests:
            del failed_requests[request["request_id"]]
        outcomes[request["request_id"]] = line
    if outcomes == state["outcomes"]:
        return
    if set(outcomes) != set(state["request_ids"]):
        pending[task_id] = {**state, "outcomes": outcomes}
        return
    del pending[task_id]
    reason = "; ".join(outcomes[r] for r in state["request_ids"])
    now = topology.clock.now()
    if any(is_error_summary(line) for line in outcomes.values()):
        # The finished sync stays, with its failed requests, until retry-failed.
        topology.tables["sync-failed"][task_id] = {**state, "outcomes": outcomes}
        event = task_event(
            sync_slip(state), "ERROR", now=now, reason=reason, failure_category="SYNC_ISSUE"
        )
    else:
        event = task_event(sync_slip(state), "SYNCED", now=now, reason=reason)
    await outbox.send("task-events", sku, event)
