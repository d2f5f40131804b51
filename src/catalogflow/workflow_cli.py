"""``catalogflow workflow …``: check, publish, run and inspect workflows.

* ``validate FILE...`` checks definitions and counts the products they match now;
* ``apply FILE`` publishes a definition as a new version (or keeps an unchanged one);
* ``run WORKFLOW_ID [--wait]`` starts a run of the latest version and can follow it;
* ``pause|resume|stop WORKFLOW_ID RUN_ID`` control a run;
* ``retry-failed RUN_ID [--category C] [--action A] [--wait]`` runs its Error tasks
  again: a failed action from its step, a failed sync (action ``sync``) with only the
  requests that failed;
* ``list``, ``show WORKFLOW_ID``, ``status RUN_ID [--follow]`` and ``results RUN_ID``
  read the read side (``readside.py``): the API when one answers, else the read model.

Exit codes: 0 done, 1 failed (no broker, no read side, unknown workflow or run, a task
ended in ERROR under ``run --wait``, ``status --follow`` or again under ``retry-failed
--wait``, nothing to retry), 2 invalid input (a definition, a run id that is not the
workflow's, an unknown failure category, action or filter), 130 when Ctrl-C stops
following (the run goes on).

``validate`` reads the products table's compacted changelog from the beginning up to
the current end offsets, without a consumer group's commits; that live count never
changes the exit code: a missing broker only skips it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, get_args

from pydantic import BaseModel

from catalogflow.connectors.targets.registry import load_targets
from catalogflow.dryrun import add_dryrun_commands
from catalogflow.progress import (
    APPEAR_WITHIN_S,
    ENDED,
    POLL_EVERY_S,
    SILENT_FOR_S,
    STATUSES,
    Clock,
    Display,
    PlainDisplay,
    SystemClock,
    display_for,
    finished_line,
    follow_run,
    waiting_for_review,
)
from catalogflow.readmodel.views import (
    MAX_PAGE,
    BadQuery,
    NotFound,
    ReadSide,
    RunSummary,
    TaskFilter,
    TaskResult,
)
from catalogflow.readside import add_read_side_options, export, for_args, where
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.control import apply_definition, control_run, retry_failed, start_run
from catalogflow.streams.definitions import DefinitionError, WorkflowDefinition
from catalogflow.streams.engine import SYNC_ACTION, TERMINAL
from catalogflow.streams.errors import CatalogflowError, ConfigError
from catalogflow.streams.reader import (
    PROBE_TIMEOUT_S,
    PROGRESS_EVERY,
    BrokerUnavailable,
    TopicMissing,
    read_latest,
)
from catalogflow.streams.records import FailureCategory, ProductSnapshot, SyncStatus
from catalogflow.streams.rules import matches
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

#: A line of ``retry-failed --json``: JSON, not a record.
JsonObject = dict[str, Any]
FAILURE_CATEGORIES: tuple[FailureCategory, ...] = get_args(FailureCategory)
SYNC_STATUSES: tuple[SyncStatus, ...] = get_args(SyncStatus)
MODERATION_STATES = ("PENDING", "APPROVED", "REJECTED", "EDITED")


def add_workflow_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``workflow validate|apply|run|pause|resume|stop|retry-failed|status|results``."""
    workflow = subparsers.add_parser(
        "workflow",
        help="check, publish, run and inspect workflows",
        description="Check, publish, run and inspect workflows.",
    )
    actions = workflow.add_subparsers(dest="workflow_command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + "."
        )
        return parser

    validate = command(
        "validate", "validate definition files and count the products they match now"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="YAML definitions")
    validate.add_argument(
        "--count",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count live matching products (default: when a broker answers within "
        f"{PROBE_TIMEOUT_S:g} s)",
    )
    validate.set_defaults(run=run_validate)

    apply = command("apply", "validate a definition file and publish it as the next version")
    apply.add_argument("file", type=Path, metavar="FILE", help="YAML definition")
    apply.add_argument(
        "--allow-type",
        action="append",
        default=[],
        metavar="TYPE",
        help="accept an action type provided by a plugin (repeatable)",
    )
    _add_by(apply)
    apply.set_defaults(run=run_apply)

    run = command("run", "start a run of a workflow's latest applied version")
    run.add_argument("workflow_id", metavar="WORKFLOW_ID", help="id of an applied workflow")
    run.add_argument(
        "--budget",
        type=float,
        metavar="COST",
        help="hard budget: the run pauses itself when its model cost reaches it",
    )
    _add_by(run)
    run.add_argument(
        "--wait",
        action="store_true",
        help="follow the run until it completes or stops (Ctrl-C stops following, not the "
        "run); exit 1 if a task ended in ERROR",
    )
    add_read_side_options(run)
    run.set_defaults(run=run_run)

    for name, summary in (
        ("pause", "pause a run: running tasks finish, the rest wait"),
        ("resume", "resume a paused run"),
        ("stop", "stop a run: tasks not yet started are skipped"),
    ):
        control = command(name, summary)
        control.add_argument("workflow_id", metavar="WORKFLOW_ID", help="the run's workflow")
        control.add_argument("run_id", metavar="RUN_ID", help="as `workflow run` printed it")
        _add_by(control)
        control.set_defaults(run=run_control, control=name.upper())

    retry = command("retry-failed", "run a run's Error tasks again from where they failed")
    retry.add_argument("run_id", metavar="RUN_ID", help="as `workflow run` printed it")
    retry.add_argument(
        "--category",
        type=str.upper,
        choices=FAILURE_CATEGORIES,
        metavar="CATEGORY",
        help=f"only tasks that failed with this category: {', '.join(FAILURE_CATEGORIES)}",
    )
    retry.add_argument(
        "--action",
        metavar="ACTION_ID",
        help=f"only tasks that failed in this action; {SYNC_ACTION!r} is the write-back",
    )
    _add_by(retry)
    retry.add_argument(
        "--wait",
        action="store_true",
        help="follow the retried tasks until they end and the run counts them; exit 1 if one "
        "ended in ERROR again",
    )
    retry.add_argument("--json", action="store_true", help="print what was retried as JSON")
    add_read_side_options(retry)
    retry.set_defaults(run=run_retry_failed)

    status = command("status", "show a run's totals: status, tasks by status and by action")
    status.add_argument("run_id", metavar="RUN_ID", help="as `workflow run` printed it")
    status.add_argument(
        "--follow",
        action="store_true",
        help="show live progress per action until the run ends (exit 1 if a task ended in ERROR)",
    )
    status.add_argument("--json", action="store_true", help="print the run as JSON")
    add_read_side_options(status)
    status.set_defaults(run=run_status)

    results = command(
        "results", "list a run's tasks and results, filtered and paged, or export them"
    )
    results.add_argument("run_id", metavar="RUN_ID", help="as `workflow run` printed it")
    results.add_argument("--action", metavar="ACTION_ID", help="tasks with output of this action")
    results.add_argument(
        "--status",
        action="append",
        type=str.upper,
        choices=STATUSES,
        metavar="STATUS",
        help=f"only tasks in this status (repeatable): {', '.join(STATUSES)}",
    )
    results.add_argument(
        "--failure-category",
        type=str.upper,
        choices=FAILURE_CATEGORIES,
        metavar="CATEGORY",
        help=f"only tasks that failed so: {', '.join(FAILURE_CATEGORIES)}",
    )
    results.add_argument(
        "--confidence-below",
        type=float,
        metavar="X",
        help="only tasks with a field below this confidence",
    )
    results.add_argument(
        "--moderation-state",
        type=str.upper,
        choices=MODERATION_STATES,
        metavar="STATE",
        help=f"only tasks whose review is: {', '.join(MODERATION_STATES)}",
    )
    results.add_argument(
        "--sync-status",
        type=str.upper,
        choices=SYNC_STATUSES,
        metavar="STATUS",
        help=f"only tasks whose write-back is: {', '.join(SYNC_STATUSES)}",
    )
    results.add_argument("--search", metavar="TEXT", help="SKU or generated text contains TEXT")
    results.add_argument(
        "--limit", type=_page_size, default=100, help=f"tasks per page, 1..{MAX_PAGE} (default 100)"
    )
    results.add_argument("--cursor", help="the next page, as the last page named it")
    results.add_argument(
        "--export",
        nargs=2,
        metavar=("csv|jsonl", "FILE"),
        type=str,
        action=_ExportAction,
        help="write every selected task (all pages) to FILE as CSV or JSON Lines",
    )
    results.add_argument("--json", action="store_true", help="print the page as JSON")
    add_read_side_options(results)
    results.set_defaults(run=run_results)

    listing = command("list", "list the applied workflows with their latest run")
    listing.add_argument("--json", action="store_true", help="print the workflows as JSON")
    add_read_side_options(listing)
    listing.set_defaults(run=run_list)

    show = command("show", "show a workflow and its versions")
    show.add_argument("workflow_id", metavar="WORKFLOW_ID", help="id of an applied workflow")
    show.add_argument("--json", action="store_true", help="print the workflow as JSON")
    add_read_side_options(show)
    show.set_defaults(run=run_show)

    add_dryrun_commands(actions)


def _add_by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        metavar="NAME",
        default=None,
        help="who does this, for the audit trail (default: your login name)",
    )


