from datetime import UTC, datetime
from typing import Any

from catalogflow.streams.engine import (
    advance,
    apply_run_progress,
    apply_task_event,
    is_last_step,
    is_sync_failure,
    new_task,
    resend_transition,
    retry_wanted,
    sync_slip,
    task_event,
    task_id_for,
    transition_applied,
)
from catalogflow.streams.records import (
    ActionOutput,
    Origin,
    RunProgress,
    RunProgressKind,
    RunTransition,
    SyncTaskState,
    Task,
    TaskState,
    TaskStatus,
    run_progress,
)

NOW = datetime(2026, 5, 1, tzinfo=UTC)
ORIGIN: Origin = {"topic": "catalogflow.partition-commands", "partition": 0, "offset": 7}


def task() -> Task:
    return new_task(
        run_id="wf.v1.abc",
        workflow_id="wf",
        workflow_version=1,
        sku="SKU-1",
        steps=["a", "b"],
        definition_json="{}",
        input_hash="h",
        now=NOW,
        origin=ORIGIN,
    )


def output(action: str) -> ActionOutput:
    return {
        "action_id": action,
        "action_type": "t",
        "fields": [],
        "model": None,
        "prompt_version": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "skipped": None,
    }


CHANGE_FIELDS = frozenset(RunTransition.__annotations__)


def change(**fields: Any) -> RunTransition:
    base: RunTransition = {
        "task_id": "SKU-1@wf.v1.abc",
        "action_id": None,
        "from_action_id": None,
        "from_status": None,
        "to_status": "WAITING",
        "at": NOW,
        "cost": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "source_partition": -1,
        "source_offset": -1,
    }
    return {**base, **fields}  # type: ignore[typeddict-item]


def progress(kind: RunProgressKind, **fields: Any) -> RunProgress:
    """A progress event; a TRANSITION carries its one change folded, as the task-events
    agent sends them."""
    base: dict[str, Any] = {"partitions": 2, "workflow_version": 1, "mode": "one_time"}
    if kind == "TRANSITION":
        moved = {k: v for k, v in fields.items() if k in CHANGE_FIELDS}
        fields = {k: v for k, v in fields.items() if k not in CHANGE_FIELDS}
        fields["transitions"] = [change(**moved)]
    return run_progress(run_id="wf.v1.abc", workflow_id="wf", kind=kind, at=NOW, **base | fields)


def folded(*changes: RunTransition) -> RunProgress:
    return run_progress(
        run_id="wf.v1.abc", workflow_id="wf", kind="TRANSITION", at=NOW, transitions=list(changes)
    )


def test_task_ids_put_the_sku_first_and_differ_per_source_state() -> None:
    assert task_id_for("run", "SKU-1") == "SKU-1@run"
    assert task_id_for("run", "SKU-1", "a" * 64) == "SKU-1@run~aaaaaaaaaaaa"


def test_advance_accumulates_outputs_and_history() -> None:
    first = advance(task(), output("a"))
    assert (first["step_index"], first["history"], len(first["outputs"])) == (1, ["a"], 1)
    assert not is_last_step(first)
    assert is_last_step(advance(first, output("b")))


def test_duplicates_and_replays_of_earlier_steps_change_nothing() -> None:
    t = task()
    state = apply_task_event(None, task_event(t, "WAITING", now=NOW))
    state = apply_task_event(state, task_event(t, "RUNNING", now=NOW))
    assert state is not None
    assert apply_task_event(state, task_event(t, "RUNNING", now=NOW)) is None  # duplicate
    assert apply_task_event(state, task_event(t, "WAITING", now=NOW)) is None  # replay
    later = advance(t, output("a"))
    moved = apply_task_event(state, task_event(later, "WAITING", now=NOW))
    assert moved is not None and moved["step_index"] == 1
    assert [h["status"] for h in moved["history"]] == ["WAITING", "RUNNING", "WAITING"]


