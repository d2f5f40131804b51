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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from catalogflow.connectors.targets.base import SyncTarget, error_result, unknown_target
from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.engine import sync_slip, task_event
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
from catalogflow.streams.sync import is_error_summary, ledger_key, summary

log = logging.getLogger(__name__)


def register(topology: Topology) -> None:
    ledger = topology.tables["sync-ledger"]
    pending = topology.tables["sync-pending"]
    targets = topology.targets
    for name, target in targets.items():
        close_on_shutdown(topology.app, f"the {name} sync target", target.aclose)

    @topology.app.agent(topology.inputs["sync-requests"], name="sink")
    async def sink(stream: Any) -> None:
        async for _event, request in decoded(topology, stream, SyncRequest, "sink"):
            fresh: list[SyncField] = []
            done: list[SyncField] = []
            for field in request["fields"]:
                key = ledger_key(
                    request["sku"], request["target"], request["store_scope"], field["attribute"]
                )
                entry = ledger.get(key)
                if entry is not None and entry["value_hash"] == field["value_hash"]:
                    done.append(field)
                else:
                    fresh.append(field)
            result = None
            if fresh:
                result = await _write(topology, targets, {**request, "fields": fresh})
            result = _merge(topology, request, result, done)
            for field in _written(result, fresh):
                key = ledger_key(
                    request["sku"], request["target"], request["store_scope"], field["attribute"]
                )
                ledger[key] = {
                    "sku": request["sku"],
                    "target": request["target"],
                    "store_scope": request["store_scope"],
                    "attribute": field["attribute"],
                    "value_hash": field["value_hash"],
                    "request_id": request["request_id"],
                    "at": result["at"],
                }
            outbox = Outbox(topology)
            await outbox.send("sync-results", request["sku"], result)
            await _settle_task(topology, pending, outbox, request, result)
            await outbox.confirm()


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
    topology: Topology, pending: Any, outbox: Outbox, request: SyncRequest, result: SyncResult
) -> None:
    state: SyncTaskState | None = pending.get(request["task_id"])
    if state is None or request["request_id"] not in state["request_ids"]:
        return  # not a request of the task's current sync (e.g. replayed by hand)
    line = summary(result)
    failed_requests = topology.tables["sync-failed-requests"]
    if is_error_summary(line):
        failed_requests[request["request_id"]] = request  # kept for retry-failed
    elif request["request_id"] in failed_requests:
        del failed_requests[request["request_id"]]
    outcomes = {**state["outcomes"], request["request_id"]: line}
    if set(outcomes) != set(state["request_ids"]):
        pending[request["task_id"]] = {**state, "outcomes": outcomes}
        return
    del pending[request["task_id"]]
    reason = "; ".join(outcomes[r] for r in state["request_ids"])
    now = topology.clock.now()
    if any(is_error_summary(line) for line in outcomes.values()):
        # The finished sync stays, with its failed requests, until retry-failed.
        topology.tables["sync-failed"][request["task_id"]] = {**state, "outcomes": outcomes}
        event = task_event(
            sync_slip(state), "ERROR", now=now, reason=reason, failure_category="SYNC_ISSUE"
        )
    else:
        event = task_event(sync_slip(state), "SYNCED", now=now, reason=reason)
    await outbox.send("task-events", request["sku"], event)