def _page_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a page size in 1..{MAX_PAGE}")
    return size


class _ExportAction(argparse.Action):
    """``--export csv|jsonl FILE`` → ``("csv"|"jsonl", FILE)``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        fmt, target = list(values or ["", ""])
        if fmt.lower() not in ("csv", "jsonl"):
            parser.error(f"--export: format must be csv or jsonl, not {fmt!r}")
        setattr(namespace, self.dest, (fmt.lower(), target))


def _issuer(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (e.g. a container without a passwd entry)
        return "cli"


# --------------------------------------------------------------------------- validate


def run_validate(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    targets = load_targets(settings).names  # with the sync_plugins ones
    valid: list[tuple[Path, WorkflowDefinition]] = []
    invalid = 0
    for path in args.files:
        try:
            definition = load_workflow(path, sync_targets=targets)
        except DefinitionError as exc:
            invalid += 1
            print(exc)
            continue
        valid.append((path, definition))
        chain = " → ".join(a.id for a in definition.actions)
        count = len(definition.actions)
        print(
            f"{path}: ok — {definition.id} ({definition.mode}), "
            f"{count} action{'s' if count != 1 else ''}: {chain}"
        )
    if valid and args.count is not False:
        _print_live_counts(settings, valid)
    return EXIT_INVALID if invalid else EXIT_OK


def _print_live_counts(
    settings: Settings, definitions: Sequence[tuple[Path, WorkflowDefinition]]
) -> None:
    topic = changelog_topic(settings, "products")
    try:
        snapshots = read_latest(
            settings,
            topic,
            ProductSnapshot,
            progress=_stderr_progress("read", "changelog records"),
            missing_ok=False,
        ).values()
    except BrokerUnavailable:
        print(f"live count: skipped (no broker at {settings.bootstrap_servers})")
        return
    except TopicMissing:
        print(f"live count: 0 products (topic {topic} does not exist yet; has a worker run?)")
        return
    total, counts = count_matches(
        [d for _, d in definitions], snapshots, progress=_stderr_progress("checked", "products")
    )
    for (path, definition), count in zip(definitions, counts, strict=True):
        print(f"{path}: live count: {count} of {total} products match {definition.id}")


def count_matches(
    definitions: Sequence[WorkflowDefinition],
    snapshots: Iterable[ProductSnapshot],
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[int, list[int]]:
    """Return (products seen, matching products per definition). Deleted products are
    not counted as products and never match."""
    total = 0
    counts = [0] * len(definitions)
    for snapshot in snapshots:
        if snapshot["deleted"]:
            continue
        total += 1
        for i, definition in enumerate(definitions):
            if matches(definition.trigger, snapshot):
                counts[i] += 1
        if total % PROGRESS_EVERY == 0:
            progress(total)
    return total, counts


def _stderr_progress(verb: str, what: str, stream: TextIO | None = None) -> Callable[[int], None]:
    def report(count: int) -> None:
        print(f"  {verb} {count} {what} …", file=stream or sys.stderr, flush=True)

    return report


# --------------------------------------------------------------------------- apply


def run_apply(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    targets = load_targets(settings).names  # with the sync_plugins ones
    try:
        definition = load_workflow(
            args.file, extra_action_types=args.allow_type, sync_targets=targets
        )
    except DefinitionError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    record, is_new = apply_definition(settings, definition, str(args.file), _issuer(args))
    if is_new:
        print(f"applied {definition.id} version {record['version']}")
    else:
        print(f"{definition.id} unchanged at version {record['version']}")
    return EXIT_OK


# --------------------------------------------------------------------------- run and control


def run_run(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    side = for_args(settings, args) if args.wait else None
    if side is not None:
        side.workflows()  # fail before starting a run we could not follow
    if args.budget is not None and args.budget <= 0:
        raise ConfigError(f"--budget must be more than 0, got {args.budget}")
    run_id = start_run(settings, args.workflow_id, _issuer(args), budget=args.budget)
    print(run_id, flush=True)
    if side is None:
        return EXIT_OK
    try:
        run = follow_run(side, run_id, display_for(sys.stdout), where=where(side))
    except KeyboardInterrupt:
        print(
            f"\nstopped following {run_id}; the run goes on (catalogflow workflow status {run_id})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.counts.get("ERROR", 0) else EXIT_OK


def run_control(args: argparse.Namespace) -> int:
    # start_run names runs "<workflow>.v<version>.<suffix>". Commands are keyed by
    # workflow id, so one sent under the wrong id could overtake the run's own.
    if not args.run_id.startswith(f"{args.workflow_id}.v"):
        print(
            f"catalogflow: run {args.run_id!r} is not a run of workflow {args.workflow_id!r}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    settings = Settings.load(args.config)
    control_run(settings, args.workflow_id, args.run_id, args.control, _issuer(args))
    print(f"sent {args.control} to run {args.run_id}")
    return EXIT_OK


def run_retry_failed(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    side = for_args(settings, args)
    try:
        run = side.run(args.run_id)
    except NotFound as exc:
        print(f"catalogflow: {exc}", file=sys.stderr)
        return EXIT_FAILED
    actions = run_actions(run)
    if args.action and args.action not in actions:
        print(
            f"catalogflow: run {args.run_id} has no action {args.action!r} "
            f"(its actions: {', '.join(actions)})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    failed = list(side.all_tasks(args.run_id, TaskFilter(status=["ERROR"])))
    before = retry_selection(failed, args.category, args.action)
    if not before:
        print(
            f"catalogflow: nothing to retry: no task of run {args.run_id} is in ERROR"
            + _filters(args.category, args.action),
            file=sys.stderr,
        )
        return EXIT_FAILED
    retry_failed(settings, run.workflow_id, args.run_id, _issuer(args), args.category, args.action)
    retried = [t for t in failed if t.task_id in before]
    if not args.json:
        noun = "task" if len(retried) == 1 else "tasks"
        print(f"sent RETRY_FAILED to run {args.run_id}: {len(retried)} {noun}", flush=True)
    if not args.wait:
        if args.json:
            print(json.dumps({"run_id": args.run_id, "retried": _retried(retried)}, indent=2))
        return EXIT_OK
    out = sys.stderr if args.json else sys.stdout
    try:
        run, tasks = follow_retry(side, args.run_id, before, PlainDisplay(out, SystemClock()))
    except KeyboardInterrupt:
        print(f"\nstopped following {args.run_id}; the retry goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    after = [t for t in tasks if t.task_id in before]
    if args.json:
        answer = {"run_id": args.run_id, "retried": _retried(after), "run": _json(run)}
        print(json.dumps(answer, indent=2))
    failed_again = [t for t in after if t.status == "ERROR"]
    return EXIT_FAILED if failed_again else EXIT_OK


def run_actions(run: RunSummary) -> list[str]:
    """The run's action ids in chain order, then ``sync``, the write-back."""
    named = [a.action_id for a in run.actions if a.action_id not in ("-", SYNC_ACTION)]
    return [*named, SYNC_ACTION]