def test_a_retry_is_a_new_attempt_and_moves_an_error_on() -> None:
    t = task()
    failure = task_event(t, "ERROR", now=NOW, failure_category="INVALID_OUTPUT")
    failed = apply_task_event(None, failure)
    assert failed is not None
    assert apply_task_event(failed, task_event(t, "WAITING", now=NOW)) is None
    again: Task = {**t, "attempt": 1}
    retried = apply_task_event(failed, task_event(again, "WAITING", now=NOW))
    assert retried is not None and retried["attempt"] == 1 and retried["status"] == "WAITING"


def test_one_time_run_completes_when_every_partition_scanned_and_every_task_ended() -> None:
    run = apply_run_progress(None, progress("STARTED"))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=1))
    run = apply_run_progress(run, progress("TRANSITION", action_id="a", to_status="WAITING"))
    run = apply_run_progress(
        run,
        progress(
            "TRANSITION",
            action_id="b",
            from_action_id="a",
            from_status="WAITING",
            to_status="COMPLETED",
        ),
    )
    assert run is not None and run["status"] == "RUNNING"  # partition 1 has not reported
    run = apply_run_progress(run, progress("SCANNED", partition=1, tasks_created=0))
    assert run is not None and run["status"] == "COMPLETED"
    assert run["counts"] == {"COMPLETED": 1}
    assert run["action_counts"] == {"b:COMPLETED": 1}


def test_a_retried_task_reopens_a_completed_run() -> None:
    run = apply_run_progress(None, progress("STARTED", partitions=1))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=1))
    run = apply_run_progress(run, progress("TRANSITION", to_status="ERROR"))
    assert run is not None and run["status"] == "COMPLETED"
    run = apply_run_progress(run, progress("TRANSITION", from_status="ERROR", to_status="WAITING"))
    assert run is not None and (run["status"], run["finished_at"]) == ("RUNNING", None)


def test_continuous_runs_count_tasks_as_they_appear_and_never_complete() -> None:
    run = apply_run_progress(None, progress("STARTED", partitions=1, mode="continuous"))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=1))
    run = apply_run_progress(run, progress("TRANSITION", to_status="WAITING"))
    run = apply_run_progress(
        run, progress("TRANSITION", from_status="WAITING", to_status="COMPLETED")
    )
    assert run is not None
    assert (run["tasks_created"], run["status"]) == (1, "RUNNING")


def test_stop_is_final_and_progress_without_a_run_is_dropped() -> None:
    assert apply_run_progress(None, progress("TRANSITION", to_status="WAITING")) is None
    run = apply_run_progress(None, progress("STARTED"))
    run = apply_run_progress(run, progress("CONTROL", to_status="STOPPED"))
    run = apply_run_progress(run, progress("CONTROL", to_status="RUNNING"))
    assert run is not None and run["status"] == "STOPPED" and run["finished_at"] == NOW


def test_a_repeated_scan_sets_its_partition_again_instead_of_adding() -> None:
    run = apply_run_progress(None, progress("STARTED", partitions=2))
    for _ in range(3):  # replayed after crashes
        run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=5))
    assert run is not None
    assert (run["partitions_scanned"], run["tasks_created"]) == (1, 5)


def test_a_transition_sent_again_after_a_crash_is_applied_once() -> None:
    """The crash test's double count: the TRANSITION of task-events offset 268 was
    applied, the state write behind it was lost in the kill, so the replayed event
    makes the state again and sends its TRANSITION again, with the same source."""
    run = apply_run_progress(None, progress("STARTED", partitions=1))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=1))
    created = change(action_id="a", to_status="WAITING", source_partition=2, source_offset=37)
    running = change(
        action_id="a",
        from_action_id="a",
        from_status="WAITING",
        to_status="RUNNING",
        source_partition=2,
        source_offset=268,
    )
    run = apply_run_progress(run, folded(created))
    run = apply_run_progress(run, folded(running))
    assert run is not None
    assert transition_applied(run, running) and transition_applied(run, created)
    again = apply_run_progress(run, folded(running))
    assert again is not None and again["counts"] == {"RUNNING": 1} == run["counts"]
    # A later event of the same partition, or one of another partition, is new.
    assert not transition_applied(run, {**running, "source_offset": 269})
    assert not transition_applied(run, {**running, "source_partition": 1})
    # Progress written before sources were recorded is always applied, as before.
    assert not transition_applied(run, {**running, "source_offset": -1})


