"""The Merchant Center feed as a sync target.

The feed is a file rendered from every product's approved values (``catalogflow feed
write``), so writing a request only keeps its values: each product's row of the
``feed-content`` table holds the latest approved value of each field, merged over the
earlier ones. Every value goes into the one ``feed`` scope, under its field name with
the locale appended (``shopping_title@de_DE``), which ``feed write`` reads back.
"""

from __future__ import annotations

from catalogflow.connectors.targets.base import Placement, Refusal, TargetContext
from catalogflow.connectors.targets.registry import TargetRegistry
from catalogflow.streams.records import SyncRequest, SyncResult, field_results, sync_result

NAME = "merchant_feed"
FEED_SCOPE = "feed"


def register(registry: TargetRegistry) -> None:
    registry.register(NAME, MerchantFeedTarget)


class MerchantFeedTarget:
    def __init__(self, context: TargetContext) -> None:
        self.content = context.tables["feed-content"]
        self.clock = context.clock

    def place(self, field: str, locale: str | None) -> Placement | Refusal:
        return Placement(FEED_SCOPE, field + (f"@{locale}" if locale else ""))

    async def write(self, request: SyncRequest) -> SyncResult:
        before = self.content.get(request["sku"])
        kept = {f["attribute"]: f for f in (before["fields"] if before else [])}
        kept.update({f["attribute"]: f for f in request["fields"]})
        self.content[request["sku"]] = {**request, "fields": list(kept.values())}
        fields = field_results(request, "SYNCED")
        return sync_result(request, "SYNCED", at=self.clock.now(), fields=fields)

    async def aclose(self) -> None:
        """Nothing to close: the values live in a table of the worker."""
