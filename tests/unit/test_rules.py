from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.streams.definitions import Condition, Operator, TriggerRules, parse_field_ref
from catalogflow.streams.records import ProductSnapshot, SnapshotValue, Value
from catalogflow.streams.rules import condition_matches, matches, source_fields_hash
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def value(
    attribute: str, v: Value, locale: str | None = None, scope: str | None = None
) -> SnapshotValue:
    return {
        "attribute": attribute,
        "locale": locale,
        "scope": scope,
        "value": v,
        "updated_at": NOW,
        "author_kind": "IMPORT",
    }


def snapshot(
    *values: SnapshotValue,
    deleted: bool = False,
    categories: tuple[str, ...] = ("Pet Food/Cat/Dry Cat Food",),
    supplier: str | None = "acme",
    version: int = 3,
    updated_at: datetime = NOW,
) -> ProductSnapshot:
    return {
        "sku": "PF-000001",
        "deleted": deleted,
        "values": list(values),
        "categories": list(categories),
        "supplier": supplier,
        "status": "enabled",
        "family": "cat_food",
        "version": version,
        "last_event_id": "e3",
        "updated_at": updated_at,
    }


PRODUCT = snapshot(
    value("name", "Crunchy Salmon Bites"),
    value("name", "Knusprige Lachshappen", "de_DE", "de"),
    value("description", "Dry food for adult cats."),
    value("description", "   ", "en_GB"),
    value("weight_kg", 1.5),
    value("pieces", 12),
    value("code", "4.0"),
    value("grain_free", True),
    value("flavors", ["salmon", "tuna"]),
    value("empty_list", []),
    value("nothing", None),
)


def cond(ref: str, op: Operator, v: Any = None) -> Condition:
    parsed = parse_field_ref(ref)
    return Condition(parsed.field, op, v, parsed.locale, parsed.scope)


CASES: list[tuple[Condition, bool]] = [
    # equals / not_equals: case-sensitive text, numeric compare, booleans, lists
    (cond("name", "equals", "Crunchy Salmon Bites"), True),
    (cond("name", "equals", "crunchy salmon bites"), False),
    (cond("name", "not_equals", "crunchy salmon bites"), True),
    (cond("weight_kg", "equals", 1.5), True),
    (cond("weight_kg", "equals", "1.50"), True),
    (cond("pieces", "equals", 12.0), True),
    (cond("code", "equals", 4), True),
    (cond("code", "equals", "4"), False),
    (cond("grain_free", "equals", True), True),
    (cond("grain_free", "equals", 1), False),
    (cond("flavors", "equals", "salmon"), False),
    (cond("missing", "equals", "x"), False),
    (cond("missing", "not_equals", "x"), True),
    # contains / not_contains: case-insensitive substring, list membership
    (cond("description", "contains", "ADULT"), True),
    (cond("description", "contains", "kitten"), False),
    (cond("description", "not_contains", "kitten"), True),
    (cond("flavors", "contains", "tuna"), True),
    (cond("flavors", "contains", "tun"), False),
    (cond("missing", "contains", "x"), False),
    (cond("missing", "not_contains", "x"), True),
    # is_empty / is_not_empty
    (cond("missing", "is_empty"), True),
    (cond("nothing", "is_empty"), True),
    (cond("empty_list", "is_empty"), True),
    (cond("description@en_GB", "is_empty"), True),
    (cond("description", "is_empty"), False),
    (cond("grain_free", "is_not_empty"), True),
    (cond("pieces", "is_not_empty"), True),
    # greater_than / less_than
    (cond("weight_kg", "greater_than", 1), True),
    (cond("weight_kg", "greater_than", 1.5), False),
    (cond("weight_kg", "less_than", 2), True),
    (cond("code", "greater_than", 3), True),
    (cond("name", "greater_than", 0), False),
    (cond("name", "less_than", 0), False),
    (cond("missing", "less_than", 10), False),
    (cond("grain_free", "greater_than", 0), False),
    # in_list
    (cond("pieces", "in_list", (6, 12)), True),
    (cond("name", "in_list", ("a", "Crunchy Salmon Bites")), True),
    (cond("flavors", "in_list", ("beef", "tuna")), True),
    (cond("flavors", "in_list", ("beef",)), False),
    (cond("missing", "in_list", ("x",)), False),
    # locale and scope are looked up exactly
    (cond("description@de_DE", "is_empty"), True),
    (cond("name@de_DE", "is_empty"), True),
    (cond("name@de_DE#de", "contains", "lachs"), True),
    (cond("name#de", "is_empty"), True),
    # categories: path or any descendant, whole segments
    (cond("category", "equals", "Pet Food/Cat/Dry Cat Food"), True),
    (cond("category", "equals", "Pet Food/Cat"), True),
    (cond("category", "equals", "Pet Food"), True),
    (cond("category", "equals", "Pet Food/Ca"), False),
    (cond("category", "equals", "Pet Food/Cat/Dry Cat Food/Senior"), False),
    (cond("category", "not_equals", "Pet Food/Dog"), True),
    (cond("category", "not_equals", "Pet Food/Cat"), False),
    (cond("category", "in_list", ("Pet Food/Dog", "Pet Food/Cat")), True),
    (cond("category", "in_list", ("Pet Food/Dog",)), False),
    (cond("category", "contains", "dry cat"), True),
    (cond("category", "not_contains", "Dog"), True),
    (cond("category", "is_empty"), False),
    (cond("category", "is_not_empty"), True),
    # built-ins
    (cond("supplier", "equals", "acme"), True),
    (cond("supplier", "in_list", ("zoo", "acme")), True),
    (cond("supplier", "contains", "CM"), True),
    (cond("status", "equals", "enabled"), True),
    (cond("status", "not_equals", "enabled"), False),
    (cond("family", "is_empty"), False),
    (cond("sku", "contains", "pf-"), True),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=lambda c: str(c))
