"""Remembered decisions: what a person decided is applied to the same value from the
same input, and only then. Pure functions, no broker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from catalogflow.streams.definitions import ModerationPolicy
from catalogflow.streams.moderation import apply_decision, new_item, reviewed_output
from catalogflow.streams.records import (
    ActionOutput,
    AttributeValue,
    DecisionKind,
    FieldOutput,
    ModerationDecision,
    ModerationItem,
    RememberedDecision,
    Role,
    Task,
    Value,
)
from catalogflow.streams.remembered import Recalled, memory_key, read_hash, recall, remembered

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
SOURCE: list[AttributeValue] = [
    {"attribute": "name", "locale": None, "scope": None, "value": "Cat food"}
]
EARLIER: list[ActionOutput] = [
    {
        "action_id": "extract",
        "action_type": "extraction",
        "fields": [
            {
                "field": "Flavor",
                "locale": None,
                "value": "Chicken",
                "reasoning": "says chicken",
                "confidence": 0.9,
                "evidence": "chicken",
                "approved": True,
            }
        ],
        "model": "m",
        "prompt_version": "v1",
        "input_tokens": 1,
        "output_tokens": 1,
        "cost": 0.0,
        "skipped": None,
    }
]


def field(name: str, value: Value, locale: str | None = None, approved: bool = True) -> FieldOutput:
    return {
        "field": name,
        "locale": locale,
        "value": value,
        "reasoning": "model",
        "confidence": 0.5,
        "evidence": None,
        "approved": approved,
    }


def output(*fields: FieldOutput) -> ActionOutput:
    return {**EARLIER[0], "action_id": "describe", "action_type": "generation", "fields": [*fields]}


def review(*fields: FieldOutput, second_approval: bool = False) -> ModerationItem:
    task: Task = {
        "task_id": "SKU-1@run-1",
        "run_id": "run-1",
        "workflow_id": "wf",
        "workflow_version": 1,
        "sku": "SKU-1",
        "step_index": 1,
        "steps": ["extract", "describe"],
        "definition": "{}",
        "input_hash": "x",
        "created_at": T0,
        "attempt": 0,
        "outputs": list(EARLIER),
        "origin": None,
        "history": ["extract"],
    }
    policy = ModerationPolicy(mode="always", second_approval=second_approval)
    return new_item(
        task, output(*fields), source_values=SOURCE, reason="always", policy=policy, now=T0
    )


def decide(
    kind: DecisionKind,
    name: str | None = None,
    value: Value = None,
    actor: str = "rita",
    role: Role = "EDITOR",
    minutes: int = 1,
) -> ModerationDecision:
    return {
        "decision_id": f"d-{kind}-{minutes}",
        "item_id": "SKU-1@run-1#1.0",
        "task_id": "SKU-1@run-1",
        "sku": "SKU-1",
        "decision": kind,
        "field": name,
        "locale": None,
        "edited_value": value,
        "feedback": None,
        "actor": {"id": actor, "role": role},
        "decided_at": T0 + timedelta(minutes=minutes),
        "signature": None,
    }


def resolve(item: ModerationItem, *decisions: ModerationDecision) -> dict[str, RememberedDecision]:
    """Fold the decisions like the moderation agent and return what it remembers."""
    for d in decisions:
        folded = apply_decision(item, d)
        if folded.outcome in ("approved", "rejected"):
            final = folded.item["fields"] if folded.item is not None else ()
            return remembered(item, d, folded.outcome, final)
        assert folded.item is not None
        item = folded.item
    return {}


def recalled(
    fields: list[FieldOutput],
    memory: dict[str, RememberedDecision],
    source: Sequence[AttributeValue] = SOURCE,
) -> Recalled:
    return recall(
        fields,
        memory.get,
        sku="SKU-1",
        action_id="describe",
        input_hash=read_hash(source, EARLIER),
    )


def test_the_key_names_sku_action_field_locale_input_and_value() -> None:
    base: list[Any] = ["SKU-1", "describe", "title", "de_DE", "h1", "Katzenfutter"]
    key = memory_key(*base)
    assert key.startswith("SKU-1@")  # on the product's partition
    assert memory_key(*base) == key
    for i, other in enumerate(("SKU-2", "enrich", "name", None, "h2", "Hundefutter")):
        changed = list(base)
        changed[i] = other
        assert memory_key(*changed) != key


def test_the_input_hash_ignores_reasoning_but_not_values() -> None:
    h = read_hash(SOURCE, EARLIER)
    reworded: list[ActionOutput] = [
        {**EARLIER[0], "fields": [{**EARLIER[0]["fields"][0], "reasoning": "other"}]}
    ]
    assert read_hash(SOURCE, reworded) == h
    retold: list[ActionOutput] = [
        {**EARLIER[0], "fields": [{**EARLIER[0]["fields"][0], "value": "Beef"}]}
    ]
    assert read_hash(SOURCE, retold) != h
    assert read_hash([{**SOURCE[0], "value": "Dog food"}], EARLIER) != h


def test_a_rejected_value_is_rejected_again_from_the_same_input() -> None:
    memory = resolve(review(field("title", "Bad")), decide("REJECT"))
    [row] = memory.values()
    assert (row["decision"], row["actor_id"], row["run_id"]) == ("REJECT", "rita", "run-1")
    again = recalled([field("title", "Bad")], memory)
    assert again.fields == [] and again.undecided == []
    assert again.note is not None
    assert "title rejected by rita (editor) at 2025-03-01 09:31:00 UTC in run run-1" in again.note


def test_an_edited_value_comes_back_as_the_persons_value() -> None:
    memory = resolve(
        review(field("title", "Meh"), field("text", "Fine")),
        decide("EDIT", "title", "Good", actor="erik"),
        decide("APPROVE", "text", minutes=2),
    )
    assert {r["decision"] for r in memory.values()} == {"EDIT", "APPROVE"}
    again = recalled([field("title", "Meh"), field("text", "Fine")], memory)
    assert [f["value"] for f in again.fields] == ["Good", "Fine"]
    assert all(f["approved"] for f in again.fields) and again.undecided == []
    assert (again.fields[0]["reasoning"] or "").startswith(
        "Human-authored by erik (editor) in run run-1"
    )


def test_a_changed_input_asks_again() -> None:
    memory = resolve(review(field("title", "Bad")), decide("REJECT"))
    changed: list[AttributeValue] = [{**SOURCE[0], "value": "New cat food"}]
    again = recalled([field("title", "Bad")], memory, source=changed)
    assert again.undecided == again.fields == [field("title", "Bad")] and again.note is None


def test_a_different_value_asks_again() -> None:
    memory = resolve(review(field("title", "Bad")), decide("REJECT"))
    again = recalled([field("title", "Better")], memory)
    assert again.undecided == [field("title", "Better")] and again.note is None


def test_a_flagged_value_is_never_approved_from_memory() -> None:
    approved = resolve(review(field("title", "Odd")), decide("APPROVE"))
    flagged = field("title", "Odd", approved=False)
    assert recalled([flagged], approved).undecided == [flagged]
    # A person approving a flagged value is not remembered at all …
    assert resolve(review(flagged), decide("APPROVE")) == {}
    # … but rejecting or editing it is, and applies.
    rejected = resolve(review(flagged), decide("REJECT"))
    assert recalled([flagged], rejected).fields == []
    edited = resolve(review(flagged), decide("EDIT", "title", "Even"))
    assert recalled([flagged], edited).fields[0]["value"] == "Even"


def test_only_the_final_effective_decision_is_remembered() -> None:
    # An edit later approved stays an edit; a reject overrides an earlier approval.
    memory = resolve(
        review(field("title", "Meh"), field("text", "Fine"), field("meta", "M")),
        decide("APPROVE", "text"),
        decide("EDIT", "title", "Good", minutes=2),
        decide("REJECT", "text", minutes=3),
        decide("APPROVE", minutes=4),
    )
    by_field = {r["field"]: r for r in memory.values()}
    assert by_field["title"]["decision"] == "EDIT" and by_field["title"]["edited_value"] == "Good"
    assert by_field["text"]["decision"] == "REJECT"
    assert by_field["meta"]["decision"] == "APPROVE"


def test_a_first_approval_waiting_for_a_moderator_is_not_remembered_until_it_resolves() -> None:
    item = review(field("title", "Fine"), second_approval=True)
    first = apply_decision(item, decide("APPROVE"))
    assert first.outcome == "pending"
    assert remembered(item, decide("APPROVE"), first.outcome) == {}
    memory = resolve(item, decide("APPROVE"), decide("APPROVE", actor="moritz", role="MODERATOR"))
    [row] = memory.values()
    assert (row["actor_id"], row["role"]) == ("moritz", "MODERATOR")


def test_a_whole_item_reject_is_remembered_for_every_value() -> None:
    memory = resolve(review(field("title", "A"), field("text", "B")), decide("REJECT"))
    assert sorted((r["field"], r["decision"]) for r in memory.values()) == [
        ("text", "REJECT"),
        ("title", "REJECT"),
    ]


def test_a_sync_approval_is_not_remembered() -> None:
    item = review(field("title", "A"))
    item = {**item, "task": {**item["task"], "step_index": 2}}
    assert remembered(item, decide("REJECT"), "rejected") == {}


def test_values_decided_from_memory_rejoin_the_reviewed_ones_in_order() -> None:
    fresh = [field("title", "Meh"), field("text", "Fine"), field("meta", "M")]
    memory = resolve(review(field("title", "Meh")), decide("EDIT", "title", "Good"))
    partly = recalled(fresh, memory)
    assert [f["field"] for f in partly.undecided] == ["text", "meta"]
    base = review()
    item = new_item(
        {**base["task"], "outputs": list(EARLIER)},
        output(*partly.fields),
        source_values=SOURCE,
        reason="always",
        policy=ModerationPolicy(mode="always"),
        now=T0,
        review_fields=partly.undecided,
    )
    assert [f["field"] for f in item["fields"]] == ["text", "meta"]
    pending = apply_decision(item, decide("REJECT", "meta")).item
    assert pending is not None
    folded = apply_decision(pending, decide("APPROVE", minutes=2))
    assert folded.outcome == "approved" and folded.item is not None
    result = reviewed_output(pending, folded.item["fields"])
    assert [(f["field"], f["value"]) for f in result["fields"]] == [
        ("title", "Good"),
        ("text", "Fine"),
    ]
    # Only what this item decided is remembered; the remembered edit is not re-keyed.
    again = remembered(pending, decide("APPROVE", minutes=2), "approved", folded.item["fields"])
    assert sorted((r["field"], r["decision"]) for r in again.values()) == [
        ("meta", "REJECT"),
        ("text", "APPROVE"),
    ]
