"""Magento as a sync target: where approved values go in Magento, and the writer.

A value without a locale goes to the global scope (``all``), a locale's value to its
store view (``de_DE`` → ``de``, from the ``magento_store_codes`` setting); a locale
without a store view cannot be written. The field's attribute code is its name in
lowercase (``Flavor`` → ``flavor``). The writer (with its conflict guard) connects on
first use, so a worker with no Magento workflow never needs ``magento_url``.

Bulk mode (``magento_bulk_above`` > 0): the target takes ``magento_bulk_above +
magento_bulk_size`` writes at once from the sink, and a write whose save comes while more
than ``magento_bulk_above`` writes are pending saves through the
:class:`~catalogflow.connectors.magento.bulk.BulkSaver` (an async/bulk operation, awaited
to its end) instead of a PUT; the reads, the guard and the results are the writer's in
both cases, and PUTs still go at most ``magento_concurrency`` at a time (the client's limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalogflow.connectors.magento.bulk import BulkSaver
from catalogflow.connectors.magento.client import MagentoClient
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.writer import MagentoWriter
from catalogflow.connectors.targets.base import Placement, Refusal, TargetContext, error_result
from catalogflow.connectors.targets.registry import TargetRegistry
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.records import SyncRequest, SyncResult
from catalogflow.streams.sync import GLOBAL_SCOPE, attribute_code, store_codes

NAME = "magento"


def register(registry: TargetRegistry) -> None:
    registry.register(NAME, MagentoTarget)


def placement(field: str, locale: str | None, codes: Mapping[str, str]) -> Placement | Refusal:
    """Where Magento keeps the value of ``field`` at ``locale`` (``codes``: locale →
    store view code)."""
    if locale is None:
        return Placement(GLOBAL_SCOPE, attribute_code(field))
    if locale in codes:
        return Placement(codes[locale], attribute_code(field))
    return Refusal(f"{field}@{locale}: no Magento store view for {locale}")


class MagentoTarget:
    def __init__(self, context: TargetContext) -> None:
        self.settings = context.settings
        self.clock = context.clock
        self.codes = store_codes(context.settings.magento_store_codes)
        # Writes at once; each makes its requests one after the other, so the client's
        # own limit of magento_concurrency requests in flight is the same number. In bulk
        # mode more: their saves wait in bulks, not in the sink.
        settings = context.settings
        self.bulk_above = settings.magento_bulk_above
        self.concurrency = settings.magento_concurrency
        if self.bulk_above > 0:
            self.concurrency = max(self.concurrency, self.bulk_above + settings.magento_bulk_size)
        self.pending = 0  # writes under way
        self._writer: MagentoWriter | None = None
        self._bulk: BulkSaver | None = None

    def place(self, field: str, locale: str | None) -> Placement | Refusal:
        return placement(field, locale, self.codes)

    async def write(self, request: SyncRequest) -> SyncResult:
        if not self.settings.magento_url:
            return error_result(
                request,
                "CONNECTION",
                "setting magento_url is empty: catalogflow does not know which Magento to write",
                self.clock.now(),
            )
        if self._writer is None:
            try:
                config = MagentoConfig.from_settings(self.settings)
            except ConfigError as exc:  # e.g. the token's variable is not set
                return error_result(request, "AUTH", str(exc), self.clock.now())
            client = MagentoClient(config)
            await client.__aenter__()
            if self.bulk_above > 0:
                self._bulk = BulkSaver(
                    client,
                    size=self.settings.magento_bulk_size,
                    timeout=self.settings.magento_bulk_timeout,
                    poll=self.settings.magento_bulk_poll,
                    submissions=config.max_attempts,
                    clock=self.clock,
                )
            self._writer = MagentoWriter(client, config, clock=self.clock, save=self._save)
        self.pending += 1
        try:
            return await self._writer.write(request)
        finally:
            self.pending -= 1

    async def _save(self, sku: str, store: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """A bulk operation when more than ``magento_bulk_above`` writes are pending (or
        an earlier one of this product may still be applied), else a PUT."""
        bulk = self._bulk
        if bulk is not None and (self.pending > self.bulk_above or bulk.holds(sku, store)):
            return await bulk.save(sku, store, values)
        assert self._writer is not None  # set before any save
        return await self._writer.client.save_fields(sku, store, values)

    async def aclose(self) -> None:
        """Stop following bulks and close the Magento session (when the worker stops)."""
        if self._bulk is not None:
            await self._bulk.aclose()
            self._bulk = None
        if self._writer is not None:
            await self._writer.client.aclose()
            self._writer = None
