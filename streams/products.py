"""The product snapshot: what catalogflow knows of a product right now.

Pure functions over decoded records (no Kafka here), so the catalog agent stays a
thin adapter and these rules are tested without a broker.
"""

from __future__ import annotations

from datetime import datetime

from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.records import (
    AttributeValue,
    ProductChanged,
    ProductSnapshot,
    SnapshotValue,
)

#: Magento's limit on SKU length; a longer one could never be written back.
MAX_SKU_LENGTH = 64

ValueKey = tuple[str, str | None, str | None]


def validate_change(change: ProductChanged) -> None:
    """Reject events that decode but make no sense as a product change."""
    sku = change["sku"]
    if not sku.strip():
        raise InvalidMessage("invalid-record", "sku is empty")
    if sku != sku.strip():
        raise InvalidMessage("invalid-record", f"sku {sku!r} has leading or trailing spaces")
    if len(sku) > MAX_SKU_LENGTH:
        raise InvalidMessage(
            "invalid-record", f"sku {sku[:20]}… is {len(sku)} characters; at most {MAX_SKU_LENGTH}"
        )
    if not change["event_id"]:
        raise InvalidMessage("invalid-record", f"event for sku {sku} has an empty event_id")
    for position, value in enumerate(change["values"]):
        if not value["attribute"].strip():
            raise InvalidMessage(
                "invalid-record", f"sku {sku}: values[{position}] has an empty attribute code"
            )


def apply_change(snapshot: ProductSnapshot | None, change: ProductChanged) -> ProductSnapshot:
    """Return the snapshot after ``change``; the input snapshot is not modified.

    A repeated delivery of the last applied event is recognised and changes nothing,
    so at-least-once redelivery does not bump the version.
    """
    if snapshot is not None and snapshot["last_event_id"] == change["event_id"]:
        return snapshot
    base = snapshot or _empty(change["sku"], change["source_timestamp"])
    values: dict[ValueKey, SnapshotValue] = {_value_key(v): v for v in base["values"]}
    for value in change["values"]:
        key = _value_key(value)
        if value["value"] is None:
            values.pop(key, None)
        else:
            values[key] = {
                "attribute": value["attribute"],
                "locale": value["locale"],
                "scope": value["scope"],
                "value": value["value"],
                "updated_at": change["source_timestamp"],
                "author_kind": change["author"]["kind"],
            }
    return {
        "sku": base["sku"],
        "deleted": change["change_type"] == "DELETED",
        "values": [values[k] for k in sorted(values, key=_sort_key)],
        "categories": (
            base["categories"] if change["categories"] is None else list(change["categories"])
        ),
        "supplier": _keep_or_set(base["supplier"], change["supplier"]),
        "status": _keep_or_set(base["status"], change["status"]),
        "family": _keep_or_set(base["family"], change["family"]),
        "version": base["version"] + 1,
        "last_event_id": change["event_id"],
        "updated_at": change["source_timestamp"],
    }


def _empty(sku: str, at: datetime) -> ProductSnapshot:
    return {
        "sku": sku,
        "deleted": False,
        "values": [],
        "categories": [],
        "supplier": None,
        "status": None,
        "family": None,
        "version": 0,
        "last_event_id": "",
        "updated_at": at,
    }


def _value_key(value: AttributeValue | SnapshotValue) -> ValueKey:
    return (value["attribute"], value["locale"], value["scope"])


def _sort_key(key: ValueKey) -> tuple[str, str, str]:
    return (key[0], key[1] or "", key[2] or "")


def _keep_or_set(old: str | None, new: str | None) -> str | None:
    return old if new is None else new