def test_a_replayed_batch_folded_with_other_boundaries_counts_each_change_once() -> None:
    """After a crash the task-events agent's batches need not start where they did:
    one TRANSITION can hold changes the run has and changes it lacks."""
    run = apply_run_progress(None, progress("STARTED", partitions=1))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=2))
    first = change(task_id="A", to_status="WAITING", source_partition=0, source_offset=10)
    second = change(task_id="B", to_status="WAITING", source_partition=0, source_offset=11)
    done = change(
        task_id="A",
        from_status="WAITING",
        to_status="COMPLETED",
        source_partition=0,
        source_offset=12,
    )
    run = apply_run_progress(run, folded(first, second))
    run = apply_run_progress(run, folded(second, done))  # the replay's batch starts later
    assert run is not None
    assert run["counts"] == {"WAITING": 1, "COMPLETED": 1}
    assert run["applied_sources"] == {"0": 12}


def test_a_transition_written_before_changes_were_folded_still_counts() -> None:
    run = apply_run_progress(None, progress("STARTED", partitions=1))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=1))
    legacy = run_progress(
        run_id="wf.v1.abc",
        workflow_id="wf",
        kind="TRANSITION",
        at=NOW,
        task_id="SKU-1@wf.v1.abc",
        action_id="a",
        to_status="COMPLETED",
        cost=0.5,
        source_partition=3,
        source_offset=7,
    )
    run = apply_run_progress(run, legacy)
    assert run is not None
    assert (run["status"], run["counts"], run["cost"]) == ("COMPLETED", {"COMPLETED": 1}, 0.5)
    assert run["applied_sources"] == {"3": 7}


def test_a_task_event_carries_only_the_output_of_the_step_that_made_it() -> None:
    made: ActionOutput = {**output("a"), "cost": 0.5, "input_tokens": 3, "output_tokens": 2}
    step1 = advance(task(), made)
    event = task_event(step1, "WAITING", now=NOW, spent=made)
    assert (event["step_output"], event["outputs"]) == (made, [])
    assert event["details"]["cost"] == "0.5"
    final = task_event(advance(step1, output("b")), "COMPLETED", now=NOW, with_outputs=True)
    assert final["step_output"] is None and len(final["outputs"]) == 2
    # The worker's task state keeps what it kept before: the full outputs, not the step's.
    state = apply_task_event(None, event)
    assert state is not None and state["outputs"] == []


def test_a_task_event_names_the_input_snapshot_of_its_task() -> None:
    t = task()
    assert task_event(t, "WAITING", now=NOW)["details"] == {"attempt": "0", "input_hash": "h"}
    # A sync's slip has no input hash: its events carry only the attempt.
    syncing: SyncTaskState = {
        "task_id": t["task_id"],
        "run_id": t["run_id"],
        "workflow_id": t["workflow_id"],
        "sku": t["sku"],
        "steps": t["steps"],
        "step_index": 1,
        "attempt": 0,
        "request_ids": [],
        "outcomes": {},
    }
    assert task_event(sync_slip(syncing), "SYNCED", now=NOW)["details"] == {"attempt": "0"}


