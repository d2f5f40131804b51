import argparse
import csv
import http.server
import io
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import ProductSnapshot, RunState, TaskState
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic

from catalogflow import workflow_cli
from catalogflow.cli import _parser, main
from catalogflow.workerclient import WorkerClient
from catalogflow.workflow_cli import (
    add_workflow_commands,
    count_matches,
    follow_run,
    product_results,
    progress_line,
    worker_url,
    write_results,
)

EXAMPLES = Path(__file__).parents[2] / "examples"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="catalogflow")
    parser.add_argument("--config", type=Path)
    add_workflow_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_valid_files_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    good = EXAMPLES / "dry-cat-food.yaml"
    other = EXAMPLES / "german-descriptions-continuous.yaml"
    assert run(["workflow", "validate", "--no-count", str(good), str(other)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{good}: ok — dry-cat-food (one_time), 3 actions: extract → enrich → translate",
        f"{other}: ok — german-descriptions (continuous), 1 action: translate-description",
    ]


def test_an_invalid_file_exits_2_and_lists_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = EXAMPLES / "dry-cat-food.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nmode: one_time\n"
        "trigger: {all: [{field: status, operator: equal, value: enabled}]}\n"
        "actions: [{id: a, type: translatoin}]\n"
    )
    assert run(["workflow", "validate", "--no-count", str(good), str(bad)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{good}: ok — dry-cat-food")
    assert out[1].startswith(f"{bad}: trigger.all[0].operator: unknown operator 'equal'; allowed:")
    assert out[2].startswith(f"{bad}: actions[0].type: unknown action type 'translatoin'; known:")
    assert len(out) == 3


def test_missing_file_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workflow", "validate", "--no-count", str(tmp_path / "gone.yaml")]) == 2
    assert "gone.yaml: cannot read the file" in capsys.readouterr().out


def test_count_without_broker_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on localhost: nothing answers, so the probe fails fast.
    monkeypatch.setenv("CATALOGFLOW_BROKER", "127.0.0.1:9")
    monkeypatch.setattr(workflow_cli, "PROBE_TIMEOUT_S", 0.5)
    code = run(["workflow", "validate", "--count", str(EXAMPLES / "dry-cat-food.yaml")])
    assert code == 0
    assert "live count: skipped (no broker at 127.0.0.1:9)" in capsys.readouterr().out


def test_count_matches_counts_live_products_per_definition() -> None:
    cats = parse_definition(
        "id: cats\nmode: one_time\nactions: [{id: a, type: noop}]\n"
        "trigger: {all: [{field: category, operator: equals, value: Pet Food/Cat}]}\n",
        "cats.yaml",
        ["noop"],
    )
    everything = parse_definition(
        "id: all\nmode: one_time\nactions: [{id: a, type: noop}]\n", "all.yaml", ["noop"]
    )

    def product(sku: str, category: str, deleted: bool = False) -> ProductSnapshot:
        return {
            "sku": sku,
            "deleted": deleted,
            "values": [],
            "categories": [category],
            "supplier": None,
            "status": None,
            "family": None,
            "version": 1,
            "last_event_id": "e",
            "updated_at": datetime(2025, 1, 2, tzinfo=UTC),
        }

    snapshots = [
        product("1", "Pet Food/Cat/Dry Cat Food"),
        product("2", "Pet Food/Dog"),
        product("3", "Pet Food/Cat", deleted=True),
    ]
    seen: list[int] = []
    assert count_matches([cats, everything], snapshots, progress=seen.append) == (2, [1, 2])
    assert seen == []


def test_a_table_is_read_from_fausts_changelog_or_from_its_own_topic() -> None:
    settings = Settings.load(environ={})
    assert changelog_topic(settings, "products") == "catalogflow-products-changelog"
    assert changelog_topic(settings, "moderation") == "catalogflow.moderation"


# --------------------------------------------------------------------------- the run commands

COMMANDS = (
    "validate",
    "apply",
    "run",
    "pause",
    "resume",
    "stop",
    "retry-failed",
    "status",
    "results",
    "dry-run",
    "estimate",
)

# Runs and task states as the worker's views send them: JSON, and only the fields the
# commands read, so typed as what ``json.loads`` gives.
RUN: Any = {
    "run_id": "dry-cat.v2.0badcafe",
    "workflow_id": "dry-cat",
    "workflow_version": 2,
    "mode": "one_time",
    "status": "RUNNING",
    "partitions": 4,
    "partitions_scanned": 4,
    "tasks_created": 500,
    "counts": {"COMPLETED": 118, "ERROR": 2, "RUNNING": 16, "WAITING": 364},
    "action_counts": {"extract:COMPLETED": 40, "extract:ERROR": 2, "translate:COMPLETED": 78},
    "started_at": "2025-01-02 10:00:00+00:00",
    "finished_at": None,
}


def field(name: str, value: object, locale: str | None = None, **more: object) -> dict[str, object]:
    return {"field": name, "locale": locale, "value": value, "reasoning": None} | {
        "confidence": None,
        **more,
    }


TASKS: list[Any] = [
    {
        "sku": "PF-2",
        "status": "ERROR",
        "action_id": "extract",
        "reason": "description names no flavour",
        "failure_category": "INCOMPLETE_SOURCE_DATA",
        "outputs": [],
        "history": [],
    },
    {
        "sku": "PF-1",
        "status": "COMPLETED",
        "action_id": "translate",
        "reason": None,
        "failure_category": None,
        "outputs": [
            {
                "action_id": "extract",
                "fields": [
                    field("flavor", "Tuna", confidence=0.9, reasoning='says "tuna", twice'),
                    field("tags", ["a", "b"]),
                ],
            },
            {"action_id": "translate", "fields": [field("title", "Thunfisch", "de_DE")]},
        ],
        "history": [],
    },
]


def cli(argv: list[str]) -> int:
    return main(argv)


def fake_worker(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, object]
) -> list[tuple[str, str]]:
    """Serve canned answers from WorkerClient.get; return the (url, path) asked for."""
    asked: list[tuple[str, str]] = []

    def get(self: WorkerClient, path: str) -> object:
        asked.append((self.url, path))
        answer = answers.get(path, {"error": "not found"})
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(WorkerClient, "get", get)
    return asked


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_a_one_line_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["workflow", command, "--help"])
    assert exit_.value.code == 0
    usage, _, rest = capsys.readouterr().out.partition("\n\n")
    assert usage.startswith(f"usage: catalogflow workflow {command} ")
    description = rest.split("\n\n")[0]
    assert "\n" not in description and description.endswith(".")


