from typing import Any

from catalogflow.streams.actions import FieldResult
from catalogflow.streams.definitions import ActionScope
from catalogflow.streams.scope import keep_only_empty, out_of_scope

PRODUCT: dict[str, Any] = {
    "sku": "SKU-1",
    "categories": ["Pet Food/Cat/Dry Cat Food"],
    "values": [
        {"attribute": "title", "locale": "de_DE", "scope": None, "value": "Von Hand"},
        {"attribute": "title", "locale": None, "scope": None, "value": " "},
    ],
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
