"""Recognising catalogflow's own writes when Magento's products are read back.

The sync ledger holds the hash of every value the sink wrote, per SKU, target, store
scope and attribute. A pulled value is placed as the Magento target places the values
it writes (store scope, attribute code) and looked up in the Magento rows: one that
equals what the ledger says we wrote, and that the catalog does not hold yet, is ours
coming back. It travels in its own ProductChanged with author kind CATALOGFLOW, which
updates the catalog without starting workflows. Everything else in the pulled record
keeps its author and is judged as usual.
"""

from __future__ import annotations

from collections.abc import Mapping

from catalogflow.connectors.magento.target import NAME as MAGENTO
from catalogflow.connectors.magento.target import placement
from catalogflow.connectors.targets.base import Refusal
from catalogflow.streams.definitions import FieldRef
from catalogflow.streams.reader import read_latest
from catalogflow.streams.records import (
    AttributeValue,
    Author,
    ProductChanged,
    ProductSnapshot,
    SyncLedgerEntry,
)
from catalogflow.streams.rules import field_value
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import store_codes, value_hash
from catalogflow.streams.topics import changelog_topic

CATALOGFLOW_AUTHOR: Author = {"kind": "CATALOGFLOW", "id": "catalogflow-sync", "name": None}


class OwnWrites:
    def __init__(
        self,
        written: Mapping[tuple[str, str, str], str],
        products: Mapping[str, ProductSnapshot],
        codes: Mapping[str, str],
    ) -> None:
        self.written = written  # (sku, scope, attribute code) -> value hash
        self.products = products
        self.codes = codes

    @classmethod
    def load(cls, settings: Settings) -> OwnWrites:
        """Read the sync ledger's and the products table's changelogs."""
        ledger = read_latest(settings, changelog_topic(settings, "sync-ledger"), SyncLedgerEntry)
        products = read_latest(settings, changelog_topic(settings, "products"), ProductSnapshot)
        written = {
            (e["sku"], e["store_scope"], e["attribute"]): e["value_hash"]
            for e in ledger.values()
            if e["target"] == MAGENTO
        }
        return cls(written, products, store_codes(settings.magento_store_codes))

    def split(self, change: ProductChanged) -> list[ProductChanged]:
        """``change`` as one record, or as our values (author CATALOGFLOW) and the rest."""
        sku = change["sku"]
        snapshot = self.products.get(sku)
        ours: list[AttributeValue] = []
        rest: list[AttributeValue] = []
        for value in change["values"]:
            if self._is_ours(sku, snapshot, value):
                ours.append(value)
            else:
                rest.append(value)
        if not ours:
            return [change]
        own: ProductChanged = {
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

    def _is_ours(self, sku: str, snapshot: ProductSnapshot | None, value: AttributeValue) -> bool:
        locale = value["locale"]
        placed = placement(value["attribute"], locale, self.codes)
        if isinstance(placed, Refusal):
            return False
        written = self.written.get((sku, placed.scope, placed.attribute))
        if written is None or written != value_hash(value["value"]):
            return False
        ref = FieldRef(value["attribute"], locale, value["scope"])
        current = field_value(snapshot, ref) if snapshot is not None else None
        return current != value["value"]
