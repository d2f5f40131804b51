"""Every handler over hostile records: a product change, a step, a task event, a run's
progress, a review decision or a sync request built from any texts (empty, 100k
characters, HTML and script, planted instructions, right-to-left and zero-width
characters, SKUs longer than Magento accepts) either gives a result that is writable
on the wire, a failure with its category, or a dead letter with its reason — nothing
raises out of the handler, so the worker never stops on a bad event."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast, get_args

import pytest
from catalogflow.agents.moderation import _validate as validate_decision
from catalogflow.agents.progress import RunGauges, fold_run_progress, fold_task_events
from catalogflow.agents.sink import SinkBatch
from catalogflow.streams.app import Topology
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.definitions import ActionSpec, ModerationPolicy
from catalogflow.streams.engine import (
    TERMINAL,
    advance,
    apply_run_progress,
    apply_task_event,
    check_task_event,
    new_task,
    run_transition,
)
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.moderation import (
    apply_decision,
    matches,
    review_reason,
    reviewed_output,
)
from catalogflow.streams.products import MAX_SKU_LENGTH, apply_change, validate_change
from catalogflow.streams.records import (
    FailureCategory,
    FieldOutput,
    ModerationDecision,
    ProductChanged,
    ProductSnapshot,
    RunProgress,
    RunState,
    SyncRequest,
    TaskEvent,
    TaskState,
)
from catalogflow.streams.remembered import remembered
from catalogflow.streams.review import decision as build_decision
from catalogflow.streams.steps import Failed, Produced, Skipped, run_step
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.hostile import LONG_SKUS, records, texts
from tests.scripted_model import ScriptedModels
from tests.unit.test_action_contract import CASES, PRODUCT, registry, with_value
from tests.unit.test_codec import SAMPLES
from tests.unit.test_moderation import item as moderation_item
from tests.unit.test_sink_batch import Event, FakeTopology, Message, RecordingTarget

SCHEMAS = SchemaStore.shipped()
CATEGORIES = set(get_args(FailureCategory))
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FEW = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def writable(schema: str, record: Any) -> None:
    """``record`` encodes with ``schema`` and decodes back: it can go on its topic."""
    SCHEMAS.decode(SCHEMAS.encode(schema, record), schema)


def event_of(topic: str, offset: int, value: bytes, key: bytes | None = None) -> Any:
    return Event(Message(topic, 0, offset, key, value))


# --------------------------------------------------------------------------- products


def _changes() -> st.SearchStrategy[ProductChanged]:
    """Product changes of any shape, a third of them with a plausible SKU and event id
    (so enough of them pass validation to reach ``apply_change``)."""
    plausible = st.fixed_dictionaries(
        {"sku": st.sampled_from(["CAT-DRY-2KG", "ß-ñ-1"]), "event_id": st.just("e-1")}
    )
    return st.tuples(records("ProductChanged"), st.none() | plausible).map(
        lambda pair: cast(ProductChanged, {**pair[0], **(pair[1] or {})})
    )


@settings(max_examples=80, deadline=None)
@given(_changes(), st.none() | records("ProductSnapshot"))
def test_a_hostile_change_is_refused_with_a_reason_or_folds_into_a_writable_snapshot(
    change: ProductChanged, before: ProductSnapshot | None
) -> None:
    try:
        validate_change(change)
    except InvalidMessage as exc:
        assert exc.reason == "invalid-record" and exc.detail
        return
    assert 0 < len(change["sku"]) <= MAX_SKU_LENGTH
    snapshot = apply_change(before, change)
    writable("ProductSnapshot", snapshot)
    assert snapshot["last_event_id"] == change["event_id"] or snapshot is before


@pytest.mark.parametrize("sku", [*LONG_SKUS, "", " ", " CAT", "CAT\t"])
def test_a_sku_magento_would_refuse_is_dead_lettered(sku: str) -> None:
    change = cast(ProductChanged, {**SAMPLES["ProductChanged"], "sku": sku})
    with pytest.raises(InvalidMessage) as info:
        validate_change(change)
    assert info.value.reason == "invalid-record" and "sku" in info.value.detail


# --------------------------------------------------------------------------- steps


def _hostile_copy(value: Any, draw: st.DrawFn) -> Any:
    """``value`` with every string replaced by a hostile text."""
    if isinstance(value, str):
        return draw(texts)
    if isinstance(value, list):
        return [_hostile_copy(v, draw) for v in value]
    if isinstance(value, dict):
        return {k: _hostile_copy(v, draw) for k, v in value.items()}
    return value


@st.composite
def _step_inputs(draw: st.DrawFn) -> tuple[str, ProductSnapshot, dict[str, Any], bool]:
    """An action type, the product with hostile texts in its source fields, a model
    answer with hostile texts in place of each string, and whether to keep the answer."""
    kind = draw(st.sampled_from(sorted(CASES)))
    product = PRODUCT
    for ref in ("name", "description", "brand", *CASES[kind].reads):
        product = with_value(product, ref, draw(texts))
    answers = {name: _hostile_copy(a, draw) for name, a in CASES[kind].answers.items()}
    return kind, product, answers, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(_step_inputs())
async def test_a_step_on_hostile_texts_produces_a_carried_output_or_fails_with_a_category(
    inputs: tuple[str, ProductSnapshot, dict[str, Any], bool],
) -> None:
    kind, product, hostile_answers, use_hostile = inputs
    case = CASES[kind]
    models = ScriptedModels(hostile_answers if use_hostile else case.answers)
    action = registry(models).get(kind)
    assert action is not None
    spec = ActionSpec(id="step", type=kind, settings=case.settings, reads=case.reads)
    step = await run_step(action, spec, product, previous_outputs=case.previous)
    assert isinstance(step, Skipped | Failed | Produced)
    if isinstance(step, Failed):
        assert step.failure.category in CATEGORIES and step.failure.message
        return
    task = new_task(
        run_id="w.v1.r",
        workflow_id="w",
        workflow_version=1,
        sku=product["sku"],
        steps=["step"],
        definition_json="{}",
        input_hash="h",
        now=NOW,
        origin={"topic": "partition-commands", "partition": 0, "offset": 0},
    )
    writable("Task", advance(task, step.output))


# --------------------------------------------------------------------------- engine


def _task_events(task_id: str = "CAT@run-1") -> st.SearchStrategy[TaskEvent]:
    """Task events of one task, with details that may hold any text."""
    details = st.dictionaries(
        st.sampled_from(["attempt", "cost", "input_tokens", "output_tokens", "input_hash"]),
        st.one_of(texts, st.integers(-5, 2**40).map(str), st.sampled_from(["nan", "inf", "1e9"])),
        max_size=4,
    )
    return st.tuples(records("TaskEvent"), details).map(
        lambda pair: cast(TaskEvent, {**pair[0], "task_id": task_id, "details": pair[1]})
    )


def _rank(status: str) -> int:
    ranks = ["WAITING", "PAUSED", "RUNNING", "AWAITING_MODERATION"]
    return ranks.index(status) if status in ranks else 4


def _progress(state: TaskState) -> tuple[int, int, int]:
    return (state["attempt"], state["step_index"], _rank(state["status"]))


def _event_progress(event: TaskEvent) -> tuple[int, int, int]:
    attempt = int(event["details"].get("attempt", "0"))
    return (attempt, event["step_index"], _rank(event["status"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(_task_events(), max_size=8))
def test_task_events_in_any_order_are_refused_or_only_move_a_task_forward(
    events: list[TaskEvent],
) -> None:
    state: TaskState | None = None
    accepted: list[TaskEvent] = []
    for event in events:
        try:
            check_task_event(event)
        except InvalidMessage as exc:
            assert exc.reason == "invalid-record" and "details." in exc.detail
            continue
        accepted.append(event)
        after = apply_task_event(state, event, (0, len(accepted)))
        if after is None:
            assert state is not None and _event_progress(event) <= _progress(state)
            continue
        transition = run_transition(state, after, event["details"])
        assert math.isfinite(transition["cost"])
        writable("TaskState", after)
        state = after
    if accepted:
        assert state is not None
        assert _progress(state) == max(_event_progress(e) for e in accepted)


@settings(max_examples=60, deadline=None)
@given(records("RunState") | st.none(), st.lists(records("RunProgress"), max_size=6))
def test_run_progress_of_any_shape_folds_into_a_writable_run_or_nothing(
    run: RunState | None, progress: list[RunProgress]
) -> None:
    for event in progress:
        run = apply_run_progress(run, event)
        if run is not None:
            writable("RunState", run)
            if run["status"] == "COMPLETED" and run["mode"] == "one_time":
                done = sum(n for status, n in run["counts"].items() if status in TERMINAL)
                assert done >= run["tasks_created"]


class _ProgressTopology(FakeTopology):
    """The sink's fake topology with the progress agents' tables."""

    def __init__(self) -> None:
        super().__init__({})
        self.tables["task-states"] = {}
        self.tables["runs"] = {}


def _raw(schema: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(strategy.map(lambda r: SCHEMAS.encode(schema, r)), st.binary(max_size=60))


@FEW
@given(st.lists(_raw("TaskEvent", _task_events()), max_size=8))
@example([SCHEMAS.encode("TaskEvent", {**SAMPLES["TaskEvent"], "details": {"attempt": "x"}})])
async def test_the_task_events_agent_dead_letters_what_it_cannot_count_and_goes_on(
    values: list[bytes],
) -> None:
    fake = _ProgressTopology()
    events = [event_of("task-events", offset, value) for offset, value in enumerate(values)]
    await fold_task_events(cast(Topology, fake), events)
    for topic, record in fake.sent:
        assert topic == "run-progress"
        writable("RunProgress", record)
    for state in fake.tables["task-states"].values():
        writable("TaskState", state)
    assert len(fake.dead_letters.sent) <= len(values)
    if values and not fake.sent and not fake.tables["task-states"]:
        assert fake.dead_letters.sent  # nothing counted: each one was dead-lettered


@FEW
@given(st.lists(_raw("RunProgress", records("RunProgress")), max_size=8))
async def test_the_runs_agent_folds_or_dead_letters_every_progress_event(
    values: list[bytes],
) -> None:
    fake = _ProgressTopology()
    events = [event_of("run-progress", offset, value) for offset, value in enumerate(values)]
    await fold_run_progress(cast(Topology, fake), events, RunGauges())
    for run in fake.tables["runs"].values():
        writable("RunState", run)
    for topic, record in fake.sent:
        assert topic == "workflow-commands"
        writable("WorkflowCommand", record)


# --------------------------------------------------------------------------- moderation


def _decisions() -> st.SearchStrategy[ModerationDecision]:
    """Decisions on the fixture item: its id, any kind, any texts in the rest."""
    targeted = st.fixed_dictionaries(
        {"field": st.none() | st.just("description") | texts, "locale": st.none() | texts}
    )
    return st.tuples(records("ModerationDecision"), targeted).map(
        lambda pair: cast(
            ModerationDecision,
            {**pair[0], **pair[1], "item_id": "CAT-DRY-2KG@run-1#1.0", "sku": "CAT-DRY-2KG"},
        )
    )


def _fields() -> st.SearchStrategy[list[FieldOutput]]:
    return st.lists(records("ModerationItem").map(lambda i: i["fields"]), max_size=1).map(
        lambda lists: [f for fields in lists for f in fields]
    )


@settings(max_examples=80, deadline=None)
@given(_fields(), st.lists(_decisions(), min_size=1, max_size=4), st.booleans())
def test_hostile_decisions_fold_into_an_outcome_and_a_writable_item(
    fields: list[FieldOutput], decisions: list[ModerationDecision], second_approval: bool
) -> None:
    item = moderation_item(*fields, second_approval=second_approval)
    for decision in decisions:
        try:
            validate_decision(decision)
        except InvalidMessage as exc:
            assert exc.reason == "invalid-record" and exc.detail
            continue
        folded = apply_decision(item, decision)
        assert folded.outcome in ("pending", "approved", "rejected", "regenerate", "ignored")
        assert folded.note
        if folded.outcome in ("approved", "rejected"):
            final = folded.item["fields"] if folded.item is not None else ()
            for row in remembered(item, decision, folded.outcome, final).values():
                writable("RememberedDecision", row)
        if folded.outcome == "approved":
            assert folded.item is not None
            reviewed_output(item, folded.item["fields"])
        if folded.item is None or folded.outcome == "approved":
            return
        writable("ModerationItem", folded.item)
        item = folded.item


@settings(max_examples=60, deadline=None)
@given(
    _fields(),
    st.sampled_from(["APPROVE", "REJECT", "EDIT", "REGENERATE"]),
    st.none() | st.just("description") | texts,
    st.none() | texts,
    st.one_of(st.none(), texts, st.lists(texts, max_size=3), st.integers(), st.floats()),
    st.none() | texts,
    texts,
)
def test_a_reviewers_hostile_input_is_a_decision_or_an_error_naming_it(
    fields: list[FieldOutput],
    kind: Any,
    field: str | None,
    locale: str | None,
    value: Any,
    feedback: str | None,
    actor: str,
) -> None:
    item = moderation_item(*fields)
    try:
        record = build_decision(
            item, kind, actor=actor, field=field, locale=locale, value=value, feedback=feedback
        )
    except CatalogflowError as exc:
        assert str(exc)
        return
    if isinstance(value, float) and math.isnan(value):
        record = {**record, "edited_value": None}
    writable("ModerationDecision", record)
    validate_decision(record)


@settings(max_examples=60, deadline=None)
@given(
    records("ModerationItem"),
    st.sampled_from(["none", "always", "below_threshold"]),
    st.none() | st.floats(0, 1),
    st.none() | st.floats(0, 1),
    st.floats(0, 1),
)
def test_the_review_gate_decides_on_any_fields(
    item: Any, mode: Any, threshold: float | None, above: float | None, sample: float
) -> None:
    policy = ModerationPolicy(
        mode=mode, threshold=threshold, auto_approve_above=above, audit_sample=sample
    )
    reason = review_reason(policy, item["fields"], item["task_id"])
    assert reason is None or reason
    if any(not f["approved"] for f in item["fields"]):
        assert reason is not None  # a flagged value always waits for a person
    matches(item, run_id=item["run_id"], min_confidence=threshold, max_confidence=above)


# --------------------------------------------------------------------------- sink


def _requests() -> st.SearchStrategy[SyncRequest]:
    target = st.sampled_from(["slow", "gone"]) | texts
    return st.tuples(records("SyncRequest"), target).map(
        lambda pair: cast(SyncRequest, {**pair[0], "target": pair[1]})
    )


@FEW
@given(st.lists(_raw("SyncRequest", _requests()), max_size=6), st.none() | texts)
async def test_the_sink_answers_every_request_or_dead_letters_it(
    values: list[bytes], fail_sku: str | None
) -> None:
    fake = FakeTopology({"slow": RecordingTarget(concurrency=2, fail_sku=fail_sku)})
    events = [event_of("sync-requests", offset, value) for offset, value in enumerate(values)]
    await SinkBatch(cast(Topology, fake)).run(events)
    results = fake.topics("sync-results")
    assert len(results) + len(fake.dead_letters.sent) == len(values)
    for result in results:
        writable("SyncResult", result)
        if result["status"] == "ERROR":
            assert result["error_category"] is not None and result["message"]
    for event in fake.topics("task-events"):
        writable("TaskEvent", event)
