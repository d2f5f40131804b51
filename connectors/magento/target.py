"""Magento as a sync target: where approved values go in Magento, and the writer.

A value without a locale goes to the global scope (``all``), a locale's value to its
store view (``de_DE`` → ``de``, from the ``magento_store_codes`` setting); a locale
without a store view cannot be written. The field's attribute code is its name in
lowercase (``Flavor`` → ``flavor``). The writer (with its conflict guard) connects on
first use, so a worker with no Magento workflow never needs ``magento_url``.
"""

from __future__ import annotations

from collections.abc import Mapping

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
        # own limit of magento_concurrency requests in flight is the same number.
        self.concurrency = context.settings.magento_concurrency
        self._writer: MagentoWriter | None = None

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
            self._writer = MagentoWriter(client, config, clock=self.clock)
        return await self._writer.write(request)

    async def aclose(self) -> None:
        """Close the Magento session (when the worker stops)."""
        if self._writer is not None:
            await self._writer.client.aclose()
            self._writer = None
