"""The read model's folds on SQLite: duplicates and replays change nothing, tombstones
resolve review items, history keeps its order, the moderation queue's risk, and the
task columns that come from other topics do not depend on the order topics arrive."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.definitions import ModerationPolicy, WorkflowDefinition
from catalogflow.streams.engine import advance, new_task, task_event
from catalogflow.streams.moderation import new_item
from catalogflow.streams.records import (
    ActionOutput,
    DecisionKind,
    FieldOutput,
    ModerationItem,
    SyncResult,
    Task,
    TaskEvent,
    WorkflowVersion,
    run_progress,
    workflow_command,
)
from catalogflow.streams.review import decision
from catalogflow.streams.topics import TopicName

from catalogflow.readmodel import tables
from catalogflow.readmodel.batch import Record, apply_batch, next_offsets
from catalogflow.readmodel.derived import risk
from catalogflow.readmodel.fold import (
    Source,
    fold_command,
    fold_dead_letter,
    fold_decision,
    fold_moderation,
    fold_run_progress,
    fold_sync_result,
    fold_task_events,
    fold_workflow_version,
)
from catalogflow.readmodel.store import digest, engine_for, upgrade

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
HERE = Source(0, 0)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = engine_for(f"sqlite:///{tmp_path / 'rm.sqlite'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def field(
    name: str, value: Any, confidence: float | None = 0.9, approved: bool = True
) -> FieldOutput:
    return {
        "field": name,
        "locale": None,
        "value": value,
        "reasoning": "because",
        "confidence": confidence,
        "evidence": None,
        "approved": approved,
    }


def output(action: str, *fields: FieldOutput) -> ActionOutput:
    return {
        "action_id": action,
        "action_type": "t",
        "fields": list(fields),
        "model": "gpt-test",
        "prompt_version": f"{action}-v1",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.25,
        "skipped": None,
    }


def task(sku: str = "SKU-1") -> Task:
    return new_task(
        run_id="run-1",
        workflow_id="wf",
        workflow_version=1,
        sku=sku,
        steps=["extract", "describe"],
        definition_json="{}",
        input_hash="hash-1",
        now=T0,
        origin={"topic": "p.partition-commands", "partition": 0, "offset": 1},
    )


def events(sku: str = "SKU-1") -> list[TaskEvent]:
    """A two-step task: waiting, extracted (confidence 0.8), described, completed."""
    start = task(sku)
    first = output("extract", field("flavor", "Chicken", 0.8))
    second = output("describe", field("title", "Crunchy CHICKEN bites", 0.95))
    step1 = advance(start, first)
    step2 = advance(step1, second)
    return [
        task_event(start, "WAITING", now=T0),
        task_event(start, "RUNNING", now=T0 + timedelta(seconds=1)),
        task_event(step1, "WAITING", now=T0 + timedelta(seconds=2), with_outputs=True, spent=first),
        task_event(
            step2, "COMPLETED", now=T0 + timedelta(seconds=3), with_outputs=True, spent=second
        ),
    ]


def fold_events(engine: sa.Engine, folded: list[TaskEvent]) -> None:
    with engine.begin() as conn:
        for offset, event in enumerate(folded):
            fold_task_events(conn, event, Source(0, offset))


def rows(engine: sa.Engine, table: sa.Table, *order: sa.ColumnElement[Any]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(*order)).all())


def test_a_task_folds_to_one_row_with_its_outputs_and_totals(engine: sa.Engine) -> None:
    fold_events(engine, events())
    [row] = rows(engine, tables.tasks)
    assert (row.task_id, row.status, row.step_index, row.attempt) == (
        "SKU-1@run-1",
        "COMPLETED",
        2,
        0,
    )
    assert row.min_confidence == 0.8
    assert row.cost == 0.5 and row.input_tokens == 20 and row.output_tokens == 10
    assert "sku-1" in row.search_text and "crunchy chicken bites" in row.search_text
    assert row.moderation_state is None and row.sync_status is None
    outputs = rows(engine, tables.task_outputs, tables.task_outputs.c.action_id)
    assert [(o.action_id, o.field, o.value, o.locale) for o in outputs] == [
        ("describe", "title", "Crunchy CHICKEN bites", ""),
        ("extract", "flavor", "Chicken", ""),
    ]


def test_duplicates_and_replays_change_nothing(engine: sa.Engine) -> None:
    folded = events()
    fold_events(engine, folded)
    before = digest(engine)
    fold_events(engine, [folded[0], folded[2], folded[3], folded[3], folded[1]])
    assert digest(engine) == before


def test_history_holds_every_transition_and_each_step_output_once_in_order(
    engine: sa.Engine,
) -> None:
    fold_events(engine, events())
    history = rows(engine, tables.task_history, tables.task_history.c.seq)
    assert [(h.seq, h.kind, h.action_id, h.status) for h in history] == [
        (0, "transition", "extract", "WAITING"),
        (1, "transition", "extract", "RUNNING"),
        (2, "output", "extract", None),
        (3, "transition", "describe", "WAITING"),
        (4, "output", "describe", None),
        (5, "transition", "describe", "COMPLETED"),
    ]
    lineage = history[4]
    assert (lineage.input_hash, lineage.model, lineage.prompt_version) == (
        "hash-1",
        "gpt-test",
        "describe-v1",
    )
    assert (lineage.input_tokens, lineage.output_tokens, lineage.cost) == (10, 5, 0.25)
    assert [f["value"] for f in lineage.fields] == ["Crunchy CHICKEN bites"]
    assert lineage.fields[0]["attempt"] == 0 and lineage.fields[0]["model"] == "gpt-test"


def test_outputs_are_recorded_at_the_attempt_and_time_they_ran(engine: sa.Engine) -> None:
    start = task()
    first = output("extract", field("flavor", "Chicken"))
    step1 = advance(start, first)
    failed = task_event(
        step1,
        "ERROR",
        now=T0 + timedelta(seconds=2),
        failure_category="INVALID_OUTPUT",
        with_outputs=True,
    )
    again: Task = {**step1, "attempt": 1}
    second = output("describe", field("title", "Better"))
    redone = advance(again, second)
    fold_events(
        engine,
        [
            task_event(step1, "WAITING", now=T0, spent=first),
            failed,
            task_event(again, "WAITING", now=T0 + timedelta(seconds=5)),  # retry-failed
            task_event(
                redone, "COMPLETED", now=T0 + timedelta(seconds=6), with_outputs=True, spent=second
            ),
        ],
    )
    history = rows(engine, tables.task_history, tables.task_history.c.seq)
    assert [
        (h.action_id, h.attempt, h.at.replace(tzinfo=UTC)) for h in history if h.kind == "output"
    ] == [
        ("extract", 0, T0),
        ("describe", 1, T0 + timedelta(seconds=6)),
    ]
    outputs = rows(engine, tables.task_outputs, tables.task_outputs.c.action_id)
    assert [(o.action_id, o.attempt, o.value) for o in outputs] == [
        ("describe", 1, "Better"),
        ("extract", 0, "Chicken"),
    ]
    [row] = rows(engine, tables.tasks)
    assert (row.status, row.attempt, row.failure_category) == ("COMPLETED", 1, None)


def reviewed(slip: Task, made: ActionOutput) -> Task:
    """The slip an AWAITING_MODERATION event is made from (the review item's task)."""
    return {**slip, "outputs": [*slip["outputs"], made]}


def regenerated(final_title: str = "Short") -> list[TaskEvent]:
    """Extract, describe (reviewed), REGENERATE, describe again, approved with the
    title ``final_title`` (an EDIT when it differs from the model's "Short")."""
    start = task()
    extracted = output("extract", field("flavor", "Chicken"))
    step1 = advance(start, extracted)
    long = output("describe", field("title", "A very long title", approved=False))
    again: Task = {**step1, "attempt": 1}
    short = output("describe", field("title", "Short", approved=False))
    final = output("describe", field("title", final_title))
    at = [T0 + timedelta(seconds=n) for n in range(5)]
    return [
        task_event(step1, "WAITING", now=at[0], spent=extracted),
        task_event(reviewed(step1, long), "AWAITING_MODERATION", now=at[1], spent=long),
        task_event(again, "WAITING", now=at[2]),  # the REGENERATE decision
        task_event(reviewed(again, short), "AWAITING_MODERATION", now=at[3], spent=short),
        # The approval counts no cost again: the final values come in ``outputs``.
        task_event(advance(again, final), "COMPLETED", now=at[4], with_outputs=True),
    ]


def output_entries(engine: sa.Engine) -> list[tuple[str, int, list[Any]]]:
    history = rows(engine, tables.task_history, tables.task_history.c.seq)
    return [
        (h.action_id, h.attempt, [f["value"] for f in h.fields])
        for h in history
        if h.kind == "output"
    ]


def test_a_regenerated_step_has_an_output_entry_per_attempt_in_order(engine: sa.Engine) -> None:
    fold_events(engine, regenerated())
    assert output_entries(engine) == [
        ("extract", 0, ["Chicken"]),
        ("describe", 0, ["A very long title"]),
        ("describe", 1, ["Short"]),
    ]
    history = rows(engine, tables.task_history, tables.task_history.c.seq)
    assert [h.at for h in history] == sorted(h.at for h in history)
    [row] = rows(engine, tables.tasks)
    assert (row.status, row.attempt, row.cost) == ("COMPLETED", 1, 0.75)


def test_an_edit_shows_in_the_results_but_adds_no_output_entry(engine: sa.Engine) -> None:
    events_ = regenerated(final_title="Hand made")
    fold_events(engine, events_[:-1])
    before = output_entries(engine)
    fold_events(engine, events_[-1:])
    assert output_entries(engine) == before  # the model's value stays in the lineage
    outputs = rows(
        engine, tables.task_outputs, tables.task_outputs.c.action_id, tables.task_outputs.c.attempt
    )
    # The results hold each action's current values; the regenerated answer stays in
    # the history only.
    assert [(o.action_id, o.attempt, o.value, o.approved) for o in outputs] == [
        ("describe", 1, "Hand made", True),
        ("extract", 0, "Chicken", True),
    ]
    [task] = rows(engine, tables.tasks)
    assert "hand made" in task.search_text and "a very long title" not in task.search_text


def test_a_duplicate_or_replayed_step_event_adds_nothing(engine: sa.Engine) -> None:
    folded = regenerated(final_title="Hand made")
    fold_events(engine, folded)
    before = digest(engine)
    fold_events(engine, [folded[3], folded[1], folded[0], folded[4], folded[3]])
    assert digest(engine) == before


def item(*fields: FieldOutput, sku: str = "SKU-1", minutes: int = 0) -> ModerationItem:
    slip = advance(task(sku), output("extract", field("flavor", "Chicken")))
    return new_item(
        slip,
        output("describe", *fields),
        source_values=[],
        reason="the action's moderation policy reviews every result",
        policy=ModerationPolicy(mode="always"),
        now=T0 + timedelta(minutes=minutes),
    )


def test_risk_puts_failed_checks_first_then_the_lowest_confidence() -> None:
    assert risk(item(field("title", "x", 0.9, approved=False), field("t2", "y", 0.2))) == -1.0
    assert risk(item(field("title", "x", 0.7), field("t2", "y", 0.4))) == 0.4
    assert risk(item(field("title", "x", None))) == 1.0


def state_of(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        value: str | None = conn.execute(sa.select(tables.tasks.c.moderation_state)).scalar()
        return value


def test_a_tombstone_resolves_the_item_and_decisions_set_the_task_state(
    engine: sa.Engine,
) -> None:
    fold_events(engine, events()[:3])
    review = item(field("title", "Crunchy", 0.6))
    with engine.begin() as conn:
        fold_moderation(conn, review, HERE)
    assert state_of(engine) == "PENDING"
    [row] = rows(engine, tables.moderation_items)
    assert (row.pending, row.risk, row.resolved_at) == (True, 0.6, None)
    edit = decision(review, "EDIT", actor="erik", field="title", value="Hand made")
    approve = decision(review, "APPROVE", actor="anna")
    approve["decided_at"] = T0 + timedelta(hours=1)
    resolved = T0 + timedelta(hours=2)
    with engine.begin() as conn:
        fold_decision(conn, edit, HERE)
        assert state_of(engine) == "PENDING"  # decided only once the tombstone comes
        fold_decision(conn, approve, HERE)
        fold_decision(conn, edit, HERE)  # a duplicate
        fold_moderation(conn, None, Source(0, 9, resolved, review["item_id"].encode()))
        fold_moderation(conn, None, Source(0, 10, resolved, b"never-seen-item"))
    assert state_of(engine) == "EDITED"
    [row] = rows(engine, tables.moderation_items)
    assert row.pending is False and row.resolved_at.replace(tzinfo=UTC) == resolved
    assert len(rows(engine, tables.decisions)) == 2


@pytest.mark.parametrize(
    ("kinds", "state"),
    [
        (["APPROVE"], "APPROVED"),
        (["REJECT"], "REJECTED"),
        (["REGENERATE"], None),
    ],
)
def test_the_last_decision_of_a_resolved_item_names_the_state(
    engine: sa.Engine, kinds: list[DecisionKind], state: str | None
) -> None:
    fold_events(engine, events()[:3])
    review = item(field("title", "Crunchy", 0.6))
    with engine.begin() as conn:
        fold_moderation(conn, review, HERE)
        for minutes, kind in enumerate(kinds):
            made = decision(review, kind, actor="rita", feedback="again")
            made["decided_at"] = T0 + timedelta(minutes=minutes)
            fold_decision(conn, made, HERE)
        fold_moderation(conn, None, Source(0, 3, T0, review["item_id"].encode()))
    assert state_of(engine) == state


def sync(status: str, request: str) -> SyncResult:
    return {
        "request_id": request,
        "task_id": "SKU-1@run-1",
        "sku": "SKU-1",
        "target": "magento",
        "store_scope": "default",
        "status": status,  # type: ignore[typeddict-item]
        "fields": [{"attribute": "title", "status": status, "message": None}],  # type: ignore[typeddict-item]
        "error_category": None,
        "message": None,
        "at": T0,
    }


def test_sync_status_is_the_worst_result_and_the_latest_per_request(engine: sa.Engine) -> None:
    fold_events(engine, events())
    with engine.begin() as conn:
        fold_sync_result(conn, sync("SYNCED", "r1"), HERE)
        fold_sync_result(conn, sync("ERROR", "r2"), HERE)
        assert conn.execute(sa.select(tables.tasks.c.sync_status)).scalar() == "ERROR"
        fold_sync_result(conn, sync("UNCHANGED", "r2"), HERE)  # the retried request
        assert conn.execute(sa.select(tables.tasks.c.sync_status)).scalar() == "SYNCED"


def other_topics() -> list[tuple[str, Any, Source]]:
    review = item(field("title", "Crunchy", 0.6))
    return [
        ("moderation", review, HERE),
        ("decision", decision(review, "APPROVE", actor="anna"), HERE),
        ("moderation", None, Source(0, 5, T0, review["item_id"].encode())),
        ("sync", sync("CONFLICT", "r1"), HERE),
    ]


FOLD_BY_KIND: dict[str, Callable[[sa.Connection, Any, Source], None]] = {
    "moderation": fold_moderation,
    "decision": fold_decision,
    "sync": fold_sync_result,
}


def fold_any(conn: sa.Connection, kind: str, record: Any, source: Source) -> None:
    FOLD_BY_KIND[kind](conn, record, source)


def test_the_derived_task_columns_do_not_depend_on_the_order_topics_arrive(
    tmp_path: Path,
) -> None:
    """Moderation and sync keep their own order (one partition each); the task's events
    may come before, between or after them, as a rebuild or a restart sees them."""
    task_events, others = events(), other_topics()
    digests = set()
    for where in range(len(others) + 1):
        engine = engine_for(f"sqlite:///{tmp_path / f'order-{where}.sqlite'}")
        upgrade(engine)
        with engine.begin() as conn:
            for kind, record, source in others[:where]:
                fold_any(conn, kind, record, source)
            for offset, event in enumerate(task_events):
                fold_task_events(conn, event, Source(0, offset))
            for kind, record, source in others[where:]:
                fold_any(conn, kind, record, source)
        digests.add(json.dumps(digest(engine), sort_keys=True))
        with engine.connect() as conn:
            row = conn.execute(sa.select(tables.tasks)).one()
            assert (row.moderation_state, row.sync_status) == ("APPROVED", "CONFLICT")
        engine.dispose()
    assert len(digests) == 1


def version(number: int, name: str) -> WorkflowVersion:
    definition = WorkflowDefinition.from_dict(
        {
            "id": "wf",
            "name": name,
            "mode": "one_time",
            "trigger": {"all": []},
            "actions": [{"id": "extract", "type": "extraction", "settings": {"prompt": "p"}}],
        }
    )
    return {
        "workflow_id": "wf",
        "version": number,
        "content_hash": definition.content_hash(),
        "definition": json.dumps(definition.to_dict(), sort_keys=True),
        "source": "wf.yaml",
        "applied_by": "me",
        "applied_at": T0 + timedelta(minutes=number),
    }


def test_workflows_runs_commands_and_dead_letters(engine: sa.Engine) -> None:
    command = workflow_command(
        command_id="c1",
        workflow_id="wf",
        command="RUN",
        run_id="run-1",
        issued_by="me",
        issued_at=T0,
    )
    started = run_progress(
        run_id="run-1", workflow_id="wf", kind="STARTED", at=T0, partitions=1, mode="one_time"
    )
    scanned = run_progress(
        run_id="run-1", workflow_id="wf", kind="SCANNED", at=T0, partition=0, tasks_created=1
    )
    with engine.begin() as conn:
        fold_workflow_version(conn, version(2, "Second"), HERE)
        fold_workflow_version(conn, version(1, "First"), HERE)  # older: the row keeps v2
        fold_command(conn, command, HERE)
        fold_command(conn, command, HERE)
        fold_run_progress(conn, scanned, HERE)  # no run yet: nothing
        fold_run_progress(conn, started, HERE)
        fold_run_progress(conn, scanned, HERE)
        fold_dead_letter(
            conn,
            {
                "source_topic": "x.task-events",
                "source_partition": 3,
                "source_offset": 7,
                "key": b"k",
                "value": b"\x00",
                "reason": "bad-magic",
                "detail": "starts with 00",
                "agent": "task-states",
                "failed_at": T0,
            },
            Source(2, 41),
        )
    [workflow] = rows(engine, tables.workflows)
    assert (workflow.name, workflow.latest_version) == ("Second", 2)
    assert workflow.actions == [{"id": "extract", "type": "extraction"}]
    assert len(rows(engine, tables.workflow_versions)) == 2
    assert len(rows(engine, tables.commands)) == 1
    [run] = rows(engine, tables.runs)
    assert (run.status, run.tasks_created) == ("RUNNING", 1)
    [letter] = rows(engine, tables.dead_letters)
    assert letter.dead_letter_id == "2-41" and letter.reason == "bad-magic"


def test_a_batch_sets_a_bad_record_aside_and_still_moves_past_it(engine: sa.Engine) -> None:
    schemas = SchemaStore.shipped()
    names: dict[str, TopicName] = {"p.task-events": "task-events", "p.moderation": "moderation"}
    good = [
        Record("p.task-events", 1, offset, b"SKU-1", schemas.encode("TaskEvent", event))
        for offset, event in enumerate(events())
    ]
    bad = Record("p.task-events", 1, 4, b"SKU-2", b"\xc3\x01garbage")
    tombstone = Record("p.moderation", 0, 12, b"unknown#1.0", None, T0)
    sent: list[Any] = []
    folded = apply_batch(
        engine, [*good[:2], bad, *good[2:], tombstone], names, "projector", sent.extend
    )
    assert folded.records == 6
    [(key, letter)] = folded.dead
    assert sent == folded.dead
    assert (key, letter["reason"], letter["source_offset"], letter["agent"]) == (
        b"SKU-2",
        "short-payload",
        4,
        "projector",
    )
    assert next_offsets(engine) == {("p.task-events", 1): 5, ("p.moderation", 0): 13}
    [row] = rows(engine, tables.tasks)
    assert row.status == "COMPLETED"


def test_a_record_that_decodes_but_cannot_be_folded_is_a_dead_letter(engine: sa.Engine) -> None:
    schemas = SchemaStore.shipped()
    broken = {**version(1, "x"), "definition": "{not json"}
    names: dict[str, TopicName] = {"p.workflows": "workflows"}
    records = [
        Record("p.workflows", 0, 0, b"wf", schemas.encode("WorkflowVersion", broken)),
        Record("p.workflows", 0, 1, b"wf", schemas.encode("WorkflowVersion", version(2, "ok"))),
    ]
    folded = apply_batch(engine, records, names, "projector")
    assert [letter["reason"] for _, letter in folded.dead] == ["invalid-record"]
    assert "cannot fold" in folded.dead[0][1]["detail"]
    assert [w.latest_version for w in rows(engine, tables.workflows)] == [2]
    assert next_offsets(engine) == {("p.workflows", 0): 2}
