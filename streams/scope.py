"""Whether an action applies to a product, and which of its outputs it may write.

Pure rules over the ActionScope of a workflow step: an out-of-scope product skips
the action with the reason recorded; ``only_empty`` keeps every value a product
already has and drops the outputs that would replace it.
"""

from __future__ import annotations

from collections.abc import Iterable

from catalogflow.streams.actions import FieldResult
from catalogflow.streams.definitions import ActionScope, FieldRef
from catalogflow.streams.records import ProductSnapshot
from catalogflow.streams.rules import field_value, is_empty


def out_of_scope(scope: ActionScope, product: ProductSnapshot) -> str | None:
    """The reason ``product`` is outside ``scope``, or ``None`` if it is inside."""
    if scope.skus and product["sku"] not in scope.skus:
        return f"SKU not in the action's {len(scope.skus)} listed SKUs"
    if scope.categories:
        paths = product["categories"]
        wanted = [c.strip("/") for c in scope.categories]
        if not any(p == c or p.startswith(c + "/") for p in paths for c in wanted):
            return f"not in categories {', '.join(wanted)}"
    return None


def keep_only_empty(
    fields: Iterable[FieldResult], product: ProductSnapshot
) -> tuple[tuple[FieldResult, ...], list[str]]:
    """Split outputs into those for empty fields (kept) and the names of the dropped."""
    kept: list[FieldResult] = []
    dropped: list[str] = []
    for result in fields:
        current = field_value(product, FieldRef(result.field, result.locale, None))
        if is_empty(current):
            kept.append(result)
        else:
            dropped.append(str(FieldRef(result.field, result.locale, None)))
    return tuple(kept), dropped