def failed_in(task: TaskResult) -> str | None:
    """Where a task in ERROR failed: ``sync`` for the write-back, else its action.
    Only the write-back fails with SYNC_ISSUE (the sink, or a sync target the worker
    lacks), the read model's spelling of ``engine.is_sync_failure``."""
    return SYNC_ACTION if task.failure_category == "SYNC_ISSUE" else task.action_id


def retry_wanted(task: TaskResult, category: str | None, action: str | None) -> bool:
    """``engine.retry_wanted`` over a TaskResult: in Error, of ``category`` and in
    ``action`` when given."""
    if task.status != "ERROR":
        return False
    if category and task.failure_category != category:
        return False
    return not action or failed_in(task) == action


def retry_selection(
    tasks: Iterable[TaskResult], category: str | None, action: str | None
) -> dict[str, int]:
    """task id → attempt of the tasks ``retry-failed`` takes, by the workers' rule;
    a retried task moves on to the next attempt."""
    return {t.task_id: t.attempt for t in tasks if retry_wanted(t, category, action)}


def _filters(category: str | None, action: str | None) -> str:
    named = [f"category {category}"] * bool(category) + [f"action {action}"] * bool(action)
    return f" with {' and '.join(named)}" if named else ""


def _retried(tasks: Iterable[TaskResult]) -> list[JsonObject]:
    keys = ("task_id", "sku", "status", "action_id", "failure_category", "attempt", "reason")
    return [{key: getattr(t, key) for key in keys} for t in sorted(tasks, key=lambda t: t.sku)]


