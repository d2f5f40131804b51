"""``catalogflow workflow …``: check, publish, run and inspect workflows.

* ``validate FILE...`` checks definitions and counts the products they match now;
* ``apply FILE`` publishes a definition as a new version (or keeps an unchanged one);
* ``run WORKFLOW_ID [--wait]`` starts a run of the latest version and can follow it;
* ``pause|resume|stop WORKFLOW_ID RUN_ID`` control a run;
* ``retry-failed RUN_ID [--category C] [--action A] [--wait]`` runs its Error tasks
  again: a failed action from its step, a failed sync (action ``sync``) with only the
  requests that failed;
* ``status RUN_ID`` and ``results RUN_ID`` read a worker's ``/runs/…`` views.

Exit codes: 0 done, 1 failed (no broker, no worker, unknown run, a task ended in ERROR
under ``run --wait`` or again under ``retry-failed --wait``, nothing to retry), 2 invalid
input (a definition, a run id that is not the workflow's, an unknown failure category or
action), 130 when Ctrl-C stops following (the run goes on).

``validate`` reads the products table's compacted changelog from the beginning up to
the current end offsets, without a consumer group's commits; that live count never
changes the exit code: a missing broker only skips it.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO, cast, get_args

from catalogflow.connectors.targets.registry import load_targets
from catalogflow.dryrun import add_dryrun_commands
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.control import (
    applied_versions,
    apply_definition,
    control_run,
    retry_failed,
    start_run,
)
from catalogflow.streams.definitions import DefinitionError, WorkflowDefinition
from catalogflow.streams.engine import SYNC_ACTION, TERMINAL, retry_wanted
from catalogflow.streams.errors import CatalogflowError, ConfigError
from catalogflow.streams.reader import (
    PROBE_TIMEOUT_S,
    PROGRESS_EVERY,
    BrokerUnavailable,
    TopicMissing,
    read_latest,
)
from catalogflow.streams.records import (
    FailureCategory,
    ProductSnapshot,
    RunState,
    TaskState,
    TaskStatus,
)
from catalogflow.streams.rules import matches
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic
from catalogflow.workerclient import WorkerClient

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

#: A result line of ``results --format jsonl`` or ``retry-failed --json``: JSON, not a record.
JsonObject = dict[str, Any]
ResultFormat = Literal["table", "jsonl", "csv"]
RESULT_FORMATS: tuple[ResultFormat, ...] = get_args(ResultFormat)
STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
FAILURE_CATEGORIES: tuple[FailureCategory, ...] = get_args(FailureCategory)
#: Statuses the progress line always shows, in this order, after the finished ones.
ACTIVE_SHOWN: tuple[TaskStatus, ...] = ("RUNNING", "WAITING", "PAUSED")

#: ``run --wait``: seconds between polls; how long a new run may take to appear on the
#: worker; how long the worker may stay silent while being followed.
POLL_EVERY_S = 1.0
APPEAR_WITHIN_S = 60.0
SILENT_FOR_S = 30.0
#: ``run --wait`` prints a line when the progress changes, and at least this often.
HEARTBEAT_S = 10.0


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
    _add_worker(run)
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
    _add_worker(retry)
    retry.set_defaults(run=run_retry_failed)

    status = command("status", "show a run's totals: status, tasks by status and by action")
    status.add_argument("run_id", metavar="RUN_ID", help="as `workflow run` printed it")
    _add_worker(status)
    status.add_argument("--json", action="store_true", help="print the worker's JSON as it is")
    status.set_defaults(run=run_status)

    results = command("results", "list a run's results per product, or export them")
    results.add_argument("run_id", metavar="RUN_ID", help="as `workflow run` printed it")
    _add_worker(results)
    results.add_argument(
        "--status",
        action="append",
        type=str.upper,
        choices=STATUSES,
        metavar="STATUS",
        help=f"only products in this status (repeatable): {', '.join(STATUSES)}",
    )
    results.add_argument(
        "--format", choices=RESULT_FORMATS, default="table", help="output format (default table)"
    )
    results.add_argument(
        "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    results.set_defaults(run=run_results)

    add_dryrun_commands(actions)


def _add_by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        metavar="NAME",
        default=None,
        help="who does this, for the audit trail (default: your login name)",
    )


def _add_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--worker",
        metavar="URL",
        type=worker_url,
        default=None,
        help="a worker's web address (default: http://WEB_HOST:WEB_PORT from the settings)",
    )


def worker_url(text: str) -> tuple[str, int]:
    """Parse ``--worker``: ``http://host:port`` (the port defaults to 80) → (host, port)."""
    parts = urllib.parse.urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port < 1 or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a worker address; write http://HOST:PORT (e.g. http://127.0.0.1:6066)"
        )
    return parts.hostname, port


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
    client = RunViews.for_args(settings, args.worker) if args.wait else None
    if client is not None:
        client.get("/products/")  # fail before starting a run we could not follow
    if args.budget is not None and args.budget <= 0:
        raise ConfigError(f"--budget must be more than 0, got {args.budget}")
    run_id = start_run(settings, args.workflow_id, _issuer(args), budget=args.budget)
    print(run_id, flush=True)
    if client is None:
        return EXIT_OK
    try:
        run = follow_run(client, run_id)
    except KeyboardInterrupt:
        print(
            f"\nstopped following {run_id}; the run goes on (catalogflow workflow status {run_id})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    errors = run["counts"].get("ERROR", 0)
    return EXIT_FAILED if errors else EXIT_OK


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
    client = RunViews.for_args(settings, args.worker)
    run = client.run(args.run_id)
    if run is None:
        print(f"catalogflow: {client.unknown(args.run_id)}", file=sys.stderr)
        return EXIT_FAILED
    tasks = client.tasks(args.run_id)
    actions = run_actions(tasks, _pinned_definition(settings, run))
    if args.action and args.action not in actions:
        print(
            f"catalogflow: run {args.run_id} has no action {args.action!r} "
            f"(its actions: {', '.join(actions)})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    before = retry_selection(tasks, args.category, args.action)
    if not before:
        print(
            f"catalogflow: nothing to retry: no task of run {args.run_id} is in ERROR"
            + _filters(args.category, args.action),
            file=sys.stderr,
        )
        return EXIT_FAILED
    retry_failed(
        settings, run["workflow_id"], args.run_id, _issuer(args), args.category, args.action
    )
    retried = [t for t in tasks if t["task_id"] in before]
    if not args.json:
        noun = "task" if len(retried) == 1 else "tasks"
        print(f"sent RETRY_FAILED to run {args.run_id}: {len(retried)} {noun}", flush=True)
    if not args.wait:
        if args.json:
            print(json.dumps({"run_id": args.run_id, "retried": _retried(retried)}, indent=2))
        return EXIT_OK
    try:
        run, tasks = follow_retry(client, args.run_id, before, sys.stderr if args.json else None)
    except KeyboardInterrupt:
        print(f"\nstopped following {args.run_id}; the retry goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    after = [t for t in tasks if t["task_id"] in before]
    if args.json:
        print(json.dumps({"run_id": args.run_id, "retried": _retried(after), "run": run}, indent=2))
    failed_again = [t for t in after if t["status"] == "ERROR"]
    return EXIT_FAILED if failed_again else EXIT_OK


def run_actions(tasks: Iterable[TaskState], definition: WorkflowDefinition | None) -> list[str]:
    """The run's action ids (its pinned definition's, else those its tasks went
    through), then ``sync``, the write-back."""
    if definition is not None:
        named = [a.id for a in definition.actions]
    else:
        seen = {h["action_id"] for t in tasks for h in t["history"]}
        named = sorted(a for a in seen if a is not None)
    return [*(a for a in named if a != SYNC_ACTION), SYNC_ACTION]


def _pinned_definition(settings: Settings, run: RunState) -> WorkflowDefinition | None:
    """The definition the run pinned, when it is still the applied version."""
    try:
        version = applied_versions(settings).get(run["workflow_id"])
    except CatalogflowError:
        return None
    if version is None or version["version"] != run["workflow_version"]:
        return None
    return WorkflowDefinition.from_dict(json.loads(version["definition"]))


def retry_selection(
    tasks: Iterable[TaskState], category: str | None, action: str | None
) -> dict[str, int]:
    """task id → attempt of the tasks ``retry-failed`` takes, by the workers' own rule
    (``engine.retry_wanted``); a retried task moves on to the next attempt."""
    return {t["task_id"]: t["attempt"] for t in tasks if retry_wanted(t, category, action)}


def _filters(category: str | None, action: str | None) -> str:
    named = [f"category {category}"] * bool(category) + [f"action {action}"] * bool(action)
    return f" with {' and '.join(named)}" if named else ""


def _retried(tasks: Iterable[TaskState]) -> list[JsonObject]:
    keys = ("task_id", "sku", "status", "action_id", "failure_category", "attempt", "reason")
    return [{key: t.get(key) for key in keys} for t in sorted(tasks, key=lambda t: t["sku"])]


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RunSource(Protocol):
    """Where ``follow_run`` reads a run's totals: a worker, or a fake in tests.

    Runs and task states come as the worker's views send them: JSON of the records,
    so their timestamps are ISO text; nothing here reads a timestamp but to print it.
    """

    @property
    def url(self) -> str: ...

    def run(self, run_id: str) -> RunState | None: ...


def follow_run(
    source: RunSource,
    run_id: str,
    out: TextIO | None = None,
    clock: Clock | None = None,
) -> RunState:
    """Poll the run until it is COMPLETED or STOPPED, or waits for review, and return
    its last totals, printing a progress line when it changes (and every ``HEARTBEAT_S`` seconds).

    Raises :class:`CatalogflowError` if the run does not appear on the worker within
    ``APPEAR_WITHIN_S`` or the worker stops answering for ``SILENT_FOR_S``.
    """
    out = out or sys.stdout
    clock = clock or SystemClock()
    started = last_answer = clock.monotonic()
    seen = False
    last_line, last_print = "", 0.0
    while True:
        try:
            run = source.run(run_id)
            last_answer = clock.monotonic()
        except CatalogflowError:
            if clock.monotonic() - last_answer > SILENT_FOR_S:
                raise
            run = None
        if run is None and not seen and clock.monotonic() - started > APPEAR_WITHIN_S:
            raise CatalogflowError(
                f"worker at {source.url} has not picked up run {run_id} after "
                f"{APPEAR_WITHIN_S:g} s; is it running with the same settings?"
            )
        if run is not None:
            if not seen and run["mode"] != "one_time":
                print(f"{run['mode']} run: it completes only when stopped", file=out)
            seen = True
            line = progress_line(run)
            now = clock.monotonic()
            if line != last_line or now - last_print >= HEARTBEAT_S:
                print(line, file=out, flush=True)
                last_line, last_print = line, now
            if run["status"] in ("COMPLETED", "STOPPED"):
                print(_finished_line(run), file=out, flush=True)
                return run
            if waiting_for_review(run):
                print(
                    f"{run['counts']['AWAITING_MODERATION']} results wait for review: "
                    f"catalogflow moderation list --run {run_id}",
                    file=out,
                    flush=True,
                )
                return run
        clock.sleep(POLL_EVERY_S)


class TaskSource(RunSource, Protocol):
    def tasks(self, run_id: str) -> list[TaskState]: ...


def follow_retry(
    source: TaskSource,
    run_id: str,
    before: Mapping[str, int],
    out: TextIO | None = None,
    clock: Clock | None = None,
) -> tuple[RunState, list[TaskState]]:
    """Poll until every task in ``before`` (task id → attempt when retried) has ended
    at a later attempt and the run's totals have caught up with the tasks, or the run
    waits for review; return the run and its tasks, printing progress lines.

    Raises :class:`CatalogflowError` if no retried task moves within
    ``APPEAR_WITHIN_S`` or the worker stops answering for ``SILENT_FOR_S``.
    """
    out = out or sys.stdout
    clock = clock or SystemClock()
    started = last_answer = clock.monotonic()
    last_line, last_print = "", 0.0
    while True:
        try:
            run, tasks = source.run(run_id), source.tasks(run_id)
            last_answer = clock.monotonic()
        except CatalogflowError:
            if clock.monotonic() - last_answer > SILENT_FOR_S:
                raise
            run, tasks = None, []
        moved = [t for t in tasks if t["task_id"] in before and t["attempt"] > before[t["task_id"]]]
        if not moved and clock.monotonic() - started > APPEAR_WITHIN_S:
            raise CatalogflowError(
                f"worker at {source.url} has not picked up the retry of run {run_id} after "
                f"{APPEAR_WITHIN_S:g} s; is it running with the same settings?"
            )
        if run is not None:
            line = progress_line(run)
            now = clock.monotonic()
            if line != last_line or now - last_print >= HEARTBEAT_S:
                print(line, file=out, flush=True)
                last_line, last_print = line, now
            if waiting_for_review(run) or retry_settled(run, tasks, before):
                print(_finished_line(run), file=out, flush=True)
                return run, tasks
        clock.sleep(POLL_EVERY_S)


def retry_settled(run: RunState, tasks: Sequence[TaskState], before: Mapping[str, int]) -> bool:
    """Every retried task ended at a later attempt, and the run counts what the tasks
    say (its totals apply each task's transitions a moment after the task does)."""
    ended = {
        t["task_id"]
        for t in tasks
        if t["task_id"] in before
        and t["attempt"] > before[t["task_id"]]
        and t["status"] in TERMINAL
    }
    if ended != set(before):
        return False
    statuses: dict[str, int] = {}
    for t in tasks:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    if statuses != dict(run["counts"]):
        return False
    return run["mode"] != "one_time" or run["status"] in ("COMPLETED", "STOPPED")


def waiting_for_review(run: RunState) -> bool:
    """Nothing moves any more until a person decides: every task has ended or waits
    for review, and at least one waits."""
    counts = run["counts"]
    if not counts.get("AWAITING_MODERATION") or run["partitions_scanned"] < run["partitions"]:
        return False
    if sum(counts.values()) < run["tasks_created"]:
        return False
    return all(status in TERMINAL or status == "AWAITING_MODERATION" for status in counts)


def progress_line(run: RunState) -> str:
    """``run <id>: 120/500 done (COMPLETED 118, ERROR 2) · RUNNING 16 · WAITING 364 · PAUSED 0``,
    plus other unfinished statuses when present, partitions still to scan and a run
    status other than RUNNING."""
    counts = run["counts"]
    finished = [(s, counts[s]) for s in STATUSES if s in TERMINAL and counts.get(s)]
    done = sum(n for _, n in finished)
    line = f"run {run['run_id']}: {done}/{run['tasks_created']} done"
    if finished:
        line += " (" + ", ".join(f"{s} {n}" for s, n in finished) + ")"
    shown = [*ACTIVE_SHOWN, *(s for s in STATUSES if s not in TERMINAL and s not in ACTIVE_SHOWN)]
    for status in shown:
        if status in ACTIVE_SHOWN or counts.get(status):
            line += f" · {status} {counts.get(status, 0)}"
    if run["partitions_scanned"] < run["partitions"]:
        line += f" · scanned {run['partitions_scanned']}/{run['partitions']} partitions"
    if run["status"] not in ("RUNNING", "COMPLETED"):
        line += f" · run {run['status']}"
    return line


def _finished_line(run: RunState) -> str:
    errors = run["counts"].get("ERROR", 0)
    outcome = f"{errors} ended in ERROR" if errors else "no task ended in ERROR"
    return f"run {run['run_id']} {run['status']}: {outcome}"


# --------------------------------------------------------------------------- status


def run_status(args: argparse.Namespace) -> int:
    client = RunViews.for_args(Settings.load(args.config), args.worker)
    run = client.run(args.run_id)
    if run is None:
        print(f"catalogflow: {client.unknown(args.run_id)}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(run, indent=2, sort_keys=True))
    else:
        print(format_status(run))
    return EXIT_OK


def format_status(run: RunState) -> str:
    """The run's totals as text: status, tasks by status, tasks by action and status."""
    lines = [
        f"run {run['run_id']}: {run['status']}",
        f"  workflow   {run['workflow_id']} version {run['workflow_version']} ({run['mode']})",
        f"  started    {run['started_at']}",
        f"  finished   {run['finished_at'] or '-'}",
        f"  scanned    {run['partitions_scanned']}/{run['partitions']} partitions, "
        f"{run['tasks_created']} tasks",
    ]
    counts = run["counts"]
    ordered = sorted(counts, key=_status_order)
    lines.append("  by status  " + (", ".join(f"{s} {counts[s]}" for s in ordered) or "-"))
    by_action: dict[str, dict[str, int]] = {}
    for key, count in run["action_counts"].items():
        action, _, status = key.rpartition(":")
        by_action.setdefault(action, {})[status] = count
    if by_action:
        lines.append("  by action")
        width = max(len(a) for a in by_action)
        for action, per_status in by_action.items():
            shown = ", ".join(f"{s} {per_status[s]}" for s in sorted(per_status, key=_status_order))
            lines.append(f"    {action:<{width}}  {shown}")
    return "\n".join(lines)


def _status_order(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FieldValue:
    """One value an action produced for a product (a column group of the export)."""

    action: str
    field: str
    locale: str | None
    value: Any
    confidence: float | None
    reasoning: str | None

    @property
    def column(self) -> str:
        """``action/field`` or ``action/field@locale``: unique within a product."""
        name = f"{self.action}/{self.field}"
        return f"{name}@{self.locale}" if self.locale else name


@dataclass(frozen=True)
class ProductResult:
    sku: str
    status: str
    action: str | None
    failure_category: str | None
    reason: str | None
    fields: tuple[FieldValue, ...]

    @classmethod
    def from_task(cls, task: TaskState) -> ProductResult:
        fields = tuple(
            FieldValue(
                output["action_id"],
                item["field"],
                item.get("locale"),
                item.get("value"),
                item.get("confidence"),
                item.get("reasoning"),
            )
            for output in task.get("outputs") or ()
            for item in output.get("fields") or ()
        )
        return cls(
            task["sku"],
            task["status"],
            task.get("action_id"),
            task.get("failure_category"),
            task.get("reason"),
            fields,
        )

    def to_dict(self) -> JsonObject:
        return {
            "sku": self.sku,
            "status": self.status,
            "action": self.action,
            "failure_category": self.failure_category,
            "reason": self.reason,
            "fields": [
                {
                    "action": f.action,
                    "field": f.field,
                    "locale": f.locale,
                    "value": f.value,
                    "confidence": f.confidence,
                    "reasoning": f.reasoning,
                }
                for f in self.fields
            ],
        }


def product_results(
    tasks: Iterable[TaskState], statuses: Sequence[str] | None = None
) -> list[ProductResult]:
    """One result per task (a run has one task per product), sorted by SKU, keeping
    only ``statuses`` when given."""
    wanted = set(statuses or ())
    results = [ProductResult.from_task(t) for t in tasks if not wanted or t["status"] in wanted]
    return sorted(results, key=lambda r: r.sku)


def write_results(results: Sequence[ProductResult], fmt: ResultFormat, out: TextIO) -> None:
    {"table": write_table, "jsonl": write_jsonl, "csv": write_csv}[fmt](results, out)


def write_jsonl(results: Sequence[ProductResult], out: TextIO) -> None:
    """One JSON object per product, with its fields as a list."""
    for result in results:
        out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")


RESULT_COLUMNS = ("sku", "status", "action", "failure_category", "reason")


def write_csv(results: Sequence[ProductResult], out: TextIO) -> None:
    """One row per product; each field gets three columns, ``action/field[@locale]``,
    ``… confidence`` and ``… reasoning``, in the order they first appear."""
    columns: dict[str, None] = {}
    for result in results:
        for f in result.fields:
            columns.setdefault(f.column)
    header = [*RESULT_COLUMNS]
    for column in columns:
        header += [column, f"{column} confidence", f"{column} reasoning"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for result in results:
        row = [_cell(v) for v in result.to_dict().values() if not isinstance(v, list)]
        by_column = {f.column: f for f in result.fields}
        for column in columns:
            found = by_column.get(column)
            row += (
                [_cell(found.value), _cell(found.confidence), _cell(found.reasoning)]
                if found
                else ["", "", ""]
            )
        writer.writerow(row)


def write_table(results: Sequence[ProductResult], out: TextIO) -> None:
    """Aligned product columns, each product's fields indented below it."""
    if not results:
        out.write("no products\n")
        return
    rows = [
        [r.sku, r.status, r.action or "-", r.failure_category or "-", r.reason or "-"]
        for r in results
    ]
    titles = [c.upper().replace("_", " ") for c in RESULT_COLUMNS]
    widths = [max(len(row[i]) for row in [titles, *rows]) for i in range(len(titles) - 1)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    out.write(line(titles) + "\n")
    for row, result in zip(rows, results, strict=True):
        out.write(line(row) + "\n")
        for f in result.fields:
            extra = [] if f.confidence is None else [f"confidence {f.confidence:.2f}"]
            extra += [f.reasoning] if f.reasoning else []
            note = f"  ({'; '.join(extra)})" if extra else ""
            out.write(f"    {f.column} = {_cell(f.value)}{note}\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def run_results(args: argparse.Namespace) -> int:
    client = RunViews.for_args(Settings.load(args.config), args.worker)
    if client.run(args.run_id) is None:
        print(f"catalogflow: {client.unknown(args.run_id)}", file=sys.stderr)
        return EXIT_FAILED
    results = product_results(client.tasks(args.run_id), args.status)
    if args.output is None:
        write_results(results, args.format, sys.stdout)
        return EXIT_OK
    try:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            write_results(results, args.format, out)
    except OSError as exc:
        raise CatalogflowError(f"cannot write {args.output}: {exc.strerror}") from exc
    print(f"wrote {len(results)} products to {args.output}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------- worker views


class RunViews:
    """A worker's ``/runs/…`` views, as the commands need them."""

    def __init__(self, settings: Settings) -> None:
        self._client = WorkerClient(f"http://{settings.web_host}:{settings.web_port}")

    @classmethod
    def for_args(cls, settings: Settings, worker: tuple[str, int] | None) -> RunViews:
        if worker is not None:
            settings = settings.replace(web_host=worker[0], web_port=worker[1])
        return cls(settings)

    @property
    def url(self) -> str:
        return self._client.url

    def get(self, path: str) -> Any:
        return self._client.get(path)

    def run(self, run_id: str) -> RunState | None:
        """The run's totals, or ``None`` if the worker knows no such run."""
        answer = self.get(f"/runs/{urllib.parse.quote(run_id, safe='')}/")
        if not isinstance(answer, dict) or "error" in answer:
            return None
        return cast(RunState, answer)  # the JSON of the worker's RunState row

    def tasks(self, run_id: str) -> list[TaskState]:
        answer = self.get(f"/runs/{urllib.parse.quote(run_id, safe='')}/tasks/")
        return list(answer.get("tasks", [])) if isinstance(answer, dict) else []

    def unknown(self, run_id: str) -> str:
        return f"the worker at {self.url} knows no run {run_id!r}"
