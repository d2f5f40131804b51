"""The moderation gate and the folding of review decisions: pure functions, no broker."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from catalogflow.streams.definitions import ModerationPolicy
from catalogflow.streams.moderation import (
    apply_decision,
    item_id,
    matches,
    new_item,
    resolved_task,
    review_reason,
)
from catalogflow.streams.records import (
    ActionOutput,
    DecisionKind,
    FieldOutput,
    ModerationDecision,
    ModerationItem,
    Role,
    Task,
    Value,
)

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def field(
    name: str = "description",
    value: Value = "Grain-free dry food for adult cats.",
    *,
    locale: str | None = None,
    confidence: float | None = 0.9,
    approved: bool = True,
) -> FieldOutput:
    return {
        "field": name,
        "locale": locale,
        "value": value,
        "reasoning": "From the supplier text.",
        "confidence": confidence,
        "evidence": "Getreidefrei",
        "approved": approved,
    }


def task(task_id: str = "CAT-DRY-2KG@run-1", **overrides: Any) -> Task:
    base: Task = {
        "task_id": task_id,
        "run_id": "run-1",
        "workflow_id": "wf-describe",
        "workflow_version": 3,
        "sku": "CAT-DRY-2KG",
        "step_index": 1,
        "steps": ["extract", "describe"],
        "input_hash": "sha256:ab12",
        "created_at": T0,
        "attempt": 0,
        "outputs": [
            {
                "action_id": "extract",
                "action_type": "extraction",
                "fields": [field("Flavor", "Chicken")],
                "model": "gpt-4o-mini",
                "prompt_version": "v7",
                "input_tokens": 812,
                "output_tokens": 96,
                "cost": 0.00042,
                "skipped": None,
            }
        ],
        "origin": None,
        "definition": '{"id": "wf-describe"}',
        "history": ["extract"],
    }
    return cast(Task, {**base, **overrides})


def output(*fields: FieldOutput, action_id: str = "describe") -> ActionOutput:
    return {
        "action_id": action_id,
        "action_type": "generation",
        "fields": list(fields),
        "model": "gpt-4o-mini",
        "prompt_version": "v2",
        "input_tokens": 300,
        "output_tokens": 80,
        "cost": 0.002,
        "skipped": None,
    }


def item(
    *fields: FieldOutput, second_approval: bool = False, **task_overrides: Any
) -> ModerationItem:
    fields = fields or (field(),)
    return new_item(
        task(**task_overrides),
        output(*fields),
        source_values=[{"attribute": "name", "locale": None, "scope": None, "value": "Cat food"}],
        reason="confidence below 0.95",
        policy=ModerationPolicy(mode="always", second_approval=second_approval),
        now=T0,
    )


def decision(
    kind: DecisionKind,
    *,
    field_name: str | None = None,
    locale: str | None = None,
    edited_value: Value = None,
    feedback: str | None = None,
    actor: str = "julia",
    role: Role = "MODERATOR",
    minutes: int = 5,
) -> ModerationDecision:
    return {
        "decision_id": f"dec-{kind}-{field_name}-{minutes}",
        "item_id": "CAT-DRY-2KG@run-1#1.0",
        "task_id": "CAT-DRY-2KG@run-1",
        "sku": "CAT-DRY-2KG",
        "decision": kind,
        "field": field_name,
        "locale": locale,
        "edited_value": edited_value,
        "feedback": feedback,
        "actor": {"id": actor, "role": role},
        "decided_at": T0 + timedelta(minutes=minutes),
        "signature": None,
    }


# --------------------------------------------------------------------------- review_reason


class TestReviewReason:
    def test_mode_none_never_reviews_passing_fields(self) -> None:
        policy = ModerationPolicy(mode="none")
        assert review_reason(policy, [field(confidence=0.1), field(confidence=None)], "t") is None

    def test_mode_always_reviews_every_result(self) -> None:
        reason = review_reason(ModerationPolicy(mode="always"), [field(confidence=0.99)], "t")
        assert reason is not None and "every result" in reason

    def test_below_threshold_names_only_the_low_fields(self) -> None:
        policy = ModerationPolicy(mode="below_threshold", threshold=0.8)
        fields = [
            field("title", confidence=0.95),
            field("description", locale="de_DE", confidence=0.5),
        ]
        reason = review_reason(policy, fields, "t")
        assert reason == "confidence below 0.8 for description@de_DE"

    def test_below_threshold_passes_when_every_field_reaches_it(self) -> None:
        policy = ModerationPolicy(mode="below_threshold", threshold=0.8)
        fields = [field("title", confidence=0.8), field("description", confidence=0.99)]
        assert review_reason(policy, fields, "t") is None

    def test_below_threshold_judges_each_field(self) -> None:
        policy = ModerationPolicy(mode="below_threshold", threshold=0.8)
        fields = [
            field("a", confidence=0.7),
            field("b", confidence=0.9),
            field("c", confidence=0.1),
        ]
        assert review_reason(policy, fields, "t") == "confidence below 0.8 for a, c"

    def test_a_missing_confidence_counts_as_zero(self) -> None:
        policy = ModerationPolicy(mode="below_threshold", threshold=0.01)
        reason = review_reason(policy, [field("Flavor", confidence=None)], "t")
        assert reason == "confidence below 0.01 for Flavor"

    def test_a_missing_confidence_blocks_auto_approval(self) -> None:
        policy = ModerationPolicy(mode="below_threshold", threshold=0.5, auto_approve_above=0.9)
        fields = [field("a", confidence=0.99), field("b", confidence=None)]
        assert review_reason(policy, fields, "t") == "confidence below 0.5 for b"

    def test_auto_approve_above_skips_review(self) -> None:
        policy = ModerationPolicy(mode="always", auto_approve_above=0.9)
        assert review_reason(policy, [field(confidence=0.95), field(confidence=0.9)], "t") is None

    def test_below_auto_approve_the_mode_decides(self) -> None:
        policy = ModerationPolicy(mode="always", auto_approve_above=0.9)
        reason = review_reason(policy, [field(confidence=0.95), field(confidence=0.89)], "t")
        assert reason is not None and "every result" in reason

    def test_audit_sample_of_one_reviews_every_auto_approved_result(self) -> None:
        policy = ModerationPolicy(mode="always", auto_approve_above=0.9, audit_sample=1.0)
        for n in range(50):
            reason = review_reason(policy, [field(confidence=0.99)], f"task-{n}")
            assert reason == "audit sample (100% of auto-approved results)"

    def test_audit_sample_of_zero_reviews_none(self) -> None:
        policy = ModerationPolicy(mode="always", auto_approve_above=0.9, audit_sample=0.0)
        for n in range(50):
            assert review_reason(policy, [field(confidence=0.99)], f"task-{n}") is None

    def test_audit_sample_is_deterministic_per_task(self) -> None:
        policy = ModerationPolicy(mode="below_threshold", auto_approve_above=0.9, audit_sample=0.5)
        fields = [field(confidence=0.99)]
        first = {f"task-{n}": review_reason(policy, fields, f"task-{n}") for n in range(200)}
        again = {
            f"task-{n}": review_reason(policy, fields, f"task-{n}") for n in reversed(range(200))
        }
        assert first == again
        sampled = [t for t, r in first.items() if r is not None]
        # A stable hash draw: roughly half, and certainly neither none nor all.
        assert 50 < len(sampled) < 150
        assert all(first[t] == "audit sample (50% of auto-approved results)" for t in sampled)

    def test_audit_sample_only_applies_to_auto_approved_results(self) -> None:
        policy = ModerationPolicy(
            mode="below_threshold", threshold=0.5, auto_approve_above=0.9, audit_sample=1.0
        )
        # Between threshold and auto-approval: passes without review and is not audited.
        assert review_reason(policy, [field(confidence=0.7)], "t") is None

    def test_a_failed_check_always_goes_to_review(self) -> None:
        fields = [field("Flavor", confidence=0.99, approved=False), field("title")]
        for policy in (
            ModerationPolicy(mode="none"),
            ModerationPolicy(mode="always", auto_approve_above=0.5),
            ModerationPolicy(mode="below_threshold", threshold=0.1),
        ):
            reason = review_reason(policy, fields, "t")
            assert reason is not None
            assert reason.startswith("a check failed for Flavor")
            assert "never approved automatically" in reason

    def test_failed_checks_are_listed_with_their_locale(self) -> None:
        fields = [
            field("description", locale="de_DE", approved=False),
            field("title", approved=False),
        ]
        reason = review_reason(ModerationPolicy(), fields, "t")
        assert reason == (
            "a check failed for description@de_DE, title: never approved automatically"
        )

    @pytest.mark.parametrize(
        "policy",
        [
            ModerationPolicy(mode="none"),
            ModerationPolicy(mode="always"),
            ModerationPolicy(mode="below_threshold", threshold=0.9),
            ModerationPolicy(mode="always", auto_approve_above=0.5, audit_sample=1.0),
        ],
    )
    def test_no_fields_no_review(self, policy: ModerationPolicy) -> None:
        assert review_reason(policy, [], "t") is None


# --------------------------------------------------------------------------- new_item / item_id


def test_item_id_is_task_step_and_attempt() -> None:
    assert item_id(task(step_index=2, attempt=1)) == "CAT-DRY-2KG@run-1#2.1"
    assert item_id(task(step_index=2, attempt=2)) != item_id(task(step_index=2, attempt=1))


def test_new_item_holds_the_output_unapproved_and_the_slip_with_it() -> None:
    out = item(field("title", confidence=0.99), second_approval=True)
    assert out["item_id"] == "CAT-DRY-2KG@run-1#1.0"
    assert out["action_id"] == "describe"
    assert [f["approved"] for f in out["fields"]] == [False]
    assert [o["action_id"] for o in out["task"]["outputs"]] == ["extract", "describe"]
    assert out["requires_second_approval"] is True
    assert out["decisions"] == []


# --------------------------------------------------------------------------- apply_decision


class TestApplyDecision:
    def test_whole_item_approve_resolves(self) -> None:
        pending = item(field("title"), field("description", locale="de_DE"))
        folded = apply_decision(pending, decision("APPROVE"))
        assert folded.outcome == "approved"
        assert folded.item is not None
        assert [f["approved"] for f in folded.item["fields"]] == [True, True]
        assert folded.note == "approved: APPROVE by julia (moderator)"

    def test_per_field_approve_leaves_the_others_pending(self) -> None:
        pending = item(field("title"), field("description"))
        folded = apply_decision(pending, decision("APPROVE", field_name="title"))
        assert folded.outcome == "pending"
        assert folded.item is not None
        assert {f["field"]: f["approved"] for f in folded.item["fields"]} == {
            "title": True,
            "description": False,
        }
        done = apply_decision(folded.item, decision("APPROVE", field_name="description"))
        assert done.outcome == "approved"
        assert done.item is not None and len(done.item["decisions"]) == 2

    def test_per_field_approve_by_locale(self) -> None:
        pending = item(
            field("description", "Dry food", locale="en_US"),
            field("description", "Trockenfutter", locale="de_DE"),
        )
        folded = apply_decision(
            pending, decision("APPROVE", field_name="description", locale="de_DE")
        )
        assert folded.outcome == "pending"
        assert folded.item is not None
        approved = {f["locale"]: f["approved"] for f in folded.item["fields"]}
        assert approved == {"en_US": False, "de_DE": True}

    def test_a_field_without_locale_in_the_decision_covers_every_locale(self) -> None:
        pending = item(
            field("description", "Dry food", locale="en_US"),
            field("description", "Trockenfutter", locale="de_DE"),
        )
        folded = apply_decision(pending, decision("APPROVE", field_name="description"))
        assert folded.outcome == "approved"

    def test_edit_replaces_the_value_and_marks_it_human_authored(self) -> None:
        pending = item(field("title", "Cat food", confidence=0.4), field("description"))
        folded = apply_decision(
            pending,
            decision("EDIT", field_name="title", edited_value="Dry Cat Food", role="EDITOR"),
        )
        assert folded.outcome == "pending"
        assert folded.note == "EDIT by julia (editor)"
        assert folded.item is not None
        title = folded.item["fields"][0]
        assert title["value"] == "Dry Cat Food"
        assert title["approved"] is True
        assert title["confidence"] == 1.0
        assert title["evidence"] is None
        assert title["reasoning"] == (
            "Human-authored by julia (editor); the model proposed 'Cat food'."
        )
        assert folded.item["fields"][1]["approved"] is False
        assert folded.item["decisions"][-1]["change"] == "'Cat food' -> 'Dry Cat Food'"

    def test_edit_of_the_last_pending_field_resolves(self) -> None:
        pending = item(field("Flavor", "Chiken", confidence=0.3))
        folded = apply_decision(
            pending, decision("EDIT", field_name="Flavor", edited_value="Chicken")
        )
        assert folded.outcome == "approved"
        assert folded.item is not None
        assert folded.item["fields"][0]["value"] == "Chicken"
        reasoning = folded.item["fields"][0]["reasoning"] or ""
        assert "julia (moderator)" in reasoning and "'Chiken'" in reasoning

    def test_reject_one_field_then_approve_the_rest(self) -> None:
        pending = item(field("title"), field("description"), field("Flavor"))
        step = apply_decision(pending, decision("REJECT", field_name="description"))
        assert step.outcome == "pending"
        assert step.item is not None
        step = apply_decision(step.item, decision("APPROVE", field_name="title", minutes=6))
        assert step.outcome == "pending"
        assert step.item is not None
        step = apply_decision(step.item, decision("APPROVE", field_name="Flavor", minutes=7))
        assert step.outcome == "approved"
        assert step.item is not None
        assert [f["field"] for f in step.item["fields"]] == ["title", "Flavor"]
        assert all(f["approved"] for f in step.item["fields"])

    def test_reject_one_field_then_whole_item_approve_keeps_it_out(self) -> None:
        pending = item(field("title"), field("description"))
        step = apply_decision(pending, decision("REJECT", field_name="description"))
        assert step.item is not None
        done = apply_decision(step.item, decision("APPROVE", minutes=6))
        assert done.outcome == "approved"
        assert done.item is not None
        assert [f["field"] for f in done.item["fields"]] == ["title"]

    def test_an_edit_after_a_reject_puts_the_field_back(self) -> None:
        pending = item(field("title", "Old"), field("description"))
        step = apply_decision(pending, decision("REJECT", field_name="title"))
        assert step.item is not None
        step = apply_decision(
            step.item, decision("EDIT", field_name="title", edited_value="New", minutes=6)
        )
        assert step.item is not None
        done = apply_decision(step.item, decision("APPROVE", field_name="description", minutes=7))
        assert done.outcome == "approved"
        assert done.item is not None
        assert {f["field"]: f["value"] for f in done.item["fields"]}["title"] == "New"

    def test_every_field_rejected_is_rejected(self) -> None:
        pending = item(field("title"), field("description"))
        step = apply_decision(pending, decision("REJECT", field_name="title"))
        assert step.outcome == "pending"
        assert step.item is not None
        done = apply_decision(step.item, decision("REJECT", field_name="description", minutes=6))
        assert done.outcome == "rejected"
        assert done.item is None
        assert (
            done.note == "every field rejected: REJECT title by julia (moderator); "
            "REJECT description by julia (moderator)"
        )

    def test_whole_item_reject(self) -> None:
        folded = apply_decision(item(field("title"), field("description")), decision("REJECT"))
        assert folded.outcome == "rejected"
        assert folded.item is None
        assert folded.note == "rejected by julia (moderator)"

    def test_whole_item_reject_by_an_editor_needs_no_second_approval(self) -> None:
        pending = item(field("title"), second_approval=True)
        folded = apply_decision(pending, decision("REJECT", role="EDITOR"))
        assert folded.outcome == "rejected"

    def test_regenerate_goes_back_with_the_feedback(self) -> None:
        folded = apply_decision(
            item(field("title")), decision("REGENERATE", feedback="mention the pack size")
        )
        assert folded.outcome == "regenerate"
        assert folded.item is None
        assert folded.note == "regenerate asked by julia (moderator): mention the pack size"

    @pytest.mark.parametrize("kind", ["APPROVE", "REJECT", "EDIT", "REGENERATE"])
    def test_a_decision_for_a_field_the_item_lacks_is_ignored(self, kind: DecisionKind) -> None:
        pending = item(field("title"))
        before = copy.deepcopy(pending)
        folded = apply_decision(pending, decision(kind, field_name="colour", edited_value="x"))
        assert folded.outcome == "ignored"
        assert folded.item == before
        assert folded.note.endswith("the item has no field colour")
        assert pending == before

    def test_a_decision_for_a_locale_the_item_lacks_is_ignored(self) -> None:
        pending = item(field("description", locale="en_US"))
        folded = apply_decision(
            pending, decision("APPROVE", field_name="description", locale="fr_FR")
        )
        assert folded.outcome == "ignored"
        assert folded.note.endswith("the item has no field description@fr_FR")

    def test_second_approval_an_editor_approval_waits_for_a_moderator(self) -> None:
        pending = item(field("title"), second_approval=True)
        first = apply_decision(pending, decision("APPROVE", actor="ed", role="EDITOR"))
        assert first.outcome == "pending"
        assert first.note == "APPROVE by ed (editor); waiting for a moderator"
        assert first.item is not None
        assert first.item["fields"][0]["approved"] is True
        second = apply_decision(first.item, decision("APPROVE", role="MODERATOR", minutes=9))
        assert second.outcome == "approved"
        assert second.item is not None
        assert [(d["actor_id"], d["role"]) for d in second.item["decisions"]] == [
            ("ed", "EDITOR"),
            ("julia", "MODERATOR"),
        ]

    def test_second_approval_a_moderator_approval_resolves(self) -> None:
        pending = item(field("title"), second_approval=True)
        folded = apply_decision(pending, decision("APPROVE", role="MODERATOR"))
        assert folded.outcome == "approved"

    def test_second_approval_a_moderator_edit_counts(self) -> None:
        pending = item(field("title", "Old"), second_approval=True)
        folded = apply_decision(
            pending, decision("EDIT", field_name="title", edited_value="New", role="MODERATOR")
        )
        assert folded.outcome == "approved"

    def test_second_approval_an_admin_approval_counts_as_the_moderator(self) -> None:
        pending = item(field("title"), second_approval=True)
        folded = apply_decision(pending, decision("APPROVE", actor="root", role="ADMIN"))
        assert folded.outcome == "approved"

    def test_second_approval_editors_alone_never_count_as_the_moderator(self) -> None:
        pending = item(field("title", "Old"), second_approval=True)
        edited = apply_decision(
            pending, decision("EDIT", field_name="title", edited_value="New", role="EDITOR")
        )
        assert edited.outcome == "pending" and edited.item is not None
        approved = apply_decision(
            edited.item, decision("APPROVE", actor="ed2", role="EDITOR", minutes=7)
        )
        assert approved.outcome == "pending"
        assert approved.note.endswith("waiting for a moderator")

    def test_second_approval_every_field_rejected_by_an_editor_is_rejected(self) -> None:
        pending = item(field("title"), field("description"), second_approval=True)
        step = apply_decision(pending, decision("REJECT", field_name="title", role="EDITOR"))
        assert step.outcome == "pending" and step.item is not None
        done = apply_decision(
            step.item, decision("REJECT", field_name="description", role="EDITOR", minutes=6)
        )
        assert done.outcome == "rejected"
        assert done.item is None

    def test_decisions_record_who_role_when_field_locale_and_change(self) -> None:
        pending = item(field("description", "Alt", locale="de_DE"), field("title"))
        step = apply_decision(
            pending,
            decision(
                "EDIT",
                field_name="description",
                locale="de_DE",
                edited_value="Neu",
                actor="anna",
                role="EDITOR",
                minutes=3,
            ),
        )
        assert step.item is not None
        step = apply_decision(step.item, decision("APPROVE", field_name="title", minutes=4))
        assert step.item is not None
        assert step.item["decisions"] == [
            {
                "decision": "EDIT",
                "actor_id": "anna",
                "role": "EDITOR",
                "at": T0 + timedelta(minutes=3),
                "field": "description",
                "locale": "de_DE",
                "change": "'Alt' -> 'Neu'",
            },
            {
                "decision": "APPROVE",
                "actor_id": "julia",
                "role": "MODERATOR",
                "at": T0 + timedelta(minutes=4),
                "field": "title",
                "locale": None,
                "change": None,
            },
        ]

    def test_apply_decision_does_not_mutate_the_item(self) -> None:
        pending = item(field("title", "Old"), field("description"))
        before = copy.deepcopy(pending)
        apply_decision(pending, decision("EDIT", field_name="title", edited_value="New"))
        apply_decision(pending, decision("APPROVE"))
        apply_decision(pending, decision("REJECT", field_name="title"))
        assert pending == before


# --------------------------------------------------------------------------- resolved_task


def test_resolved_task_puts_the_reviewed_fields_in_the_last_output() -> None:
    pending = item(field("title", "Old", confidence=0.2), field("description"))
    step = apply_decision(pending, decision("REJECT", field_name="description"))
    assert step.item is not None
    done = apply_decision(step.item, decision("EDIT", field_name="title", edited_value="New"))
    assert done.outcome == "approved" and done.item is not None
    before = copy.deepcopy(done.item)

    slip = resolved_task(done.item)
    assert [o["action_id"] for o in slip["outputs"]] == ["extract", "describe"]
    assert slip["outputs"][0] == pending["task"]["outputs"][0]
    last = slip["outputs"][-1]
    assert [(f["field"], f["value"], f["approved"]) for f in last["fields"]] == [
        ("title", "New", True)
    ]
    assert last["model"] == "gpt-4o-mini" and last["cost"] == 0.002
    assert slip["task_id"] == pending["task_id"]
    assert done.item == before  # the item itself is left as it was


# --------------------------------------------------------------------------- matches


class TestMatches:
    def test_no_filter_matches(self) -> None:
        assert matches(item(field()))

    def test_filters_by_run_workflow_and_action(self) -> None:
        one = item(field())
        assert matches(one, run_id="run-1", workflow_id="wf-describe", action_id="describe")
        assert not matches(one, run_id="run-2")
        assert not matches(one, workflow_id="wf-other")
        assert not matches(one, action_id="extract")

    def test_filters_by_the_lowest_confidence(self) -> None:
        one = item(field("a", confidence=0.9), field("b", confidence=0.6))
        assert matches(one, min_confidence=0.6)
        assert not matches(one, min_confidence=0.61)
        assert matches(one, max_confidence=0.6)
        assert not matches(one, max_confidence=0.59)
        assert matches(one, min_confidence=0.5, max_confidence=0.7)
        assert not matches(one, min_confidence=0.7, max_confidence=0.95)

    def test_a_missing_confidence_counts_as_zero(self) -> None:
        one = item(field("a", confidence=0.9), field("b", confidence=None))
        assert matches(one, max_confidence=0.0)
        assert not matches(one, min_confidence=0.01)

    def test_every_filter_must_hold(self) -> None:
        one = item(field(confidence=0.5))
        assert not matches(one, run_id="run-1", max_confidence=0.4)
        assert matches(one, run_id="run-1", max_confidence=0.5)