def follow_retry(
    side: ReadSide,
    run_id: str,
    before: Mapping[str, int],
    display: Display,
    clock: Clock | None = None,
) -> tuple[RunSummary, list[TaskResult]]:
    """Poll until every task in ``before`` (task id → attempt when retried) has ended
    at a later attempt and the run's totals have caught up with the tasks, or the run
    waits for review; return the run and its tasks.

    Raises :class:`CatalogflowError` if no retried task moves within
    ``APPEAR_WITHIN_S`` or the read side fails for ``SILENT_FOR_S``.
    """
    clock = clock or SystemClock()
    started = last_answer = clock.monotonic()
    while True:
        run: RunSummary | None
        try:
            run = side.run(run_id)
            tasks = list(side.all_tasks(run_id, TaskFilter()))
            last_answer = clock.monotonic()
        except CatalogflowError:
            if clock.monotonic() - last_answer > SILENT_FOR_S:
                raise
            run, tasks = None, []
        moved = [t for t in tasks if t.task_id in before and t.attempt > before[t.task_id]]
        if not moved and clock.monotonic() - started > APPEAR_WITHIN_S:
            raise CatalogflowError(
                f"the retry of run {run_id} has not moved after {APPEAR_WITHIN_S:g} s; "
                "are a worker and a projector running with the same settings?"
            )
        if run is not None:
            display.show(run)
            if waiting_for_review(run) or retry_settled(run, tasks, before):
                display.note(finished_line(run))
                return run, tasks
        clock.sleep(POLL_EVERY_S)


