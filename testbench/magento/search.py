"""``GET /V1/products``: searchCriteria filters, sort orders and pages over the catalog."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from catalogflow.testbench.magento.catalog import Catalog, Product
from catalogflow.testbench.magento.errors import (
    MSG_INVALID_FIELD_VALUE,
    WebapiError,
    int_or_none,
)

MAX_PAGE_SIZE = 300  # webapi/validation/maximum_page_size, with input limits on
LIMITED_DEFAULT_PAGE_SIZE = 20  # webapi/validation/default_page_size

MSG_INVALID_ATTRIBUTE = "Invalid attribute name: %1"
MSG_PAGE_SIZE = "Maximum SearchCriteria pageSize is %max"


def search(catalog: Catalog, store_id: int, query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    with catalog.lock:
        criteria = parse_search_criteria(query)
        page_size = int_or_none(criteria.get("page_size"), "pageSize")
        current = int_or_none(criteria.get("current_page"), "currentPage") or 1
        if catalog.config.limit_mode:
            if page_size is None:
                page_size = LIMITED_DEFAULT_PAGE_SIZE
            if page_size > MAX_PAGE_SIZE:
                raise WebapiError(400, MSG_PAGE_SIZE, {"max": MAX_PAGE_SIZE})
        groups = []
        for group in _as_list(criteria.get("filter_groups")):
            filters = []
            for raw in _as_list(group.get("filters") if isinstance(group, dict) else None):
                if not isinstance(raw, dict) or not raw.get("field"):
                    continue
                condition = str(raw.get("condition_type") or "eq").lower()
                if condition not in _CONDITIONS:
                    raise WebapiError(
                        400,
                        MSG_INVALID_FIELD_VALUE,
                        {"fieldName": "condition_type", "value": condition},
                    )
                field_name = str(raw["field"])
                _check_field(catalog, field_name)
                filters.append((field_name, str(raw.get("value", "")), condition))
            if filters:
                groups.append(filters)
        items = [
            p
            for p in sorted(catalog.products.values(), key=lambda p: p.entity_id)
            if all(any(_matches(catalog, p, store_id, f) for f in group) for group in groups)
        ]
        sort_orders = [o for o in _as_list(criteria.get("sort_orders")) if isinstance(o, dict)]
        for order in reversed(sort_orders):
            field_name = str(order.get("field") or "entity_id")
            _check_field(catalog, field_name)
            descending = str(order.get("direction", "ASC")).upper() == "DESC"
            items.sort(
                key=lambda p: _sort_key(_field(catalog, p, store_id, field_name)),
                reverse=descending,
            )
        total = len(items)
        page_items = items
        if page_size:
            last = max(1, math.ceil(total / page_size))
            page = min(current, last) if catalog.config.clamp_past_last_page else current
            start = (max(page, 1) - 1) * page_size
            page_items = items[start : start + page_size]
        echo: dict[str, Any] = {
            "filter_groups": [
                {"filters": [{"field": f, "value": v, "condition_type": c} for f, v, c in g]}
                for g in groups
            ]
        }
        if sort_orders:
            echo["sort_orders"] = [
                {"field": o.get("field"), "direction": str(o.get("direction", "ASC")).upper()}
                for o in sort_orders
            ]
        if page_size is not None:
            echo["page_size"] = page_size
        echo["current_page"] = current
        return {
            "items": [catalog.product_json(p, store_id) for p in page_items],
            "search_criteria": echo,
            "total_count": total,
        }


def _check_field(catalog: Catalog, name: str) -> None:
    if name not in _ENTITY_FIELDS and name not in catalog.attributes:
        raise WebapiError(400, MSG_INVALID_ATTRIBUTE, [name])


def _field(catalog: Catalog, product: Product, store_id: int, name: str) -> Any:
    if name == "sku":
        return product.sku
    if name in ("entity_id", "id"):
        return product.entity_id
    if name in ("created_at", "updated_at", "type_id", "attribute_set_id"):
        return getattr(product, name)
    if name in ("category_id", "category_ids"):
        return [str(c) for c in product.category_ids]
    return catalog.resolve(product, store_id, name)


def _matches(catalog: Catalog, product: Product, store_id: int, flt: tuple[str, str, str]) -> bool:
    name, wanted, condition = flt
    value = _field(catalog, product, store_id, name)
    values = value if isinstance(value, list) else None
    if condition == "null":
        return value is None or value == []
    if condition == "notnull":
        return not (value is None or value == [])
    if value is None or value == []:
        return False
    if values is not None:  # category ids: any of them
        if condition in ("neq", "nin", "nlike", "nfinset"):
            positive = {"neq": "eq", "nin": "in", "nlike": "like", "nfinset": "finset"}
            return not any(_compare(v, wanted, positive[condition]) for v in values)
        return any(_compare(v, wanted, condition) for v in values)
    return _compare(value, wanted, condition)


# -- searchCriteria ------------------------------------------------------------------------

_ENTITY_FIELDS = frozenset(
    {
        "sku",
        "entity_id",
        "id",
        "created_at",
        "updated_at",
        "type_id",
        "attribute_set_id",
        "category_id",
        "category_ids",
    }
)
_CONDITIONS = frozenset(
    {
        "eq",
        "finset",
        "from",
        "gt",
        "gteq",
        "in",
        "like",
        "lt",
        "lteq",
        "moreq",
        "neq",
        "nfinset",
        "nin",
        "nlike",
        "notnull",
        "null",
        "to",
    }
)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def parse_search_criteria(query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``searchCriteria[filter_groups][0][filters][0][field]=x`` (or the camelCase
    spelling) as nested dicts and lists, keys in snake_case."""
    root: dict[str, Any] = {}
    for key, value in query:
        match = re.fullmatch(r"searchCriteria((?:\[[^\]]*\])+)", key)
        if not match:
            continue
        parts = [_snake(p) for p in re.findall(r"\[([^\]]*)\]", match.group(1))]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


def _as_list(node: Any) -> list[Any]:
    if isinstance(node, list):
        return node
    if isinstance(node, dict):

        def order(key: str) -> tuple[int, str]:
            return (int(key), "") if key.isdigit() else (1 << 30, key)

        return [node[k] for k in sorted(node, key=order)]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return (0, 0.0, "")
    number = _number(value)
    if number is not None:
        return (1, number, "")
    return (2, 0.0, str(value).casefold())


def _ordered(value: Any, wanted: str) -> int:
    """-1, 0 or 1 comparing a stored value with a filter value (numbers when both are)."""
    a, b = _number(value), _number(wanted)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    x, y = str(value).casefold(), wanted.casefold()
    return (x > y) - (x < y)


def _like(value: Any, pattern: str) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def _compare(value: Any, wanted: str, condition: str) -> bool:
    if condition == "eq":
        return _ordered(value, wanted) == 0
    if condition == "neq":
        return _ordered(value, wanted) != 0
    if condition == "gt":
        return _ordered(value, wanted) > 0
    if condition in ("gteq", "from", "moreq"):
        return _ordered(value, wanted) >= 0
    if condition == "lt":
        return _ordered(value, wanted) < 0
    if condition in ("lteq", "to"):
        return _ordered(value, wanted) <= 0
    if condition == "like":
        return _like(value, wanted)
    if condition == "nlike":
        return not _like(value, wanted)
    if condition in ("in", "nin"):
        found = any(_ordered(value, w.strip()) == 0 for w in wanted.split(","))
        return found if condition == "in" else not found
    if condition in ("finset", "nfinset"):
        found = wanted.strip() in [v.strip() for v in str(value).split(",")]
        return found if condition == "finset" else not found
    return False
