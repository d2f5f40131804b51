"""Progress agents: task events become task states and run totals.

``task-events`` is keyed by SKU, so the task-state rows (keyed ``<sku>@<run>``)
live on the product's partition. Each real transition — duplicates and replays are
dropped by ``engine.apply_task_event`` — is re-keyed by run id onto
``run-progress``, where one agent per run keeps the counts exact. Both agents take
their events in batches, as the action agents do: the task-events agent folds a
batch's changes of one run into one TRANSITION, and the runs agent writes each run's
row once per batch. A change carries the task-events source of its state, so it
counts once even when a crash loses the state write or the TRANSITION and the agent
sends it again after the restart (``engine.transition_applied``).

Metrics: every transition applied to a task state counts once in
``catalogflow_task_transitions_total`` (a replay that changes no state counts nothing).
The runs agent keeps the gauges of the runs it holds (:class:`RunGauges`): ``run_id``
series only while a run is active, removed when it completes or stops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any

from catalogflow.streams.app import Topology
from catalogflow.streams.batches import decode_batch, run_batches
from catalogflow.streams.engine import (
    TERMINAL,
    apply_run_progress,
    apply_task_event,
    budget_pause,
    check_task_event,
    over_budget,
    resend_transition,
    run_transition,
)
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.runs import (
    RUN_BUDGET_USED,
    RUN_LAST_PROGRESS,
    RUN_TASKS_DONE,
    RUNS_ACTIVE,
)
from catalogflow.streams.metrics.tasks import TASK_TRANSITIONS
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.records import (
    RunProgress,
    RunState,
    RunTransition,
    TaskEvent,
    TaskState,
    Transition,
    run_progress,
)
from catalogflow.streams.workerstate import held_rows
from faust.types import EventT

#: Events either agent takes at once: each costs a table read and write, no call out.
EVENTS_PER_BATCH = 500

#: Seconds between passes over the held runs for the runs-active gauge (and the run
#: gauges of runs that moved here or away with a rebalance).
GAUGE_INTERVAL = 5.0

#: Run statuses after which a run is no longer active: its ``run_id`` series go.
FINISHED = frozenset({"COMPLETED", "STOPPED"})


class RunGauges:
    """The gauges of the runs this worker holds: tasks done, last progress and budget
    used per active run (``run_id`` label), and active runs per workflow.

    The last progress is when the runs agent here last applied a task's change of the
    run; a run this worker has not seen progress on yet (it just took the run's
    partition over, or restarted) shows when it first saw it, so a takeover looks like
    progress and a run stalled since shows as stalled from then on.
    """

    def __init__(self) -> None:
        self.last_progress: dict[str, float] = {}  # run id -> Unix time
        self.shown: dict[str, str] = {}  # run id -> workflow, of the series set
        self.workflows: set[str] = set()  # workflows with a runs-active series

    def progressed(self, run_id: str, at: float) -> None:
        self.last_progress[run_id] = max(at, self.last_progress.get(run_id, at))

    def show(self, run: RunState, now: float) -> None:
        """Set the run's series, or remove them when it has finished."""
        run_id, workflow = run["run_id"], run["workflow_id"]
        if run["status"] in FINISHED:
            self.drop(run_id)
            return
        sink = metrics()
        done = sum(count for status, count in run["counts"].items() if status in TERMINAL)
        sink.set(RUN_TASKS_DONE, float(done), workflow=workflow, run_id=run_id)
        last = self.last_progress.setdefault(run_id, now)
        sink.set(RUN_LAST_PROGRESS, last, workflow=workflow, run_id=run_id)
        budget = run["budget"]
        if budget:
            used = min(1.0, run["cost"] / budget)
            sink.set(RUN_BUDGET_USED, used, workflow=workflow, run_id=run_id)
        self.shown[run_id] = workflow

    def drop(self, run_id: str) -> None:
        """Remove every series of the run (it ended, or its partition went elsewhere)."""
        self.last_progress.pop(run_id, None)
        workflow = self.shown.pop(run_id, None)
        if workflow is None:
            return
        sink = metrics()
        for metric in (RUN_TASKS_DONE, RUN_LAST_PROGRESS, RUN_BUDGET_USED):
            sink.remove(metric, workflow=workflow, run_id=run_id)

    def refresh(self, runs: Iterable[RunState], now: float) -> None:
        """From every run this worker holds: active runs per workflow (0 for a workflow
        that had some), and the series of exactly the held active runs."""
        active: Counter[str] = Counter()
        held: set[str] = set()
        for run in runs:
            if run["status"] not in FINISHED:
                active[run["workflow_id"]] += 1
                held.add(run["run_id"])
            self.show(run, now)
        for run_id in set(self.shown) - held:
            self.drop(run_id)
        self.workflows |= set(active)
        for workflow in self.workflows:
            metrics().set(RUNS_ACTIVE, float(active[workflow]), workflow=workflow)


