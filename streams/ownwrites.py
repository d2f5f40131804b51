"""Recognising catalogflow's own writes when Magento's products are read back.

The sync ledger holds the hash of every value the sink wrote, per SKU, store scope
and attribute. A pulled value that equals what the ledger says we wrote, and that the
catalog does not hold yet, is ours coming back: it travels in its own ProductChanged
with author kind CATALOGFLOW, which updates the catalog without starting workflows.
Everything else in the pulled record keeps its author and is judged as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalogflow.streams.definitions import FieldRef
from catalogflow.streams.reader import read_latest
from catalogflow.streams.rules import field_value
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import GLOBAL_SCOPE, attribute_code, store_codes, value_hash

Record = dict[str, Any]
CATALOGFLOW_AUTHOR = {"kind": "CATALOGFLOW", "id": "catalogflow-sync", "name": None}


class OwnWrites:
    def __init__(
        self,
        written: Mapping[tuple[str, str, str], str],
        products: Mapping[str, Record],
        codes: Mapping[str, str],
    ) -> None:
        self.written = written  # (sku, scope, attribute code) -> value hash
        self.products = products
        self.codes = codes

    @classmethod
    def load(cls, settings: Settings, target: str = "magento") -> OwnWrites:
        """Read the sync ledger's and the products table's changelogs."""
        ledger = read_latest(
            settings, f"{settings.app_id}-sync-ledger-changelog", "SyncLedgerEntry"
        )
        products = read_latest(settings, f"{settings.app_id}-products-changelog", "ProductSnapshot")
        written = {
            (e["sku"], e["store_scope"], e["attribute"]): e["value_hash"]
            for e in ledger.values()
            if e["target"] == target
        }
        return cls(written, products, store_codes(settings.magento_store_codes))

    def split(self, change: Record) -> list[Record]:
        """``change`` as one record, or as our values (author CATALOGFLOW) and the rest."""
        sku = change["sku"]
        snapshot = self.products.get(sku)
        ours, rest = [], []
        for value in change["values"]:
            if self._is_ours(sku, snapshot, value):
                ours.append(value)
            else:
                rest.append(value)
        if not ours:
            return [change]
        own = {
            **change,
            "event_id": f"{change['event_id']}:catalogflow",
            "author": CATALOGFLOW_AUTHOR,
            "values": ours,
            "categories": None,
            "supplier": None,
            "status": None,
            "family": None,
        }
        return [own, {**change, "values": rest}]

    def _is_ours(self, sku: str, snapshot: Record | None, value: Mapping[str, Any]) -> bool:
        locale = value["locale"]
        scope = GLOBAL_SCOPE if locale is None else self.codes.get(locale)
        if scope is None:
            return False
        written = self.written.get((sku, scope, attribute_code(value["attribute"])))
        if written is None or written != value_hash(value["value"]):
            return False
        ref = FieldRef(value["attribute"], locale, value["scope"])
        current = field_value(snapshot, ref) if snapshot is not None else None
        return bool(current != value["value"])