def retry_settled(run: RunSummary, tasks: Sequence[TaskResult], before: Mapping[str, int]) -> bool:
    """Every retried task ended at a later attempt, and the run counts what the tasks
    say (its totals apply each task's transitions a moment after the task does)."""
    ended = {
        t.task_id
        for t in tasks
        if t.task_id in before and t.attempt > before[t.task_id] and t.status in TERMINAL
    }
    if ended != set(before):
        return False
    statuses: dict[str, int] = {}
    for t in tasks:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    if statuses != dict(run.counts):
        return False
    return run.mode != "one_time" or run.status in ENDED


# --------------------------------------------------------------------------- list and show


def run_list(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    workflows = side.workflows()
    if args.json:
        print(json.dumps([_json(w) for w in workflows], indent=2))
        return EXIT_OK
    if not workflows:
        print("no workflows applied")
        return EXIT_OK
    rows = [
        [
            w.workflow_id,
            f"v{w.latest_version}",
            w.mode,
            " → ".join(a.id for a in w.actions),
            w.last_run_id or "-",
            w.last_run_status or "-",
        ]
        for w in workflows
    ]
    print(_table(["WORKFLOW", "VERSION", "MODE", "ACTIONS", "LAST RUN", "STATUS"], rows))
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    try:
        detail = side.workflow(args.workflow_id)
    except NotFound as exc:
        print(f"catalogflow: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(detail.model_dump_json(indent=2))
        return EXIT_OK
    w = detail.workflow
    print(f"workflow {w.workflow_id}: {w.name} ({w.mode}), latest version {w.latest_version}")
    print(f"  actions  {' → '.join(f'{a.id} ({a.type})' for a in w.actions)}")
    if w.last_run_id:
        print(f"  last run {w.last_run_id} {w.last_run_status} at {w.last_run_at}")
    print("  versions")
    for v in detail.versions:
        print(
            f"    v{v.version}  {v.applied_at:%Y-%m-%d %H:%M:%S}  by {v.applied_by}  "
            f"from {v.source}  ({v.content_hash[:12]})"
        )
    return EXIT_OK


# --------------------------------------------------------------------------- status


def run_status(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    if args.follow:
        try:
            run = follow_run(
                side,
                args.run_id,
                display_for(sys.stderr if args.json else sys.stdout),
                where=where(side),
            )
        except KeyboardInterrupt:
            print(f"\nstopped following {args.run_id}; the run goes on", file=sys.stderr)
            return EXIT_INTERRUPTED
    else:
        try:
            run = side.run(args.run_id)
        except NotFound as exc:
            print(f"catalogflow: {exc} ({where(side)})", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(run.model_dump_json(indent=2))
    elif not args.follow:
        print(format_status(run))
    return EXIT_FAILED if args.follow and run.counts.get("ERROR", 0) else EXIT_OK


def format_status(run: RunSummary) -> str:
    """The run's totals as text: status, tasks by status, tasks by action and status."""
    lines = [
        f"run {run.run_id}: {run.status}",
        f"  workflow   {run.workflow_id} version {run.workflow_version} ({run.mode})",
        f"  started    {run.started_at}",
        f"  finished   {run.finished_at or '-'}",
        f"  tasks      {run.tasks_created} created",
    ]
    ordered = sorted(run.counts, key=_status_order)
    lines.append("  by status  " + (", ".join(f"{s} {run.counts[s]}" for s in ordered) or "-"))
    by_action = [a for a in run.actions if a.counts]
    if by_action:
        lines.append("  by action")
        width = max(len(a.action_id) for a in by_action)
        for a in by_action:
            shown = ", ".join(f"{s} {a.counts[s]}" for s in sorted(a.counts, key=_status_order))
            lines.append(f"    {a.action_id:<{width}}  {shown}")
    cost = f"  cost       {run.cost:.4f} ({run.input_tokens} in / {run.output_tokens} out tokens)"
    if run.budget is not None:
        cost += f", budget {run.budget:g}" + (" reached" if run.budget_reached else "")
    lines.append(cost)
    return "\n".join(lines)


def _status_order(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


# --------------------------------------------------------------------------- results


def task_filter(args: argparse.Namespace) -> TaskFilter:
    """The ``results`` options as the read side's filter."""
    return TaskFilter(
        action=args.action,
        status=list(args.status or []),
        failure_category=args.failure_category,
        confidence_below=args.confidence_below,
        moderation_state=args.moderation_state,
        sync_status=args.sync_status,
        q=args.search,
    )


def run_results(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    filters = task_filter(args)
    try:
        if args.export is not None:
            fmt, target = args.export
            count = export(side, args.run_id, filters, fmt, Path(target))
            what = "tasks" if count is None else f"{count} tasks"
            print(f"wrote {what} to {target} ({fmt})", file=sys.stderr)
            return EXIT_OK
        page = side.tasks(args.run_id, filters, args.cursor, args.limit)
    except NotFound as exc:
        print(f"catalogflow: {exc} ({where(side)})", file=sys.stderr)
        return EXIT_FAILED
    except BadQuery as exc:
        print(f"catalogflow: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(page.model_dump_json(indent=2))
        return EXIT_OK
    write_table(page.items, sys.stdout)
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)
    return EXIT_OK


TABLE_COLUMNS = ("SKU", "STATUS", "ACTION", "FAILURE CATEGORY", "REASON")


def write_table(tasks: Sequence[TaskResult], out: TextIO) -> None:
    """Aligned task columns, each task's fields indented below it."""
    if not tasks:
        out.write("no tasks\n")
        return
    rows = [
        [t.sku, t.status, t.action_id or "-", t.failure_category or "-", t.reason or "-"]
        for t in tasks
    ]
    out.write(_table(list(TABLE_COLUMNS), rows, after=lambda i: _field_lines(tasks[i])) + "\n")


def _field_lines(task: TaskResult) -> list[str]:
    out = []
    for f in task.fields:
        name = f"{f.action_id}/{f.field}" + (f"@{f.locale}" if f.locale else "")
        extra = [] if f.confidence is None else [f"confidence {f.confidence:.2f}"]
        extra += [f.reasoning] if f.reasoning else []
        note = f"  ({'; '.join(extra)})" if extra else ""
        out.append(f"    {name} = {_cell(f.value)}{note}")
    return out


def _table(
    titles: list[str],
    rows: list[list[str]],
    after: Callable[[int], list[str]] = lambda _: [],
) -> str:
    widths = [max(len(row[i]) for row in [titles, *rows]) for i in range(len(titles) - 1)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    out = [line(titles)]
    for i, row in enumerate(rows):
        out.append(line(row))
        out += after(i)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _json(model: BaseModel) -> Any:
    return model.model_dump(mode="json")
