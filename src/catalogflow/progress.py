"""Following a run from the read side: live progress per action until the run ends.

``follow_run`` polls ``ReadSide.run`` and hands each answer to a display: rich
progress bars (one per action: completed, running, awaiting moderation, synced,
failed, rate, ETA) on a terminal, plain lines when the output is a file or a pipe,
so a log or a test reads the same numbers.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Protocol, TextIO, get_args

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from catalogflow.readmodel.views import NotFound, ReadSide, RunSummary
from catalogflow.streams.engine import TERMINAL
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import TaskStatus

STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
#: Statuses the progress line always shows, in this order, after the finished ones.
ACTIVE_SHOWN: tuple[TaskStatus, ...] = ("RUNNING", "WAITING", "PAUSED")
ENDED = ("COMPLETED", "STOPPED")

#: Seconds between polls; how long a new run may take to appear on the read side;
#: how long the read side may fail while being followed.
POLL_EVERY_S = 1.0
APPEAR_WITHIN_S = 60.0
SILENT_FOR_S = 30.0
#: Plain output prints a line when the progress changes, and at least this often.
HEARTBEAT_S = 10.0


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class ActionProgress:
    """One action's share of a run: ``done`` counts tasks past it or ended before it
    (they will never come), so every bar ends at the run's task count."""

    action_id: str
    total: int
    done: int
    running: int
    awaiting: int
    synced: int
    failed: int


@dataclass(frozen=True)
class RunProgress:
    """A run's tasks in the groups the console's cards show."""

    total: int
    done: int  # ended, in any terminal status
    in_progress: int  # not ended and not waiting for a person
    awaiting: int
    synced: int
    failed: int


def run_progress(run: RunSummary) -> RunProgress:
    counts = run.counts
    done = sum(n for status, n in counts.items() if status in TERMINAL)
    awaiting = counts.get("AWAITING_MODERATION", 0)
    return RunProgress(
        total=run.tasks_created,
        done=done,
        in_progress=sum(counts.values()) - done - awaiting,
        awaiting=awaiting,
        synced=counts.get("SYNCED", 0),
        failed=counts.get("ERROR", 0),
    )


def action_progress(run: RunSummary) -> list[ActionProgress]:
    """Per action in chain order (not ``-``, the tasks not yet at an action)."""
    chain = [a for a in run.actions if a.action_id != "-"]
    out = []
    for i, totals in enumerate(chain):
        later = sum(sum(a.counts.values()) for a in chain[i + 1 :])
        ended_before = sum(
            n for a in chain[:i] for status, n in a.counts.items() if status in TERMINAL
        )
        here = totals.counts
        ended_here = sum(n for status, n in here.items() if status in TERMINAL)
        out.append(
            ActionProgress(
                action_id=totals.action_id,
                total=run.tasks_created,
                done=later + ended_before + ended_here,
                running=here.get("RUNNING", 0),
                awaiting=here.get("AWAITING_MODERATION", 0),
                synced=here.get("SYNCED", 0),
                failed=here.get("ERROR", 0),
            )
        )
    return out


def progress_line(run: RunSummary) -> str:
    """``run <id>: 120/500 done (COMPLETED 118, ERROR 2) · RUNNING 16 · WAITING 364 · PAUSED 0``,
    plus other unfinished statuses when present and a run status other than RUNNING."""
    counts = run.counts
    finished = [(s, counts[s]) for s in STATUSES if s in TERMINAL and counts.get(s)]
    done = sum(n for _, n in finished)
    line = f"run {run.run_id}: {done}/{run.tasks_created} done"
    if run.partitions_scanned < run.partitions:
        line += f" (scanned {run.partitions_scanned}/{run.partitions} partitions)"
    if finished:
        line += " (" + ", ".join(f"{s} {n}" for s, n in finished) + ")"
    shown = [*ACTIVE_SHOWN, *(s for s in STATUSES if s not in TERMINAL and s not in ACTIVE_SHOWN)]
    for status in shown:
        if status in ACTIVE_SHOWN or counts.get(status):
            line += f" · {status} {counts.get(status, 0)}"
    if run.status not in ("RUNNING", "COMPLETED"):
        line += f" · run {run.status}"
    return line


def action_line(p: ActionProgress, width: int = 0) -> str:
    """``  extract  40/500 · running 3 · awaiting moderation 0 · synced 0 · failed 2``."""
    return (
        f"  {p.action_id:<{width}}  {p.done}/{p.total} · running {p.running} · "
        f"awaiting moderation {p.awaiting} · synced {p.synced} · failed {p.failed}"
    )


