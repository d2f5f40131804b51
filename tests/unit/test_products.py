from datetime import UTC, datetime
from typing import Any, cast

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.products import apply_change, validate_change
from catalogflow.streams.records import AttributeValue, ProductChanged, Value

T1 = datetime(2026, 3, 1, tzinfo=UTC)


def change(event: str, **fields: Any) -> ProductChanged:
    base: ProductChanged = {
        "event_id": event,
        "sku": "SKU-1",
        "change_type": "UPDATED",
        "author": {"kind": "PERSON", "id": "anna", "name": None},
        "source": "akeneo",
        "source_timestamp": T1,
        "values": [],
        "categories": None,
        "supplier": None,
        "status": None,
        "family": None,
    }
    return cast(ProductChanged, {**base, **fields})


def value(attribute: str, v: Value, locale: str | None = None) -> AttributeValue:
    return {"attribute": attribute, "locale": locale, "scope": None, "value": v}


def test_first_change_creates_the_snapshot() -> None:
    first = next(sample_changes(1))
    snapshot = apply_change(None, first)
    assert snapshot["sku"] == "PF-000000"
    assert snapshot["version"] == 1
    assert snapshot["categories"] == first["categories"]
    assert {v["attribute"] for v in snapshot["values"]} >= {"name", "description"}


def test_update_merges_per_attribute_locale_and_clears_nulls() -> None:
    s = apply_change(None, change("e1", values=[value("name", "A"), value("name", "B", "de_DE")]))
    s = apply_change(s, change("e2", values=[value("name", "C", "de_DE"), value("name", None)]))
    assert [(v["attribute"], v["locale"], v["value"]) for v in s["values"]] == [
        ("name", "de_DE", "C")
    ]
    assert s["values"][0]["author_kind"] == "PERSON"
    assert s["version"] == 2


def test_unset_fields_keep_their_values_and_delete_marks_the_product() -> None:
    s = apply_change(None, change("e1", categories=["A/B"], supplier="acme", status="enabled"))
    s = apply_change(s, change("e2", change_type="DELETED"))
    assert (s["categories"], s["supplier"], s["status"], s["deleted"]) == (
        ["A/B"],
        "acme",
        "enabled",
        True,
    )


def test_redelivered_event_changes_nothing() -> None:
    s = apply_change(None, change("e1", values=[value("name", "A")]))
    assert apply_change(s, change("e1", values=[value("name", "A")])) is s


def test_input_snapshot_is_not_modified() -> None:
    s = apply_change(None, change("e1", values=[value("name", "A")]))
    before = repr(s)
    apply_change(s, change("e2", values=[value("name", "B")]))
    assert repr(s) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sku": "  "}, "sku is empty"),
        ({"sku": " X"}, "leading or trailing spaces"),
        ({"sku": "X" * 65}, "at most 64"),
        ({"event_id": ""}, "empty event_id"),
        ({"values": [value(" ", "x")]}, r"values\[0\] has an empty attribute code"),
    ],
)
def test_nonsense_changes_are_invalid(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidMessage, match=message) as caught:
        validate_change(change("e1", **fields))
    assert caught.value.reason == "invalid-record"
