"""Turns matching products into tasks: for a new run (a scan of one partition's
products) and, for continuous runs, on every product change.

Both run on the product's partition, next to its snapshot. A continuous workflow
keeps, per product, the hash of the source fields its actions read; a change that
leaves those fields alone does not create a task, one that touches them does.
"""

from __future__ import annotations

from datetime import datetime

from catalogflow.streams.app import Topology
from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.engine import new_task, run_id_of, task_event
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.partitioner import partition_for
from catalogflow.streams.pinned import pinned_definition
from catalogflow.streams.records import Origin, ProductSnapshot, SourceHash, WorkflowCommand
from catalogflow.streams.rules import matches, source_fields_hash
from catalogflow.streams.topics import task_topic


class Trigger:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.products = topology.products
        self.controls = topology.tables["run-controls"]
        self.hashes = topology.tables["source-hashes"]

    async def scan(
        self,
        outbox: Outbox,
        command: WorkflowCommand,
        partition: int,
        now: datetime,
        origin: Origin,
    ) -> int:
        """Create a task for every matching product of ``partition``; return how many.
        ``origin``: the coordinates of the partition command that asked for the scan."""
        definition = pinned_definition(command["arguments"]["definition"])
        partitions = self.topology.settings.partitions
        created = 0
        for sku, snapshot in list(self.products.items()):
            if snapshot is None or partition_for(sku, partitions) != partition:
                continue
            created += await self._offer(outbox, command, definition, snapshot, now, origin)
        return created

    async def on_product(
        self, outbox: Outbox, snapshot: ProductSnapshot, now: datetime, origin: Origin
    ) -> int:
        """Offer a changed product to every running continuous workflow; ``origin``: the
        coordinates of the product change."""
        created = 0
        for command, definition in self._continuous_runs(snapshot["sku"]):
            created += await self._offer(outbox, command, definition, snapshot, now, origin)
        return created

    def rebaseline(self, snapshot: ProductSnapshot) -> None:
        """Our own write came back: take the product as it now is as the state the
        continuous workflows last processed, so that write never counts as a change
        of the fields they read (and a later unrelated change does not either)."""
        sku = snapshot["sku"]
        for _command, definition in self._continuous_runs(sku):
            key = f"{sku}@{definition.id}"
            seen: SourceHash | None = self.hashes.get(key)
            if seen is None:
                continue
            reads = sorted({field for action in definition.actions for field in action.reads})
            rebased: SourceHash = {**seen, "fields_hash": source_fields_hash(snapshot, reads)}
            self.hashes[key] = rebased

    def _continuous_runs(self, sku: str) -> list[tuple[WorkflowCommand, WorkflowDefinition]]:
        """Running continuous workflows, from this product's partition's copies."""
        partition = partition_for(sku, self.topology.settings.partitions)
        mine = f"#{partition}"
        runs: list[tuple[WorkflowCommand, WorkflowDefinition]] = []
        for key, command in list(self.controls.items()):
            if not key.endswith(mine):
                continue  # another partition's copy of a run's controls
            if command is None or command["command"] not in ("RUN", "RESUME"):
                continue
            if "definition" not in command["arguments"]:
                continue
            definition = pinned_definition(command["arguments"]["definition"])
            if definition.mode == "continuous":
                runs.append((command, definition))
        return runs

    async def _offer(
        self,
        outbox: Outbox,
        command: WorkflowCommand,
        definition: WorkflowDefinition,
        snapshot: ProductSnapshot,
        now: datetime,
        origin: Origin,
    ) -> int:
        if not matches(definition.trigger, snapshot):
            return 0
        sku = snapshot["sku"]
        reads = sorted({field for action in definition.actions for field in action.reads})
        fields_hash = source_fields_hash(snapshot, reads)
        continuous = definition.mode == "continuous"
        if continuous:
            key = f"{sku}@{definition.id}"
            seen: SourceHash | None = self.hashes.get(key)
            if seen is not None and seen["fields_hash"] == fields_hash:
                return 0
        task = new_task(
            run_id=run_id_of(command),
            workflow_id=command["workflow_id"],
            workflow_version=int(command["arguments"].get("version", "1")),
            sku=sku,
            steps=[action.id for action in definition.actions],
            definition_json=command["arguments"]["definition"],
            input_hash=fields_hash,
            now=now,
            origin=origin,
            continuous=continuous,
        )
        if continuous:
            source_hash: SourceHash = {
                "sku": sku,
                "workflow_id": definition.id,
                "fields_hash": fields_hash,
                "task_id": task["task_id"],
                "at": now,
            }
            self.hashes[key] = source_hash
        await outbox.send("task-events", sku, task_event(task, "WAITING", now=now))
        await outbox.send(task_topic(definition.actions[0].type), sku, task)
        return 1