def finished_line(run: RunSummary) -> str:
    errors = run.counts.get("ERROR", 0)
    outcome = f"{errors} ended in ERROR" if errors else "no task ended in ERROR"
    return f"run {run.run_id} {run.status}: {outcome}"


def waiting_for_review(run: RunSummary) -> bool:
    """Nothing moves any more until a person decides: every task has ended or waits
    for review, and at least one waits."""
    counts = run.counts
    if not counts.get("AWAITING_MODERATION") or sum(counts.values()) < run.tasks_created:
        return False
    if run.mode == "one_time" and run.partitions_scanned < run.partitions:
        return False  # partitions still scanning may create more tasks
    return all(status in TERMINAL or status == "AWAITING_MODERATION" for status in counts)


class Display(Protocol):
    def show(self, run: RunSummary) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


class PlainDisplay:
    """A run line and one line per action, printed when they change (and every
    ``HEARTBEAT_S``)."""

    def __init__(self, out: TextIO, clock: Clock) -> None:
        self.out = out
        self.clock = clock
        self._last: tuple[str, ...] = ()
        self._printed = 0.0

    def show(self, run: RunSummary) -> None:
        actions = action_progress(run)
        width = max((len(a.action_id) for a in actions), default=0)
        lines = (progress_line(run), *(action_line(a, width) for a in actions))
        now = self.clock.monotonic()
        if lines != self._last or now - self._printed >= HEARTBEAT_S:
            for line in lines:
                print(line, file=self.out, flush=True)
            self._last, self._printed = lines, now

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


class RichDisplay:
    """A rich progress bar per action, redrawn in place."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self._bars: dict[str, TaskID] = {}
        self._started = False

    def show(self, run: RunSummary) -> None:
        if not self._started:
            self.progress.start()
            self._started = True
        for p in action_progress(run):
            detail = (
                f"running {p.running} · awaiting moderation {p.awaiting} · "
                f"synced {p.synced} · failed {p.failed}"
            )
            bar = self._bars.get(p.action_id)
            if bar is None:
                bar = self.progress.add_task(p.action_id, total=p.total, detail=detail, rate="")
                self._bars[p.action_id] = bar
            speed = self.progress.tasks[self._index(bar)].speed
            rate = f"{speed:.1f}/s" if speed else ""
            self.progress.update(bar, completed=p.done, total=p.total, detail=detail, rate=rate)

    def _index(self, bar: TaskID) -> int:
        return next(i for i, t in enumerate(self.progress.tasks) if t.id == bar)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False


def display_for(out: TextIO | None = None, clock: Clock | None = None) -> Display:
    """Rich bars on a terminal, plain lines otherwise."""
    out = out or sys.stdout
    console = Console(file=out)
    if console.is_terminal:
        return RichDisplay(console)
    return PlainDisplay(out, clock or SystemClock())


def follow_run(
    side: ReadSide,
    run_id: str,
    display: Display,
    clock: Clock | None = None,
    *,
    where: str = "the read side",
) -> RunSummary:
    """Poll the run until it is COMPLETED or STOPPED, or waits for review, showing
    its progress; return its last totals.

    Raises :class:`CatalogflowError` if the run does not appear within
    ``APPEAR_WITHIN_S`` or the read side fails for ``SILENT_FOR_S``.
    """
    clock = clock or SystemClock()
    started = last_answer = clock.monotonic()
    seen = False
    try:
        while True:
            run: RunSummary | None
            try:
                run = side.run(run_id)
                last_answer = clock.monotonic()
            except NotFound:
                run = None
                last_answer = clock.monotonic()
            except CatalogflowError:
                if clock.monotonic() - last_answer > SILENT_FOR_S:
                    raise
                run = None
            if run is None and not seen and clock.monotonic() - started > APPEAR_WITHIN_S:
                raise CatalogflowError(
                    f"{where} has not seen run {run_id} after {APPEAR_WITHIN_S:g} s; "
                    "is a worker running, and a projector (`catalogflow projector`)?"
                )
            if run is not None:
                if not seen and run.mode != "one_time":
                    display.note(f"{run.mode} run: it completes only when stopped")
                seen = True
                display.show(run)
                if run.status in ENDED:
                    display.close()
                    display.note(finished_line(run))
                    return run
                if waiting_for_review(run):
                    display.close()
                    display.note(
                        f"{run.counts['AWAITING_MODERATION']} results wait for review: "
                        f"catalogflow moderation list --run {run_id}"
                    )
                    return run
            clock.sleep(POLL_EVERY_S)
    finally:
        display.close()