def test_a_state_remembers_its_source_and_knows_its_own_event_again() -> None:
    t = task()
    state = apply_task_event(None, task_event(t, "WAITING", now=NOW), (2, 37))
    assert state is not None
    assert (state["source_partition"], state["source_offset"]) == (2, 37)
    running = task_event(t, "RUNNING", now=NOW)
    assert resend_transition(state, task_event(t, "WAITING", now=NOW))
    assert not resend_transition(state, running) and not resend_transition(None, running)
    moved = apply_task_event(state, running, (2, 268))
    assert moved is not None and moved["source_offset"] == 268
    assert resend_transition(moved, running)  # the step reported again after a crash
    assert not resend_transition(moved, task_event(t, "WAITING", now=NOW))  # an older step
    # A state written before sources were recorded: sending again could count twice.
    assert not resend_transition({**moved, "source_offset": -1}, running)


def test_a_failed_sync_is_told_from_a_failed_action_and_retried_by_category_and_action() -> None:
    t = task()
    at_b = advance(t, output("a"))
    action_failed = apply_task_event(
        None,
        task_event(at_b, "ERROR", now=NOW, failure_category="INVALID_OUTPUT", with_outputs=True),
    )
    done = advance(at_b, output("b"))
    waiting = apply_task_event(None, task_event(done, "WAITING", now=NOW, with_outputs=True))
    syncing: Task = {**done, "outputs": []}
    sync_failed = apply_task_event(
        waiting, task_event(syncing, "ERROR", now=NOW, failure_category="SYNC_ISSUE")
    )
    assert action_failed is not None and sync_failed is not None
    assert sync_failed["action_id"] == "b" and len(sync_failed["outputs"]) == 2
    assert not is_sync_failure(action_failed) and is_sync_failure(sync_failed)
    failed_first = apply_task_event(None, task_event(t, "ERROR", now=NOW))
    assert failed_first is not None and not is_sync_failure(failed_first)

    assert retry_wanted(sync_failed, None, None) and retry_wanted(sync_failed, "SYNC_ISSUE", "sync")
    assert not retry_wanted(sync_failed, None, "b")  # its action is the write-back
    assert retry_wanted(action_failed, "INVALID_OUTPUT", "b")
    assert not retry_wanted(action_failed, "SYNC_ISSUE", None)
    assert not retry_wanted(action_failed, None, "sync")
    assert not retry_wanted(waiting, None, None) and not retry_wanted(None, None, None)


def test_a_retried_sync_moves_its_task_back_and_forward_once_and_completes_the_run_again() -> None:
    done = advance(advance(task(), output("a")), output("b"))
    slip: Task = {**done, "outputs": []}
    retry: Task = {**slip, "attempt": 1}
    run = apply_run_progress(None, progress("STARTED", partitions=1))
    run = apply_run_progress(run, progress("SCANNED", partition=0, tasks_created=1))
    state: TaskState | None = None
    events = [
        task_event(done, "WAITING", now=NOW, with_outputs=True),
        task_event(slip, "ERROR", now=NOW, failure_category="SYNC_ISSUE"),
        task_event(retry, "WAITING", now=NOW),  # retry-failed
        task_event(retry, "WAITING", now=NOW),  # the retry delivered twice
        task_event(retry, "SYNCED", now=NOW),
    ]
    statuses: list[tuple[TaskStatus, str]] = []
    for event in events:
        after = apply_task_event(state, event)
        if after is None:
            continue
        run = apply_run_progress(
            run,
            progress(
                "TRANSITION",
                action_id=after["action_id"],
                from_action_id=state["action_id"] if state else None,
                from_status=state["status"] if state else None,
                to_status=after["status"],
            ),
        )
        assert run is not None
        statuses.append((after["status"], run["status"]))
        state = after
    assert statuses == [
        ("WAITING", "RUNNING"),
        ("ERROR", "COMPLETED"),
        ("WAITING", "RUNNING"),
        ("SYNCED", "COMPLETED"),
    ]
    assert run is not None and run["counts"] == {"SYNCED": 1}
    assert run["action_counts"] == {"b:SYNCED": 1} and run["finished_at"] == NOW


def test_a_new_task_carries_the_coordinates_of_the_event_that_created_it() -> None:
    assert task()["origin"] == ORIGIN
