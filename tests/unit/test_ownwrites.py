"""Recognising catalogflow's own writes in pulled Magento changes: no broker, no ledger topic."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from catalogflow.streams.ownwrites import CATALOGFLOW_AUTHOR, OwnWrites
from catalogflow.streams.records import (
    AttributeValue,
    Author,
    ProductChanged,
    ProductSnapshot,
    Value,
)
from catalogflow.streams.sync import value_hash

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
SKU = "CAT-DRY-2KG"
CODES = {"de_DE": "de", "fr_FR": "fr"}
PERSON: Author = {"kind": "SYSTEM", "id": "magento", "name": None}


def av(
    attribute: str, value: Value, locale: str | None = None, scope: str | None = None
) -> AttributeValue:
    return {"attribute": attribute, "locale": locale, "scope": scope, "value": value}


def change(*values: AttributeValue, sku: str = SKU) -> ProductChanged:
    return {
        "event_id": f"magento:{sku}:2025-03-01 10:00:00:abcd",
        "sku": sku,
        "change_type": "UPDATED",
        "author": PERSON,
        "source": "magento",
        "source_timestamp": NOW,
        "values": list(values),
        "categories": ["Pet Food/Cat/Dry Cat Food"],
        "supplier": "acme-pet",
        "status": "enabled",
        "family": "cat_food",
    }


def snapshot(*values: AttributeValue, sku: str = SKU) -> ProductSnapshot:
    return {
        "sku": sku,
        "deleted": False,
        "values": [{**v, "updated_at": NOW, "author_kind": "PERSON"} for v in values],
        "categories": ["Pet Food/Cat/Dry Cat Food"],
        "supplier": "acme-pet",
        "status": "enabled",
        "family": "cat_food",
        "version": 7,
        "last_event_id": "e-7",
        "updated_at": NOW,
    }


def own_writes(
    written: dict[tuple[str, str, str], Value],
    products: dict[str, ProductSnapshot] | None = None,
    codes: dict[str, str] | None = None,
) -> OwnWrites:
    """``written`` maps (sku, scope, attribute) to the value we wrote (hashed here)."""
    hashes = {key: value_hash(value) for key, value in written.items()}
    return OwnWrites(hashes, products or {}, CODES if codes is None else codes)


def test_our_value_travels_separately_as_catalogflow() -> None:
    writes = own_writes(
        {(SKU, "all", "flavor"): "Chicken"},
        {SKU: snapshot(av("flavor", "Chiken"), av("name", "Cat food"))},
    )
    pulled = change(av("flavor", "Chicken"), av("name", "Dry cat food"))
    before = copy.deepcopy(pulled)

    own, rest = writes.split(pulled)

    assert own == {
        **before,
        "event_id": before["event_id"] + ":catalogflow",
        "author": {"kind": "CATALOGFLOW", "id": "catalogflow-sync", "name": None},
        "values": [av("flavor", "Chicken")],
        "categories": None,
        "supplier": None,
        "status": None,
        "family": None,
    }
    assert own["author"] == CATALOGFLOW_AUTHOR
    assert rest == {**before, "values": [av("name", "Dry cat food")]}
    assert rest["author"] == PERSON
    assert rest["event_id"] == before["event_id"]
    assert pulled == before  # the input record is left as it was


def test_no_own_values_the_change_is_unchanged() -> None:
    writes = own_writes({(SKU, "all", "flavor"): "Chicken"}, {SKU: snapshot()})
    pulled = change(av("flavor", "Beef"), av("name", "Dry cat food"))
    assert writes.split(pulled) == [pulled]


def test_an_empty_ledger_leaves_every_change_alone() -> None:
    pulled = change(av("flavor", "Chicken"))
    assert own_writes({}).split(pulled) == [pulled]


def test_a_value_the_catalog_already_holds_is_not_ours() -> None:
    writes = own_writes(
        {(SKU, "all", "flavor"): "Chicken"}, {SKU: snapshot(av("flavor", "Chicken"))}
    )
    pulled = change(av("flavor", "Chicken"))
    assert writes.split(pulled) == [pulled]


def test_without_a_snapshot_a_written_value_is_ours() -> None:
    writes = own_writes({(SKU, "all", "flavor"): "Chicken"}, {})
    own, rest = writes.split(change(av("flavor", "Chicken")))
    assert own["values"] == [av("flavor", "Chicken")]
    assert rest["values"] == []


def test_only_own_values_still_leave_the_rest_record_with_the_product_fields() -> None:
    writes = own_writes({(SKU, "all", "flavor"): "Chicken"}, {SKU: snapshot()})
    own, rest = writes.split(change(av("flavor", "Chicken")))
    assert own["values"] == [av("flavor", "Chicken")]
    assert rest["values"] == []
    assert rest["categories"] == ["Pet Food/Cat/Dry Cat Food"]
    assert rest["status"] == "enabled"
    assert rest["author"] == PERSON


def test_a_locale_value_maps_through_the_store_codes() -> None:
    writes = own_writes(
        {(SKU, "de", "description"): "Trockenfutter mit Huhn"},
        {SKU: snapshot(av("description", "Altes Futter", "de_DE"))},
    )
    pulled = change(
        av("description", "Trockenfutter mit Huhn", "de_DE"),
        av("description", "Trockenfutter mit Huhn", "fr_FR"),  # written only for de
        av("description", "Dry food"),  # the global scope holds no such write
    )
    own, rest = writes.split(pulled)
    assert own["values"] == [av("description", "Trockenfutter mit Huhn", "de_DE")]
    assert rest["values"] == [
        av("description", "Trockenfutter mit Huhn", "fr_FR"),
        av("description", "Dry food"),
    ]


def test_a_locale_without_a_store_code_is_never_ours() -> None:
    writes = own_writes(
        {(SKU, "de", "description"): "Futter"}, {SKU: snapshot()}, codes={"fr_FR": "fr"}
    )
    pulled = change(av("description", "Futter", "de_DE"))
    assert writes.split(pulled) == [pulled]


def test_a_global_write_does_not_claim_a_locale_value() -> None:
    writes = own_writes({(SKU, "all", "flavor"): "Chicken"}, {SKU: snapshot()})
    pulled = change(av("flavor", "Chicken", "de_DE"))
    assert writes.split(pulled) == [pulled]


def test_the_ledger_is_per_sku() -> None:
    writes = own_writes({("OTHER-SKU", "all", "flavor"): "Chicken"}, {SKU: snapshot()})
    pulled = change(av("flavor", "Chicken"))
    assert writes.split(pulled) == [pulled]


def test_list_values_and_types_must_match_exactly() -> None:
    writes = own_writes(
        {(SKU, "all", "flavours"): ["chicken", "rice"], (SKU, "all", "pack_size_g"): 2000},
        {SKU: snapshot()},
    )
    pulled = change(av("flavours", ["rice", "chicken"]), av("pack_size_g", "2000"))
    assert writes.split(pulled) == [pulled]


def test_the_ledger_uses_attribute_codes() -> None:
    # The workflow field "Meta Title" was written as the Magento code meta_title.
    writes = own_writes({(SKU, "all", "meta_title"): "Dry Cat Food"}, {SKU: snapshot()})
    own, rest = writes.split(change(av("meta_title", "Dry Cat Food"), av("name", "x")))
    assert own["values"] == [av("meta_title", "Dry Cat Food")]
    assert rest["values"] == [av("name", "x")]


def test_the_snapshot_is_looked_up_at_the_values_locale_and_scope() -> None:
    # The catalog holds "Chicken" only as a scoped value and "Huhn" as the de_DE one:
    # the global "Chicken" is still new, the de_DE "Huhn" already there.
    writes = own_writes(
        {(SKU, "all", "flavor"): "Chicken", (SKU, "de", "flavor"): "Huhn"},
        {SKU: snapshot(av("flavor", "Chicken", None, "ecommerce"), av("flavor", "Huhn", "de_DE"))},
    )
    pulled = change(av("flavor", "Chicken"), av("flavor", "Huhn", "de_DE"))
    own, rest = writes.split(pulled)
    assert own["values"] == [av("flavor", "Chicken")]
    assert rest["values"] == [av("flavor", "Huhn", "de_DE")]
