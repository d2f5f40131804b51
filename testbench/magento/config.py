"""How the simulated shop behaves: the settings a test or ``simulator magento`` changes."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from catalogflow.testbench.magento.errors import MagentoSimulatorError

StoreSaveMode = Literal["clean", "legacy_copy"]


@dataclass
class MagentoSimConfig:
    """How the simulated shop behaves; change at runtime with ``MagentoSimulator.configure``."""

    #: 2.4.4+ ``oauth/consumer/enable_integration_as_bearer``.
    integration_bearer_enabled: bool = True
    admin_token_ttl_s: float = 4 * 3600
    #: ``legacy_copy``: a store-view save copies every store-scoped value into the view.
    store_save_mode: StoreSaveMode = "clean"
    developer_mode: bool = False
    latency_s: float = 0.0
    two_factor_auth: bool = False
    #: Input limits on: default pageSize 20, max 300; at most 20 custom_attributes.
    limit_mode: bool = False
    #: A ``currentPage`` past the end returns the last page again (the classic collection
    #: clamp, magento/magento2#26986); False returns an empty page.
    clamp_past_last_page: bool = True
    #: Reject select/multiselect values that are not option ids of the attribute.
    validate_options: bool = True
    #: Run the ``async.operations.all`` consumer every so many seconds; 0 (the default):
    #: no consumer runs, bulk operations stay open until ``tick_consumers()``.
    consumer_tick_s: float = 0.0

    def changed(self, **changes: Any) -> MagentoSimConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise MagentoSimulatorError(f"unknown simulator setting(s): {', '.join(unknown)}")
        config = replace(self, **changes)
        config.check()
        return config

    def check(self) -> None:
        if self.store_save_mode not in get_args(StoreSaveMode):
            raise MagentoSimulatorError(
                f"store_save_mode must be clean or legacy_copy, not {self.store_save_mode!r}"
            )
        for name in ("admin_token_ttl_s", "latency_s", "consumer_tick_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise MagentoSimulatorError(f"{name} must be a number >= 0, not {value!r}")
        for name in (
            "integration_bearer_enabled",
            "developer_mode",
            "two_factor_auth",
            "limit_mode",
            "clamp_past_last_page",
            "validate_options",
        ):
            if not isinstance(getattr(self, name), bool):
                raise MagentoSimulatorError(f"{name} must be true or false")