def test_workflow_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["workflow", "--help"])
    listed = [
        line.split()[0]
        for line in capsys.readouterr().out.splitlines()
        if line[:4] == " " * 4 and line[4:5] != " "  # not a wrapped summary
    ]
    assert listed == list(COMMANDS)


def test_arguments_parse() -> None:
    parser = _parser()
    apply = parser.parse_args(
        ["workflow", "apply", "f.yaml", "--allow-type", "x", "--allow-type", "y", "--by", "anna"]
    )
    assert (apply.file, apply.allow_type, apply.by) == (Path("f.yaml"), ["x", "y"], "anna")
    run = parser.parse_args(["workflow", "run", "wf", "--wait", "--worker", "http://h:7000"])
    assert (run.workflow_id, run.wait, run.worker, run.by) == ("wf", True, ("h", 7000), None)
    stop = parser.parse_args(["workflow", "stop", "wf", "wf.v1.abc"])
    assert (stop.control, stop.workflow_id, stop.run_id) == ("STOP", "wf", "wf.v1.abc")
    results = parser.parse_args(
        ["workflow", "results", "r", "--status", "error", "--status", "SKIPPED", "--format", "csv"]
    )
    assert (results.status, results.format, results.output) == (["ERROR", "SKIPPED"], "csv", None)
    assert parser.parse_args(["workflow", "status", "r"]).worker is None