def test_condition(condition: Condition, expected: bool) -> None:
    assert condition_matches(condition, PRODUCT) is expected


def test_no_categories_and_no_supplier_are_empty() -> None:
    bare = snapshot(categories=(), supplier=None)
    assert condition_matches(cond("category", "is_empty"), bare)
    assert not condition_matches(cond("category", "equals", "Pet Food"), bare)
    assert condition_matches(cond("supplier", "is_empty"), bare)
    assert condition_matches(cond("supplier", "not_equals", "acme"), bare)


def test_german_description_missing_when_only_global_exists() -> None:
    rule = TriggerRules(((cond("description@de_DE", "is_empty"),),))
    assert matches(rule, snapshot(value("description", "Dry food.")))
    german = snapshot(value("description", "Dry food."), value("description", "Futter", "de_DE"))
    assert not matches(rule, german)


def test_or_inside_group_and_between_groups() -> None:
    dog = cond("category", "equals", "Pet Food/Dog")
    cat = cond("category", "equals", "Pet Food/Cat")
    enabled = cond("status", "equals", "enabled")
    disabled = cond("status", "equals", "disabled")
    assert matches(TriggerRules(((dog, cat), (enabled,))), PRODUCT)
    assert not matches(TriggerRules(((dog,), (enabled,))), PRODUCT)
    assert not matches(TriggerRules(((dog, cat), (disabled,))), PRODUCT)
    assert matches(TriggerRules(((dog, cat), (disabled, enabled))), PRODUCT)


def test_empty_trigger_matches_everything_but_deleted() -> None:
    assert matches(TriggerRules(), PRODUCT)
    assert not matches(TriggerRules(), snapshot(deleted=True))


def test_deleted_never_matches() -> None:
    gone = snapshot(deleted=True)
    for condition, _ in CASES:
        assert not condition_matches(condition, gone)
        assert not matches(TriggerRules(((condition,),)), gone)


@given(
    actual=st.one_of(st.none(), st.text(), st.lists(st.text(), max_size=3)),
    expected=st.text(),
    attribute=st.sampled_from(["name", "code"]),
)
def test_not_equals_is_the_negation_of_equals(actual: Any, expected: str, attribute: str) -> None:
    product = snapshot(value(attribute, actual))
    for field in (attribute, "supplier", "category"):
        positive = condition_matches(cond(field, "equals", expected), product)
        negative = condition_matches(cond(field, "not_equals", expected), product)
        assert positive is not negative


@given(st.text(), st.text())
def test_text_equals_is_reflexive_and_exact(a: str, b: str) -> None:
    product = snapshot(value("name", a))
    assert condition_matches(cond("name", "equals", a), product)
    if a != b and not _both_numbers(a, b):
        assert not condition_matches(cond("name", "equals", b), product)


def _both_numbers(a: str, b: str) -> bool:
    try:
        float(a), float(b)
    except ValueError:
        return False
    return True


def test_source_fields_hash_changes_only_with_named_fields() -> None:
    fields = ["name", "description@de_DE", "category"]
    base = snapshot(value("name", "A"), value("description", "x"), value("brand", "B"))
    h = source_fields_hash(base, fields)
    assert len(h) == 64
    assert source_fields_hash(base, [*reversed(fields), "name"]) == h

    unrelated = snapshot(
        value("name", "A"),
        value("description", "changed"),
        value("brand", "C"),
        version=9,
        updated_at=datetime(2030, 1, 1, tzinfo=UTC),
        supplier="other",
    )
    assert source_fields_hash(unrelated, fields) == h

    renamed = snapshot(value("name", "B"), value("description", "x"))
    german = snapshot(
        value("name", "A"), value("description", "x"), value("description", "y", "de_DE")
    )
    moved = snapshot(value("name", "A"), categories=("Pet Food/Dog",))
    for changed in (renamed, german, moved):
        assert source_fields_hash(changed, fields) != h


def test_source_fields_hash_rejects_bad_references() -> None:
    with pytest.raises(ValueError, match="bad field reference"):
        source_fields_hash(PRODUCT, ["name@"])
