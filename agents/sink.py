"""The sink agent: writes approved output to its targets, exactly once per value.

Each field of a SyncRequest is first checked against the sync ledger, keyed by
(SKU, target, store scope, field) with the hash of the last value written: a
replayed request, or a re-run that produced the same value, writes nothing. The
rest goes to the target (Magento through its writer, with the conflict guard that
leaves a person's edit alone; the Merchant Center feed into the ``feed-content``
table that ``catalogflow feed write`` renders). The ledger is updated only after
the target confirmed, then the SyncResult is sent, and once every request of a
task has its answer the task ends Synced (or in Error with a sync issue). A failed
sync keeps its state (``sync-failed``) and its failed requests
(``sync-failed-requests``), so ``retry-failed`` sends exactly those again; the
ledger makes the fields they did write a no-op.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from catalogflow.agents.routing import Router
from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.shutdown import close_on_shutdown
from catalogflow.streams.sync import is_error_summary, ledger_key, summary

log = logging.getLogger(__name__)
Record = dict[str, Any]


class Target(Protocol):
    async def write(self, request: Record) -> Record:
        """Write the request's fields; return a SyncResult record."""
        ...


def register(topology: Topology) -> None:
    ledger = topology.tables["sync-ledger"]
    pending = topology.tables["sync-pending"]
    magento = MagentoTarget(topology)
    close_on_shutdown(topology.app, "the Magento client", magento.aclose)
    targets: dict[str, Target] = {
        "magento": magento,
        "merchant_feed": FeedTarget(topology),
    }

    @topology.app.agent(topology.inputs["sync-requests"], name="sink")
    async def sink(stream: Any) -> None:
        async for _event, request in decoded(topology, stream, "SyncRequest", "sink"):
            fresh, done = [], []
            for field in request["fields"]:
                key = ledger_key(
                    request["sku"], request["target"], request["store_scope"], field["attribute"]
                )
                entry = ledger.get(key)
                if entry is not None and entry["value_hash"] == field["value_hash"]:
                    done.append(field)
                else:
                    fresh.append(field)
            result = await _write(targets, {**request, "fields": fresh}) if fresh else None
            result = _merge(request, result, done)
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


async def _write(targets: dict[str, Target], request: Record) -> Record:
    target = targets.get(request["target"])
    if target is None:
        return _result(request, "ERROR", "OTHER", f"unknown sync target {request['target']!r}")
    try:
        return await target.write(request)
    except Exception as exc:  # a bug in a target must not lose the request
        log.exception("sync of %s to %s failed", request["request_id"], request["target"])
        return _result(request, "ERROR", "OTHER", f"{type(exc).__name__}: {exc}")


def _merge(request: Record, result: Record | None, done: list[Record]) -> Record:
    """The target's result plus the fields the ledger showed as written already."""
    unchanged = [
        {"attribute": f["attribute"], "status": "UNCHANGED", "message": "already written"}
        for f in done
    ]
    if result is None:
        return {**_result(request, "UNCHANGED", None, None), "fields": unchanged}
    return {**result, "fields": [*result["fields"], *unchanged]}


def _written(result: Record, fresh: list[Record]) -> list[Record]:
    """Fields the target now holds with our value: these go in the ledger."""
    by_attribute = {f["attribute"]: f for f in fresh}
    return [
        by_attribute[r["attribute"]]
        for r in result["fields"]
        if r["status"] in ("SYNCED", "UNCHANGED") and r["attribute"] in by_attribute
    ]


async def _settle_task(
    topology: Topology, pending: Any, outbox: Outbox, request: Record, result: Record
) -> None:
    state = pending.get(request["task_id"])
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
    lines = [outcomes[r] for r in state["request_ids"]]
    task = {**state, "outputs": []}
    router = Router(topology, outbox)
    errors = [line for line in lines if is_error_summary(line)]
    if errors:
        # The finished sync stays, with its failed requests, until retry-failed.
        topology.tables["sync-failed"][request["task_id"]] = {**state, "outcomes": outcomes}
        await router.event(task, "ERROR", reason="; ".join(lines), failure_category="SYNC_ISSUE")
    else:
        await router.event(task, "SYNCED", reason="; ".join(lines))


def _result(request: Record, status: str, category: str | None, message: str | None) -> Record:
    return {
        "request_id": request["request_id"],
        "task_id": request["task_id"],
        "sku": request["sku"],
        "target": request["target"],
        "store_scope": request["store_scope"],
        "status": status,
        "fields": [
            {"attribute": f["attribute"], "status": status, "message": None}
            for f in request["fields"]
        ]
        if status == "ERROR"
        else [],
        "error_category": category,
        "message": message,
        "at": datetime.now(UTC),
    }


class FeedTarget:
    """Keeps each product's approved feed values; the feed file is rendered from them."""

    def __init__(self, topology: Topology) -> None:
        self.content = topology.tables["feed-content"]

    async def write(self, request: Record) -> Record:
        before = self.content.get(request["sku"])
        kept = {f["attribute"]: f for f in (before["fields"] if before else [])}
        kept.update({f["attribute"]: f for f in request["fields"]})
        self.content[request["sku"]] = {**request, "fields": list(kept.values())}
        result = _result(request, "SYNCED", None, None)
        result["fields"] = [
            {"attribute": f["attribute"], "status": "SYNCED", "message": None}
            for f in request["fields"]
        ]
        return result


class MagentoTarget:
    """The Magento writer, connected on first use (a worker with no Magento workflow
    never needs ``magento_url``)."""

    def __init__(self, topology: Topology) -> None:
        self.settings = topology.settings
        self._writer: Any = None

    async def write(self, request: Record) -> Record:
        if not self.settings.magento_url:
            return _result(
                request,
                "ERROR",
                "CONNECTION",
                "setting magento_url is empty: catalogflow does not know which Magento to write",
            )
        if self._writer is None:
            from catalogflow.connectors.magento.client import MagentoClient
            from catalogflow.connectors.magento.config import MagentoConfig
            from catalogflow.connectors.magento.writer import MagentoWriter

            try:
                config = MagentoConfig.from_settings(self.settings)
            except ConfigError as exc:  # e.g. the token's variable is not set
                return _result(request, "ERROR", "AUTH", str(exc))
            client = MagentoClient(config)
            await client.__aenter__()
            self._writer = MagentoWriter(client, config)
        result: Record = await self._writer.write(request)
        return result

    async def aclose(self) -> None:
        """Close the Magento session (when the worker stops)."""
        if self._writer is not None:
            await self._writer.client.aclose()
            self._writer = None