@pytest.mark.parametrize(
    "argv",
    [
        ["workflow", "results", "r", "--status", "DONE"],
        ["workflow", "results", "r", "--format", "xml"],
        ["workflow", "status", "r", "--worker", "https://h:1"],
        ["workflow", "status", "r", "--worker", "http://h:1/base"],
        ["workflow", "status", "r", "--worker", "http://h:port"],
        ["workflow", "pause", "wf"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_worker_url_defaults() -> None:
    assert worker_url("127.0.0.1:6066") == ("127.0.0.1", 6066)
    assert worker_url("http://worker/") == ("worker", 80)


def test_apply_of_an_invalid_file_exits_2_before_any_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nmode: one_time\nactions: [{id: a, type: plugin_type}]\n")
    assert cli(["workflow", "apply", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{bad}: actions[0].type: unknown action type 'plugin_type'")


def test_control_refuses_a_run_of_another_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["workflow", "pause", "dry-cat", "german.v1.0badcafe"]) == 2
    assert "run 'german.v1.0badcafe' is not a run of workflow 'dry-cat'" in capsys.readouterr().err


def test_a_worker_that_does_not_answer_exits_1_naming_its_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert cli(["workflow", "status", "r", "--worker", url]) == 1
    assert f"catalogflow: worker at {url} did not answer /runs/r/" in capsys.readouterr().err


def test_status_prints_totals_and_exits_1_for_an_unknown_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_worker(monkeypatch, {"/runs/dry-cat.v2.0badcafe/": RUN})
    assert cli(["workflow", "status", "dry-cat.v2.0badcafe"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "run dry-cat.v2.0badcafe: RUNNING",
        "  workflow   dry-cat version 2 (one_time)",
        "  started    2025-01-02 10:00:00+00:00",
        "  finished   -",
        "  scanned    4/4 partitions, 500 tasks",
        "  by status  WAITING 364, RUNNING 16, COMPLETED 118, ERROR 2",
        "  by action",
        "    extract    COMPLETED 40, ERROR 2",
        "    translate  COMPLETED 78",
    ]
    assert asked == [("http://127.0.0.1:6066", "/runs/dry-cat.v2.0badcafe/")]
    assert cli(["workflow", "status", "dry-cat.v2.0badcafe", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == RUN
    assert cli(["workflow", "status", "nope", "--worker", "http://w:1"]) == 1
    assert capsys.readouterr().err == "catalogflow: the worker at http://w:1 knows no run 'nope'\n"


class _ProxyErrorPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(502)
        self.end_headers()
        self.wfile.write(b"<html>bad gateway</html>")

    def log_message(self, *args: object) -> None:
        pass


def test_a_worker_answering_without_json_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _ProxyErrorPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert cli(["workflow", "status", "r", "--worker", url]) == 1
    finally:
        server.shutdown()
    assert f"worker at {url} gave no JSON for /runs/r/" in capsys.readouterr().err


def test_results_table_jsonl_and_csv() -> None:
    results = product_results(TASKS)
    assert [r.sku for r in results] == ["PF-1", "PF-2"]

    table = io.StringIO()
    write_results(results, "table", table)
    assert table.getvalue().splitlines() == [
        "SKU   STATUS     ACTION     FAILURE CATEGORY        REASON",
        "PF-1  COMPLETED  translate  -                       -",
        '    extract/flavor = Tuna  (confidence 0.90; says "tuna", twice)',
        '    extract/tags = ["a", "b"]',
        "    translate/title@de_DE = Thunfisch",
        "PF-2  ERROR      extract    INCOMPLETE_SOURCE_DATA  description names no flavour",
    ]

    lines = io.StringIO()
    write_results(results, "jsonl", lines)
    first, second = (json.loads(line) for line in lines.getvalue().splitlines())
    assert first["fields"][0] == {
        "action": "extract",
        "field": "flavor",
        "locale": None,
        "value": "Tuna",
        "confidence": 0.9,
        "reasoning": 'says "tuna", twice',
    }
    assert second == {
        "sku": "PF-2",
        "status": "ERROR",
        "action": "extract",
        "failure_category": "INCOMPLETE_SOURCE_DATA",
        "reason": "description names no flavour",
        "fields": [],
    }

    table_csv = io.StringIO()
    write_results(results, "csv", table_csv)
    rows = list(csv.reader(io.StringIO(table_csv.getvalue())))
    assert rows == [
        [
            *("sku", "status", "action", "failure_category", "reason"),
            *("extract/flavor", "extract/flavor confidence", "extract/flavor reasoning"),
            *("extract/tags", "extract/tags confidence", "extract/tags reasoning"),
            "translate/title@de_DE",
            "translate/title@de_DE confidence",
            "translate/title@de_DE reasoning",
        ],
        [
            *("PF-1", "COMPLETED", "translate", "", ""),
            *("Tuna", "0.9", 'says "tuna", twice'),
            *('["a", "b"]', "", ""),
            *("Thunfisch", "", ""),
        ],
        ["PF-2", "ERROR", "extract", "INCOMPLETE_SOURCE_DATA", "description names no flavour"]
        + [""] * 9,
    ]


def test_results_filter_by_status_and_empty_output() -> None:
    assert [r.sku for r in product_results(TASKS, ["ERROR"])] == ["PF-2"]
    out = io.StringIO()
    write_results(product_results(TASKS, ["SKIPPED"]), "table", out)
    assert out.getvalue() == "no products\n"
    out = io.StringIO()
    write_results([], "csv", out)
    assert out.getvalue() == "sku,status,action,failure_category,reason\n"


def test_results_command_writes_a_file_and_exits_1_for_an_unknown_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_worker(
        monkeypatch, {"/runs/r/": RUN | {"run_id": "r"}, "/runs/r/tasks/": {"tasks": TASKS}}
    )
    target = tmp_path / "out.jsonl"
    argv = ["workflow", "results", "r", "--format", "jsonl", "--status", "ERROR"]
    assert cli([*argv, "--output", str(target)]) == 0
    assert capsys.readouterr().err == f"wrote 1 products to {target}\n"
    assert [json.loads(line)["sku"] for line in target.read_text().splitlines()] == ["PF-2"]
    assert cli(["workflow", "results", "other"]) == 1
    assert "knows no run 'other'" in capsys.readouterr().err


def test_progress_line() -> None:
    assert progress_line(RUN) == (
        "run dry-cat.v2.0badcafe: 120/500 done (COMPLETED 118, ERROR 2) "
        "· RUNNING 16 · WAITING 364 · PAUSED 0"
    )
    scanning = RUN | {
        "status": "PAUSED",
        "partitions_scanned": 1,
        "tasks_created": 7,
        "counts": {"PAUSED": 5, "AWAITING_MODERATION": 2},
    }
    assert progress_line(scanning) == (
        "run dry-cat.v2.0badcafe: 0/7 done · RUNNING 0 · WAITING 0 · PAUSED 5 "
        "· AWAITING_MODERATION 2 · scanned 1/4 partitions · run PAUSED"
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeRuns:
    url = "http://fake:1"

    def __init__(self, answers: list[object]) -> None:
        self.answers = answers

    def run(self, run_id: str) -> RunState | None:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]


def test_follow_run_prints_changes_until_the_run_completes() -> None:
    done = RUN | {"status": "COMPLETED", "counts": {"COMPLETED": 498, "ERROR": 2}}
    answers: list[object] = [None, CatalogflowError("blip"), RUN, RUN, done]
    out = io.StringIO()
    assert follow_run(FakeRuns(answers), RUN["run_id"], out, FakeClock()) == done
    assert out.getvalue().splitlines() == [
        progress_line(RUN),
        progress_line(done),
        "run dry-cat.v2.0badcafe COMPLETED: 2 ended in ERROR",
    ]


def test_follow_run_gives_up_on_a_run_that_never_appears_or_a_silent_worker() -> None:
    with pytest.raises(CatalogflowError, match="has not picked up run x after 60 s"):
        follow_run(FakeRuns([None]), "x", io.StringIO(), FakeClock())
    with pytest.raises(CatalogflowError, match="gone"):
        follow_run(FakeRuns([RUN, CatalogflowError("gone")]), "x", io.StringIO(), FakeClock())


def test_run_wait_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(workflow_cli, "start_run", lambda settings, wf, by, budget=None: "r")
    monkeypatch.setattr(workflow_cli, "POLL_EVERY_S", 0.0)
    finished = RUN | {"run_id": "r", "status": "COMPLETED", "counts": {"COMPLETED": 500}}
    fake_worker(monkeypatch, {"/products/": {"count": 0}, "/runs/r/": finished})
    assert cli(["workflow", "run", "wf", "--wait"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "run r COMPLETED: no task ended in ERROR"

    failed = finished | {"status": "STOPPED", "counts": {"ERROR": 1, "SKIPPED": 499}}
    fake_worker(monkeypatch, {"/products/": {"count": 0}, "/runs/r/": failed})
    assert cli(["workflow", "run", "wf", "--wait"]) == 1

    fake_worker(monkeypatch, {"/products/": {"count": 0}, "/runs/r/": KeyboardInterrupt()})
    assert cli(["workflow", "run", "wf", "--wait"]) == 130
    assert "stopped following r; the run goes on" in capsys.readouterr().err

    started: list[str] = []
    monkeypatch.setattr(
        workflow_cli, "start_run", lambda settings, wf, by, budget=None: started.append(wf)
    )
    fake_worker(monkeypatch, {"/products/": CatalogflowError("worker at http://x did not answer")})
    assert cli(["workflow", "run", "wf", "--wait"]) == 1
    assert started == []  # no run is started that could not be followed


# --------------------------------------------------------------------------- retry-failed


def failed_task(sku: str, category: str, action: str, *, synced_outputs: bool = False) -> Any:
    """A task state as the worker shows it; a sync failure holds its last action's output."""
    outputs = [{"action_id": "extract", "fields": []}, {"action_id": action, "fields": []}]
    return {
        "task_id": f"{sku}@r",
        "sku": sku,
        "status": "ERROR",
        "action_id": action,
        "failure_category": category,
        "attempt": 0,
        "reason": "failed",
        "outputs": outputs if synced_outputs else outputs[:1],
        "history": [{"action_id": "extract", "status": "WAITING"}],
    }


RETRY_TASKS = [
    failed_task("PF-1", "SYNC_ISSUE", "translate", synced_outputs=True),
    failed_task("PF-2", "INVALID_OUTPUT", "translate"),
    {**failed_task("PF-3", "INVALID_OUTPUT", "translate"), "status": "COMPLETED"},
]
FINISHED = RUN | {"run_id": "r", "status": "COMPLETED", "counts": {"ERROR": 2, "COMPLETED": 1}}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """Record retry_failed calls instead of sending; no applied definition is found."""
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(workflow_cli, "applied_versions", lambda settings: {})
    monkeypatch.setattr(workflow_cli, "retry_failed", lambda settings, *args: calls.append(args))
    return calls


def test_retry_failed_parses_and_refuses_an_unknown_category_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _parser().parse_args(
        ["workflow", "retry-failed", "r", "--category", "sync_issue", "--action", "sync", "--wait"]
    )
    assert (args.run_id, args.category, args.action, args.wait) == ("r", "SYNC_ISSUE", "sync", True)
    with pytest.raises(SystemExit) as exit_:
        cli(["workflow", "retry-failed", "r", "--category", "TIMEOUT"])
    assert exit_.value.code == 2
    assert "invalid choice: 'TIMEOUT'" in capsys.readouterr().err


def test_retry_failed_sends_to_the_runs_workflow_only_what_matches(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sent: list[tuple[object, ...]],
) -> None:
    fake_worker(monkeypatch, {"/runs/r/": FINISHED, "/runs/r/tasks/": {"tasks": RETRY_TASKS}})
    assert cli(["workflow", "retry-failed", "r", "--action", "sync", "--by", "anna"]) == 0
    assert sent == [("dry-cat", "r", "anna", None, "sync")]
    assert capsys.readouterr().out == "sent RETRY_FAILED to run r: 1 task\n"

    assert cli(["workflow", "retry-failed", "r", "--category", "INVALID_OUTPUT", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [t["sku"] for t in printed["retried"]] == ["PF-2"]


def test_retry_failed_exits_2_for_an_unknown_action_and_1_when_nothing_matches(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sent: list[tuple[object, ...]],
) -> None:
    fake_worker(monkeypatch, {"/runs/r/": FINISHED, "/runs/r/tasks/": {"tasks": RETRY_TASKS}})
    assert cli(["workflow", "retry-failed", "r", "--action", "enrich"]) == 2
    assert "run r has no action 'enrich' (its actions: extract, sync)" in capsys.readouterr().err
    assert cli(["workflow", "retry-failed", "r", "--category", "INVALID_PROMPT"]) == 1
    err = capsys.readouterr().err
    assert "nothing to retry: no task of run r is in ERROR with category INVALID_PROMPT" in err
    assert cli(["workflow", "retry-failed", "other"]) == 1
    assert sent == []


def test_retry_selection_tells_sync_failures_from_action_failures() -> None:
    assert workflow_cli.retry_selection(RETRY_TASKS, None, None) == {"PF-1@r": 0, "PF-2@r": 0}
    assert workflow_cli.retry_selection(RETRY_TASKS, None, "sync") == {"PF-1@r": 0}
    assert workflow_cli.retry_selection(RETRY_TASKS, None, "translate") == {"PF-2@r": 0}
    assert workflow_cli.retry_selection(RETRY_TASKS, "SYNC_ISSUE", "translate") == {}


class FakeRetry(FakeRuns):
    def __init__(self, answers: list[tuple[object, list[Any]]]) -> None:
        super().__init__([run for run, _ in answers])
        self.task_answers = [tasks for _, tasks in answers]

    def tasks(self, run_id: str) -> list[TaskState]:
        if len(self.task_answers) > 1:
            return self.task_answers.pop(0)
        return self.task_answers[0]


def test_follow_retry_waits_for_the_retried_tasks_and_the_runs_totals() -> None:
    before = {"PF-1@r": 0}
    old = [RETRY_TASKS[0]]
    moving = [{**RETRY_TASKS[0], "status": "WAITING", "attempt": 1}]
    synced = [{**RETRY_TASKS[0], "status": "SYNCED", "attempt": 1}]
    done = FINISHED | {"counts": {"SYNCED": 1}}
    reopened = FINISHED | {"status": "RUNNING", "counts": {"WAITING": 1}}
    answers: list[tuple[object, list[dict[str, Any]]]] = [
        (FINISHED | {"counts": {"ERROR": 1}}, old),  # the retry has not arrived yet
        (reopened, moving),
        (reopened, synced),  # the task is done, the totals are not yet
        (done, synced),
    ]
    out = io.StringIO()
    run, tasks = workflow_cli.follow_retry(FakeRetry(answers), "r", before, out, FakeClock())
    assert run == done and tasks == synced
    assert out.getvalue().splitlines()[-1] == "run r COMPLETED: no task ended in ERROR"
    with pytest.raises(CatalogflowError, match="has not picked up the retry of run r after 60 s"):
        workflow_cli.follow_retry(FakeRetry([(FINISHED, old)]), "r", before, out, FakeClock())
