from datetime import UTC, datetime

from catalogflow.streams.actions import FieldResult
from catalogflow.streams.definitions import ActionScope
from catalogflow.streams.records import ProductSnapshot, SnapshotValue
from catalogflow.streams.scope import keep_only_empty, out_of_scope

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def title(locale: str | None, value: str) -> SnapshotValue:
    return {
        "attribute": "title",
        "locale": locale,
        "scope": None,
        "value": value,
        "updated_at": NOW,
        "author_kind": "PERSON",
    }


PRODUCT: ProductSnapshot = {
    "sku": "SKU-1",
    "deleted": False,
    "values": [title("de_DE", "Von Hand"), title(None, " ")],
    "categories": ["Pet Food/Cat/Dry Cat Food"],
    "supplier": None,
    "status": None,
    "family": None,
    "version": 1,
    "last_event_id": "e-1",
    "updated_at": NOW,
}


def test_no_limits_means_in_scope() -> None:
    assert out_of_scope(ActionScope(), PRODUCT) is None


def test_sku_and_category_limits_give_reasons() -> None:
    assert out_of_scope(ActionScope(skus=("SKU-1",)), PRODUCT) is None
    assert (
        out_of_scope(ActionScope(skus=("X",)), PRODUCT) == "SKU not in the action's 1 listed SKUs"
    )
    assert out_of_scope(ActionScope(categories=("Pet Food/Cat/",)), PRODUCT) is None
    assert out_of_scope(ActionScope(categories=("Pet Food/Ca",)), PRODUCT) == (
        "not in categories Pet Food/Ca"
    )


def test_only_empty_keeps_values_a_product_already_has() -> None:
    kept, dropped = keep_only_empty(
        [FieldResult("title", "AI", locale="de_DE"), FieldResult("title", "AI")], PRODUCT
    )
    assert [f.locale for f in kept] == [None]  # the blank global title may be filled
    assert dropped == ["title@de_DE"]
