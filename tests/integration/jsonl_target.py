"""A sync target plug-in for the tests, loaded by the worker through the setting
``sync_plugins=tests.integration.jsonl_target``: it appends each request's values to
the JSON Lines file ``jsonl-target.jsonl`` in the worker's data directory.

Everything goes into one scope, under the field's name with its locale
(``shopping_title@de_DE``). Appending is not idempotent by itself; the sink's ledger
is what keeps a replayed request from being written twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalogflow.connectors.targets.base import Placement, Refusal, TargetContext
from catalogflow.connectors.targets.registry import TargetRegistry
from catalogflow.streams.records import SyncRequest, SyncResult, field_results, sync_result
from catalogflow.streams.settings import Settings

NAME = "jsonl"
SCOPE = "lines"
MODULE = __name__


def register(registry: TargetRegistry) -> None:
    registry.register(NAME, JsonLinesTarget)


def path_for(settings: Settings) -> Path:
    return settings.data_dir / "jsonl-target.jsonl"


def written(settings: Settings) -> list[dict[str, Any]]:
    """Every line the target wrote, oldest first."""
    path = path_for(settings)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class JsonLinesTarget:
    def __init__(self, context: TargetContext) -> None:
        self.path = path_for(context.settings)
        self.clock = context.clock

    def place(self, field: str, locale: str | None) -> Placement | Refusal:
        return Placement(SCOPE, field + (f"@{locale}" if locale else ""))

    async def write(self, request: SyncRequest) -> SyncResult:
        line = {
            "request_id": request["request_id"],
            "sku": request["sku"],
            "values": {f["attribute"]: f["value"] for f in request["fields"]},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        fields = field_results(request, "SYNCED")
        return sync_result(request, "SYNCED", at=self.clock.now(), fields=fields)

    async def aclose(self) -> None:
        """Nothing stays open: each write opens and closes the file."""
