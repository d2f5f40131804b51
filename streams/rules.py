"""Trigger evaluation over product snapshots: pure functions, no I/O.

A snapshot is a decoded ``ProductSnapshot`` record (see ``schemas/ProductSnapshot.avsc``).
Attribute values are looked up by (attribute, locale, scope) exactly as a condition
names them; a missing value counts as empty. Empty means ``None``, a blank string or an
empty list.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from catalogflow.streams.definitions import Condition, FieldRef, TriggerRules, parse_field_ref
from catalogflow.streams.records import ProductSnapshot, Value

__all__ = ["condition_matches", "field_value", "matches", "source_fields_hash"]


def matches(rules: TriggerRules, snapshot: ProductSnapshot) -> bool:
    """True when every group has at least one matching condition (no groups: always,
    except that a deleted product never matches)."""
    if snapshot["deleted"]:
        return False
    return all(any(condition_matches(c, snapshot) for c in group) for group in rules.groups)


def condition_matches(cond: Condition, snapshot: ProductSnapshot) -> bool:
    """Evaluate one condition. A deleted product matches no condition (not even a
    negated one), so ``not_*`` is the negation of its positive twin only for live ones."""
    if snapshot["deleted"]:
        return False
    if cond.field == "category":
        return _category_matches(cond, snapshot["categories"])
    return _value_matches(cond, field_value(snapshot, cond.ref))


def field_value(snapshot: ProductSnapshot, ref: FieldRef) -> Value:
    """Current value of ``ref`` on ``snapshot``: the category list for ``category``, the
    snapshot field for other built-ins, else the attribute value at exactly that
    locale and scope (``None`` if there is none)."""
    if ref.field == "category":
        return list(snapshot["categories"])
    if ref.field == "sku":
        return snapshot["sku"]
    if ref.field == "supplier":
        return snapshot["supplier"]
    if ref.field == "status":
        return snapshot["status"]
    if ref.field == "family":
        return snapshot["family"]
    for entry in snapshot["values"]:
        if (
            entry["attribute"] == ref.field
            and entry["locale"] == ref.locale
            and entry["scope"] == ref.scope
        ):
            return entry["value"]
    return None


def source_fields_hash(snapshot: ProductSnapshot, fields: Iterable[str]) -> str:
    """sha256 (hex) of the current values of the named field references (the same
    syntax as conditions, ``category`` included). Independent of the order and
    repetition of ``fields``; changes only when one of those values changes."""
    refs = sorted({str(parse_field_ref(f)) for f in fields})
    values = []
    for ref in refs:
        value = _canonical(field_value(snapshot, parse_field_ref(ref)))
        values.append([ref, sorted(value) if ref == "category" else value])
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- operators


def _value_matches(cond: Condition, actual: Any) -> bool:
    op = cond.operator
    if op == "is_empty":
        return is_empty(actual)
    if op == "is_not_empty":
        return not is_empty(actual)
    if op == "equals":
        return _equals(actual, cond.value)
    if op == "not_equals":
        return not _equals(actual, cond.value)
    if op == "contains":
        return _contains(actual, cond.value)
    if op == "not_contains":
        return not _contains(actual, cond.value)
    if op == "in_list":
        return _in_list(actual, cond.value)
    number, limit = _number(actual), _number(cond.value)
    if number is None or limit is None:
        return False
    return number > limit if op == "greater_than" else number < limit


def _category_matches(cond: Condition, paths: Sequence[str]) -> bool:
    op = cond.operator
    if op == "is_empty":
        return not paths
    if op == "is_not_empty":
        return bool(paths)
    if op in ("equals", "not_equals"):
        found = _under(paths, str(cond.value))
        return found if op == "equals" else not found
    if op in ("contains", "not_contains"):
        needle = str(cond.value).casefold()
        found = any(needle in p.casefold() for p in paths)
        return found if op == "contains" else not found
    if op == "in_list":
        return any(_under(paths, str(v)) for v in cond.value)
    return False  # greater_than / less_than do not apply to categories


def _under(paths: Sequence[str], category: str) -> bool:
    """``category`` is one of ``paths`` or an ancestor of one (whole path segments)."""
    category = category.strip("/")
    return any(p == category or p.startswith(category + "/") for p in paths)


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return not value
    return False


def _equals(actual: Any, expected: Any) -> bool:
    """Case-sensitive for text; numeric when either side is a number and both read as
    numbers ("4.0" equals 4); a multiselect list equals a value when it holds exactly
    that one option."""
    if isinstance(actual, list | tuple):
        return len(actual) == 1 and _equals(actual[0], expected)
    if actual is None:
        return False
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if _is_number(actual) or _is_number(expected):
        a, b = _number(actual), _number(expected)
        return a is not None and b is not None and a == b
    return bool(str(actual) == str(expected))


def _contains(actual: Any, expected: Any) -> bool:
    """Case-insensitive substring for text, membership for a multiselect list."""
    if isinstance(actual, list | tuple):
        return any(_equals(item, expected) for item in actual)
    if isinstance(actual, str):
        return str(expected).casefold() in actual.casefold()
    return False


def _in_list(actual: Any, allowed: Iterable[Any]) -> bool:
    options = list(allowed)
    if isinstance(actual, list | tuple):
        return any(_equals(item, o) for item in actual for o in options)
    return any(_equals(actual, o) for o in options)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A finite float for numbers and numeric strings, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _canonical(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