#: The run gauges of this process (one worker per process).
RUN_GAUGES = RunGauges()


def register(topology: Topology) -> None:
    app = topology.app
    wait = topology.settings.batch_wait

    @app.agent(topology.inputs["task-events"], name="task-events")
    async def task_events(stream: Any) -> None:
        await run_batches(
            stream, EVENTS_PER_BATCH, wait, partial(fold_task_events, topology), "task events"
        )

    @app.agent(topology.inputs["run-progress"], name="runs")
    async def run_totals(stream: Any) -> None:
        await run_batches(
            stream, EVENTS_PER_BATCH, wait, partial(fold_run_progress, topology), "run progress"
        )

    async def update_run_gauges() -> None:
        runs = (run for _, run in held_rows(app, topology.tables["runs"]))
        RUN_GAUGES.refresh(runs, topology.clock.now().timestamp())

    app.timer(interval=GAUGE_INTERVAL)(update_run_gauges)


async def fold_task_events(topology: Topology, events: list[EventT[Any]]) -> None:
    """Apply a batch of task events to the task states, then send each run's changes
    as one TRANSITION and confirm them all before the next batch is taken (and so
    before faust can commit this one)."""
    states = topology.tables["task-states"]
    outbox = Outbox(topology)
    changes: dict[str, list[RunTransition]] = {}
    workflows: dict[str, str] = {}
    decoded = await decode_batch(topology, events, TaskEvent, "task-events", check_task_event)
    for event, change in decoded:
        source = (event.message.partition, event.message.offset)
        before: TaskState | None = states.get(change["task_id"])
        after = apply_task_event(before, change, source)
        if after is not None:
            states[change["task_id"]] = after
            transition = run_transition(before, after, change["details"])
            metrics().inc(
                TASK_TRANSITIONS,
                workflow=change["workflow_id"],
                action=change["action_id"] or "-",
                status=change["status"],
            )
        elif before is not None and resend_transition(before, change):
            # The state's own event again (a replay after a crash, or the step
            # reported twice). A crash may have lost the state's TRANSITION after
            # the state reached its changelog: send it again, with the state's
            # source, and the runs agent drops it if it already has it.
            transition = run_transition(_previous(before), before, change["details"])
        else:
            continue
        changes.setdefault(change["run_id"], []).append(transition)
        workflows[change["run_id"]] = change["workflow_id"]
    for run_id, transitions in changes.items():
        folded = run_progress(
            run_id=run_id,
            workflow_id=workflows[run_id],
            kind="TRANSITION",
            at=max(t["at"] for t in transitions),
            transitions=transitions,
        )
        await outbox.send("run-progress", run_id, folded)
    await outbox.confirm()


async def fold_run_progress(
    topology: Topology, events: list[EventT[Any]], gauges: RunGauges = RUN_GAUGES
) -> None:
    """Fold a batch of run progress into the runs' totals, writing each run's row once,
    and show each run's gauges (removed once it has finished)."""
    runs = topology.tables["runs"]
    outbox = Outbox(topology)
    folded: dict[str, RunState] = {}
    for event, progress in await decode_batch(topology, events, RunProgress, "runs"):
        run_id = progress["run_id"]
        before: RunState | None = folded.get(run_id) or runs.get(run_id)
        offset = event.message.offset
        if before is not None and offset <= before["applied_offset"]:
            continue  # replayed after a crash: the row already holds this event
        run = apply_run_progress(before, progress)
        if run is None:
            continue
        run["applied_offset"] = offset
        if progress["kind"] == "TRANSITION":
            gauges.progressed(run_id, progress["at"].timestamp())
        if over_budget(run):
            # Reaching the budget pauses the run: tasks park where they are, and a
            # person decides whether to resume (and pay) or stop.
            run["budget_reached"] = True
            pause = budget_pause(run, topology.clock.now())
            await outbox.send("workflow-commands", run["workflow_id"], pause)
        folded[run_id] = run
    await outbox.confirm()
    now = topology.clock.now().timestamp()
    for run_id, run in folded.items():
        runs[run_id] = run
        gauges.show(run, now)


def _previous(state: TaskState) -> Transition | None:
    """The state's previous transition as ``action_id``/``status``, if it had one."""
    history = state["history"]
    return history[-2] if len(history) >= 2 else None
