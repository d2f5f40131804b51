"""The read commands over a fake ReadSide, and the API client over a fake transport."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import DeadLetter
from catalogflow.streams.settings import Settings
from rich.console import Console

from catalogflow import dlq_cli, history_cli, progress, readside, workflow_cli
from catalogflow.apiclient import ApiReadSide, ApiRefused, ApiUnavailable
from catalogflow.cli import main
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import (
    DEFAULT_PAGE,
    ActionRef,
    ActionTotals,
    BadQuery,
    DeadLetterView,
    DecisionView,
    FieldResult,
    HistoryEntry,
    ModerationQueueItem,
    NotFound,
    Page,
    ProductHistory,
    RunSummary,
    SyncResultView,
    TaskFilter,
    TaskResult,
    WorkflowDetail,
    WorkflowSummary,
    WorkflowVersionView,
)

AT = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)


def run_summary(status: str = "RUNNING", **counts: int) -> RunSummary:
    per_action = {
        "extract": {},
        "translate": {k: v for k, v in counts.items() if v},
    }
    return RunSummary(
        run_id="r",
        workflow_id="dry-cat",
        workflow_version=2,
        mode="one_time",
        status=status,
        partitions=4,
        partitions_scanned=4,
        tasks_created=10,
        counts={k: v for k, v in counts.items() if v},
        actions=[ActionTotals(action_id=a, counts=c) for a, c in per_action.items()],
        started_at=AT,
        finished_at=None,
        cost=0.5,
        input_tokens=100,
        output_tokens=50,
        budget=None,
        budget_reached=False,
    )


def task(sku: str, status: str, category: str | None = None, attempt: int = 0) -> TaskResult:
    return TaskResult(
        task_id=f"{sku}@r",
        run_id="r",
        workflow_id="dry-cat",
        sku=sku,
        action_id="translate",
        step_index=1,
        status=status,
        reason="failed" if status == "ERROR" else None,
        failure_category=category,
        attempt=attempt,
        at=AT,
        min_confidence=0.4,
        moderation_state=None,
        sync_status=None,
        cost=0.1,
        input_tokens=10,
        output_tokens=5,
        fields=[
            FieldResult(
                action_id="extract",
                attempt=0,
                field="flavor",
                locale=None,
                value="Tuna",
                reasoning="says tuna",
                confidence=0.4,
                evidence=None,
                approved=False,
                model="m",
                prompt_version="p1",
            )
        ],
    )


LETTER = DeadLetterView(
    dead_letter_id="d1",
    source_topic="catalogflow.task-events",
    source_partition=0,
    source_offset=7,
    key="PF-1",
    value_size=3,
    reason="undecodable",
    detail="bad magic byte",
    agent="projector",
    failed_at=AT,
)


class FakeSide:
    """A ReadSide answering from lists; it records the filters it was asked."""

    def __init__(self, runs: list[RunSummary], tasks: list[TaskResult] | None = None) -> None:
        self.runs_ = runs
        self.task_list = tasks or []
        self.asked: list[tuple[TaskFilter, str | None, int]] = []

    def workflows(self) -> list[WorkflowSummary]:
        return [
            WorkflowSummary(
                workflow_id="dry-cat",
                name="Dry cat",
                mode="one_time",
                latest_version=2,
                actions=[ActionRef(id="extract", type="extraction")],
                applied_by="anna",
                applied_at=AT,
                last_run_id="r",
                last_run_status="RUNNING",
                last_run_at=AT,
            )
        ]

    def workflow(self, workflow_id: str) -> WorkflowDetail:
        if workflow_id != "dry-cat":
            raise NotFound(f"no workflow {workflow_id!r}")
        version = WorkflowVersionView(
            workflow_id="dry-cat",
            version=2,
            content_hash="abc123",
            definition="{}",
            source="f.yaml",
            applied_by="anna",
            applied_at=AT,
        )
        return WorkflowDetail(workflow=self.workflows()[0], versions=[version])

    def runs(self, workflow_id: str | None = None) -> list[RunSummary]:
        return self.runs_[:1]

    def run(self, run_id: str) -> RunSummary:
        if run_id != "r":
            raise NotFound(f"no run {run_id!r}")
        return self.runs_.pop(0) if len(self.runs_) > 1 else self.runs_[0]

    def tasks(
        self, run_id: str, filters: TaskFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[TaskResult]:
        self.run(run_id) if run_id != "r" else None
        if filters.failure_category == "NOPE":
            raise BadQuery("failure_category 'NOPE' is not one of …")
        self.asked.append((filters, cursor, limit))
        wanted = [t for t in self.task_list if not filters.status or t.status in filters.status]
        return Page[TaskResult](items=wanted[:limit], next_cursor="next" if wanted else None)

    def all_tasks(self, run_id: str, filters: TaskFilter) -> Iterator[TaskResult]:
        yield from self.tasks(run_id, filters, None, 1000).items

    def moderation_queue(
        self,
        workflow_id: str | None = None,
        action_id: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> Page[ModerationQueueItem]:
        return Page[ModerationQueueItem](items=[], next_cursor=None)

    def dead_letters(
        self, reason: str | None = None, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[DeadLetterView]:
        return Page[DeadLetterView](items=[LETTER], next_cursor=None)

    def dead_letter(self, dead_letter_id: str) -> DeadLetterView:
        if dead_letter_id != "d1":
            raise NotFound(f"no dead letter {dead_letter_id!r}")
        return LETTER

    def history(self, sku: str) -> ProductHistory:
        if sku != "PF-1":
            raise NotFound(f"no product {sku!r}")
        decision = DecisionView(
            decision_id="x",
            item_id="i",
            task_id="PF-1@r",
            sku="PF-1",
            decision="EDIT",
            field="flavor",
            locale=None,
            edited_value="Salmon",
            feedback=None,
            actor_id="anna",
            role="EDITOR",
            decided_at=AT,
        )
        sync = SyncResultView(
            request_id="q",
            task_id="PF-1@r",
            sku="PF-1",
            target="magento",
            store_scope="all",
            status="SYNCED",
            error_category=None,
            message=None,
            fields=[],
            at=AT,
        )
        step = task("PF-1", "COMPLETED")
        return ProductHistory(
            sku="PF-1",
            entries=[
                HistoryEntry(
                    at=AT,
                    kind="output",
                    run_id="r",
                    task_id="PF-1@r",
                    action_id="extract",
                    model="m",
                    prompt_version="p1",
                    fields=step.fields,
                ),
                HistoryEntry(
                    at=AT,
                    kind="decision",
                    run_id="r",
                    task_id="PF-1@r",
                    action_id=None,
                    decision=decision,
                ),
                HistoryEntry(
                    at=AT, kind="sync", run_id="r", task_id="PF-1@r", action_id=None, sync=sync
                ),
            ],
        )


@pytest.fixture
def side(monkeypatch: pytest.MonkeyPatch) -> FakeSide:
    fake = FakeSide(
        [run_summary(COMPLETED=8, ERROR=2)],
        [task("PF-1", "COMPLETED"), task("PF-2", "ERROR", "INVALID_OUTPUT")],
    )
    for module in (workflow_cli, history_cli, dlq_cli):
        monkeypatch.setattr(module, "for_args", lambda settings, args: fake)
    monkeypatch.setattr(progress, "POLL_EVERY_S", 0.0)
    return fake


def out_of(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


# ---------------------------------------------------------------------- results


def test_results_options_map_to_the_task_filter(side: FakeSide) -> None:
    argv = ["workflow", "results", "r", "--action", "translate", "--status", "error"]
    argv += ["--status", "SKIPPED", "--failure-category", "invalid_output"]
    argv += ["--confidence-below", "0.5", "--moderation-state", "pending"]
    argv += ["--sync-status", "synced", "--search", "Tuna", "--limit", "5", "--cursor", "c1"]
    assert main(argv) == 0
    assert side.asked == [
        (
            TaskFilter(
                action="translate",
                status=["ERROR", "SKIPPED"],
                failure_category="INVALID_OUTPUT",
                confidence_below=0.5,
                moderation_state="PENDING",
                sync_status="SYNCED",
                q="Tuna",
            ),
            "c1",
            5,
        )
    ]


def test_results_json_is_a_page_and_the_table_names_the_next_cursor(
    side: FakeSide, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workflow", "results", "r", "--json"]) == 0
    page = Page[TaskResult].model_validate_json(out_of(capsys))
    assert [t.sku for t in page.items] == ["PF-1", "PF-2"] and page.next_cursor == "next"
    assert main(["workflow", "results", "r", "--status", "ERROR"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "SKU   STATUS  ACTION     FAILURE CATEGORY  REASON",
        "PF-2  ERROR   translate  INVALID_OUTPUT    failed",
        "    extract/flavor = Tuna  (confidence 0.40; says tuna)",
    ]
    assert captured.err == "more: --cursor next\n"


def test_results_exit_1_for_an_unknown_run_and_2_for_a_bad_filter(
    side: FakeSide, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workflow", "results", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    side.asked.clear()
    assert main(["workflow", "results", "r", "--failure-category", "INVALID_OUTPUT"]) == 0
    for argv in (
        ["workflow", "results", "r", "--limit", "0"],
        ["workflow", "results", "r", "--export", "xml", "f"],
        ["workflow", "results", "r", "--status", "DONE"],
        ["workflow", "results", "r", "--api", "http://x", "--read-model"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2


def test_results_export_in_direct_mode_uses_the_one_export_format(
    side: FakeSide, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.jsonl"
    argv = ["workflow", "results", "r", "--status", "ERROR", "--export", "jsonl", str(target)]
    assert main(argv) == 0
    assert capsys.readouterr().err == f"wrote 1 tasks to {target} (jsonl)\n"
    (line,) = target.read_text().splitlines()
    assert TaskResult.model_validate_json(line).sku == "PF-2"
    csv_target = tmp_path / "out.csv"
    assert main(["workflow", "results", "r", "--export", "CSV", str(csv_target)]) == 0
    rows = csv_target.read_text().splitlines()
    assert rows[0].startswith("task_id,run_id,") and len(rows) == 3


# ---------------------------------------------------------------------- status, list, show


def test_status_text_json_and_unknown_run(
    side: FakeSide, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workflow", "status", "r"]) == 0
    assert out_of(capsys).splitlines() == [
        "run r: RUNNING",
        "  workflow   dry-cat version 2 (one_time)",
        "  started    2025-01-02 10:00:00+00:00",
        "  finished   -",
        "  tasks      10 created",
        "  by status  COMPLETED 8, ERROR 2",
        "  by action",
        "    translate  COMPLETED 8, ERROR 2",
        "  cost       0.5000 (100 in / 50 out tokens)",
    ]
    assert main(["workflow", "status", "r", "--json"]) == 0
    assert RunSummary.model_validate_json(out_of(capsys)).counts == {"COMPLETED": 8, "ERROR": 2}
    assert main(["workflow", "status", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err


def test_list_and_show(side: FakeSide, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "list", "--json"]) == 0
    assert [w["workflow_id"] for w in json.loads(out_of(capsys))] == ["dry-cat"]
    assert main(["workflow", "list"]) == 0
    assert out_of(capsys).splitlines()[1].split() == [
        *("dry-cat", "v2", "one_time", "extract", "r", "RUNNING")
    ]
    assert main(["workflow", "show", "dry-cat", "--json"]) == 0
    assert WorkflowDetail.model_validate_json(out_of(capsys)).versions[0].version == 2
    assert main(["workflow", "show", "dry-cat"]) == 0
    assert "    v2  2025-01-02 10:00:00  by anna  from f.yaml  (abc123)" in out_of(capsys)
    assert main(["workflow", "show", "other"]) == 1


def test_follow_on_a_non_terminal_prints_plain_per_action_lines_until_the_run_completes(
    side: FakeSide, capsys: pytest.CaptureFixture[str]
) -> None:
    side.runs_ = [
        run_summary(RUNNING=4, WAITING=6),
        run_summary(RUNNING=4, WAITING=6),
        run_summary(RUNNING=1, COMPLETED=9),
        run_summary("COMPLETED", COMPLETED=9, ERROR=1),
    ]
    assert main(["workflow", "status", "r", "--follow"]) == 1  # a task ended in ERROR
    lines = out_of(capsys).splitlines()
    assert "\x1b" not in "".join(lines)  # no terminal control codes in a pipe
    assert lines == [
        "run r: 0/10 done · RUNNING 4 · WAITING 6 · PAUSED 0",
        "  extract    10/10 · running 0 · awaiting moderation 0 · synced 0 · failed 0",
        "  translate  0/10 · running 4 · awaiting moderation 0 · synced 0 · failed 0",
        "run r: 9/10 done (COMPLETED 9) · RUNNING 1 · WAITING 0 · PAUSED 0",
        "  extract    10/10 · running 0 · awaiting moderation 0 · synced 0 · failed 0",
        "  translate  9/10 · running 1 · awaiting moderation 0 · synced 0 · failed 0",
        "run r: 10/10 done (COMPLETED 9, ERROR 1) · RUNNING 0 · WAITING 0 · PAUSED 0",
        "  extract    10/10 · running 0 · awaiting moderation 0 · synced 0 · failed 0",
        "  translate  10/10 · running 0 · awaiting moderation 0 · synced 0 · failed 1",
        "run r COMPLETED: 1 ended in ERROR",
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1.0)


def test_follow_gives_up_on_a_run_that_never_appears() -> None:
    clock = FakeClock()
    with pytest.raises(CatalogflowError, match="has not seen run x after 60 s"):
        progress.follow_run(
            FakeSide([run_summary()]),
            "x",
            progress.PlainDisplay(io.StringIO(), clock),
            clock,
        )


def test_run_wait_follows_the_read_side_and_exits_by_errors(
    side: FakeSide, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(workflow_cli, "start_run", lambda settings, wf, by, budget=None: "r")
    side.runs_ = [run_summary("COMPLETED", COMPLETED=10)]
    assert main(["workflow", "run", "dry-cat", "--wait"]) == 0
    assert out_of(capsys).splitlines()[-1] == "run r COMPLETED: no task ended in ERROR"
    side.runs_ = [run_summary("STOPPED", ERROR=1, SKIPPED=9)]
    assert main(["workflow", "run", "dry-cat", "--wait"]) == 1


# ---------------------------------------------------------------------- retry-failed


def test_retry_failed_selects_by_the_workers_rule_over_task_results(
    side: FakeSide, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(workflow_cli, "retry_failed", lambda settings, *args: sent.append(args))
    side.task_list = [
        task("PF-1", "ERROR", "SYNC_ISSUE"),
        task("PF-2", "ERROR", "INVALID_OUTPUT"),
        task("PF-3", "COMPLETED"),
    ]
    assert main(["workflow", "retry-failed", "r", "--action", "sync", "--by", "anna"]) == 0
    assert sent == [("dry-cat", "r", "anna", None, "sync")]
    assert out_of(capsys) == "sent RETRY_FAILED to run r: 1 task\n"
    assert main(["workflow", "retry-failed", "r", "--action", "translate", "--json"]) == 0
    assert [t["sku"] for t in json.loads(out_of(capsys))["retried"]] == ["PF-2"]
    assert main(["workflow", "retry-failed", "r", "--action", "enrich"]) == 2
    assert "(its actions: extract, translate, sync)" in capsys.readouterr().err
    assert main(["workflow", "retry-failed", "r", "--category", "INVALID_PROMPT"]) == 1
    assert main(["workflow", "retry-failed", "nope"]) == 1
    assert len(sent) == 2


def test_retry_failed_wait_follows_the_retried_tasks(
    side: FakeSide, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(workflow_cli, "retry_failed", lambda settings, *args: None)
    before = [task("PF-1", "ERROR", "INVALID_OUTPUT")]
    after = [task("PF-1", "COMPLETED", attempt=1)]
    answers = iter([before, before, after])

    def all_tasks(run_id: str, filters: TaskFilter) -> Iterator[TaskResult]:
        return iter(before if filters.status == ["ERROR"] else next(answers, after))

    monkeypatch.setattr(side, "all_tasks", all_tasks)
    side.runs_ = [run_summary(ERROR=1), run_summary("COMPLETED", COMPLETED=1)]
    assert main(["workflow", "retry-failed", "r", "--wait"]) == 0
    assert out_of(capsys).splitlines()[-1] == "run r COMPLETED: no task ended in ERROR"


# ---------------------------------------------------------------------- history, dlq


def test_history_lists_every_step_with_lineage_decisions_and_sync(
    side: FakeSide, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "PF-1"]) == 0
    assert out_of(capsys).splitlines() == [
        "PF-1: 3 entries",
        "2025-01-02 10:00:00  r extract: output by m, prompt p1, input -, tokens 0/0, cost 0.0000",
        "    flavor = Tuna (confidence 0.40)",
        "2025-01-02 10:00:00  r: decision EDIT flavor by anna (EDITOR)",
        "    value = Salmon",
        "2025-01-02 10:00:00  r: sync to magento/all: SYNCED",
    ]
    assert main(["history", "PF-1", "--json"]) == 0
    kinds = [e.kind for e in ProductHistory.model_validate_json(out_of(capsys)).entries]
    assert kinds == ["output", "decision", "sync"]
    assert main(["history", "PF-9"]) == 1


def test_dlq_list_show_and_a_direct_replay(
    side: FakeSide, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--json"]) == 0
    page = Page[DeadLetterView].model_validate_json(out_of(capsys))
    assert [d.dead_letter_id for d in page.items] == ["d1"]
    assert main(["dlq", "show", "d1"]) == 0
    assert "  from     catalogflow.task-events[0]@7" in out_of(capsys)
    assert main(["dlq", "show", "d2"]) == 1

    replayed: list[DeadLetter] = []
    record: DeadLetter = {
        "source_topic": "catalogflow.task-events",
        "source_partition": 0,
        "source_offset": 7,
        "key": b"PF-1",
        "value": b"bad",
        "reason": "undecodable",
        "detail": "",
        "agent": "projector",
        "failed_at": AT,
    }

    class Direct(ReadModelQueries):
        def __init__(self) -> None:
            pass

        def dead_letter_record(self, dead_letter_id: str) -> DeadLetter:
            return record

    monkeypatch.setattr(dlq_cli, "for_args", lambda settings, args: Direct())

    def replay(settings: Settings, letter: DeadLetter) -> str:
        replayed.append(letter)
        return "catalogflow.task-events"

    monkeypatch.setattr(dlq_cli, "replay", replay)
    assert main(["dlq", "replay", "d1"]) == 0
    assert replayed == [record]


# ---------------------------------------------------------------------- the API client


def client(handler: Any, environ: dict[str, str] | None = None) -> ApiReadSide:
    return ApiReadSide(
        "http://api:1",
        "CATALOGFLOW_TOKEN",
        environ=environ if environ is not None else {"CATALOGFLOW_TOKEN": "s3cret"},
        transport=httpx.MockTransport(handler),
    )


def test_the_client_parses_views_and_sends_filters_and_the_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/runs/r":
            return httpx.Response(200, text=run_summary().model_dump_json())
        page = Page[TaskResult](items=[task("PF-1", "ERROR")], next_cursor=None)
        return httpx.Response(200, text=page.model_dump_json())

    api = client(handler)
    assert api.run("r").run_id == "r"
    filters = TaskFilter(status=["ERROR", "SKIPPED"], confidence_below=0.5, q="cat")
    assert [t.sku for t in api.all_tasks("r", filters)] == ["PF-1"]
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert seen[1].url.params.get_list("status") == ["ERROR", "SKIPPED"]
    assert seen[1].url.params["confidence_below"] == "0.5"
    assert seen[1].url.params["q"] == "cat"


def test_the_clients_errors_are_ours_and_never_show_the_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        code = {"/api/runs/a": 404, "/api/runs/b": 400, "/api/runs/c": 401}.get(
            request.url.path, 403
        )
        body = {"error": "x", "message": f"problem {code}"}
        return httpx.Response(code, json=body)

    api = client(handler)
    with pytest.raises(NotFound, match="problem 404"):
        api.run("a")
    with pytest.raises(BadQuery, match="problem 400"):
        api.run("b")
    with pytest.raises(ApiRefused) as refused:
        api.run("c")
    assert "$CATALOGFLOW_TOKEN" in str(refused.value) and "s3cret" not in str(refused.value)
    with pytest.raises(ApiRefused, match="problem 403"):
        api.run("d")


def test_a_refused_connection_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ApiUnavailable, match="no API answers at http://api:1"):
        client(handler).run("r")
    assert not client(handler).healthy()


def test_the_client_streams_an_export_to_a_file(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/runs/r/export.csv"
        assert request.url.params["status"] == "ERROR"
        return httpx.Response(200, content=b"a,b\n1,2\n")

    target = tmp_path / "x.csv"
    assert client(handler).export("r", TaskFilter(status=["ERROR"]), "csv", target) == 8
    assert target.read_bytes() == b"a,b\n1,2\n"


def test_read_side_insists_on_a_named_api_and_falls_back_to_the_read_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings.load(environ={"CATALOGFLOW_API_URL": "http://127.0.0.1:9"})
    direct = FakeSide([run_summary()])
    monkeypatch.setattr(readside, "direct", lambda s: direct)
    assert readside.read_side(settings) is direct
    assert readside.read_side(settings, db=True) is direct
    with pytest.raises(ApiUnavailable, match=r"http://127\.0\.0\.1:9"):
        readside.read_side(settings, api="http://127.0.0.1:9")


def test_on_a_terminal_follow_draws_a_rich_bar_per_action() -> None:
    screen = io.StringIO()
    side = FakeSide([run_summary(RUNNING=4, WAITING=6), run_summary("COMPLETED", COMPLETED=10)])
    display = progress.RichDisplay(Console(file=screen, force_terminal=True, width=160))
    assert progress.follow_run(side, "r", display, FakeClock()).status == "COMPLETED"
    drawn = screen.getvalue()
    assert "\x1b[" in drawn and "━" in drawn  # a terminal's bars, not plain lines
    assert "translate" in drawn and "10/10" in drawn
    assert drawn.rstrip().endswith("run r COMPLETED: no task ended in ERROR")
