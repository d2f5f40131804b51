"""The operator's CLI over the read side on the real broker: ``status --follow``,
filtered exports, and the two-worker acceptance (API and CLI against the workers'
own views, on SQLite and on PostgreSQL).

Runs use ``SIZE`` products (120 by default so the suite stays fast; 2,000 with
``CATALOGFLOW_FULL=1``, so the run has the issue's 500 tasks); a quarter of them match
the test chain.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.apithread import ApiThread
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.api.auth import hash_token, new_token
from catalogflow.apiclient import ApiReadSide
from catalogflow.cli import main
from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.store import open_read_model
from catalogflow.readmodel.views import ProductHistory, RunSummary, TaskFilter, TaskResult
from tests.integration.catalog import chain, chain_yaml, import_catalog
from tests.integration.engine_actions import TYPES
from tests.integration.readside_fixtures import Cli, cli, read_model, read_settings

__all__ = ["cli", "read_model", "read_settings"]  # the fixtures

pytestmark = pytest.mark.kafka

SIZE = 2000 if os.environ.get("CATALOGFLOW_FULL") == "1" else 120
MATCHING = SIZE // 4


def worker_tasks(workers: list[WorkerProcess], run_id: str) -> list[dict[str, Any]]:
    """Every task of the run as the workers' own views show it (each its partitions).
    A worker may still hold rows of a partition a rebalance moved away (faust keeps
    them): of two copies, the later one is the owner's."""
    latest: dict[str, dict[str, Any]] = {}
    for worker in workers:
        for task in worker.get(f"/runs/{run_id}/tasks/").get("tasks", []):
            known = latest.get(task["task_id"])
            if known is None or str(task["at"]) > str(known["at"]):
                latest[task["task_id"]] = task
    return list(latest.values())


def worker_run(workers: list[WorkerProcess], run_id: str) -> dict[str, Any]:
    """The run's totals from the worker that keeps them: the copy that has applied the
    most task events (a worker may keep a stale copy of a partition it lost)."""
    answers = [worker.get(f"/runs/{run_id}/") for worker in workers]
    known = [a for a in answers if isinstance(a, dict) and "error" not in a]
    if not known:
        raise AssertionError(f"no worker knows run {run_id}")
    return max(known, key=lambda run: sum(run.get("applied_sources", {}).values()))


def test_status_follow_shows_progress_per_action_until_the_run_completes(
    read_settings: Settings, start_worker: Callable[..., WorkerProcess], cli: Cli
) -> None:
    worker = start_worker()
    import_catalog(read_settings, worker, SIZE)
    definition = chain("follow", extract={"delay": 0.02})
    apply_definition(read_settings, definition, "follow.yaml", "test")
    run_id = start_run(read_settings, "follow", "test")

    code, out, err = cli("workflow", "status", run_id, "--follow")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == f"run {run_id} COMPLETED: no task ended in ERROR"
    assert "\x1b" not in out  # captured output is not a terminal: plain lines
    for action in ("extract", "enrich", "translate"):
        shown = [line for line in lines if line.lstrip().startswith(f"{action} ")]
        assert shown, out
        assert shown[-1].split()[1] == f"{MATCHING}/{MATCHING}"
    assert lines[-5].startswith(f"run {run_id}: {MATCHING}/{MATCHING} done (COMPLETED {MATCHING})")


def test_results_below_a_confidence_export_exactly_the_tasks_the_filter_selects(
    read_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    cli: Cli,
    tmp_path: Path,
) -> None:
    worker = start_worker()
    import_catalog(read_settings, worker, SIZE)
    low = {f"PF-{i:06d}": 0.3 for i in range(0, SIZE, 8)}  # every other Dry Cat Food SKU
    low |= {f"PF-{i:06d}": 0.5 for i in range(4, SIZE, 16)}  # not below 0.5
    definition = chain("confident", extract={"confidence": low})
    apply_definition(read_settings, definition, "confident.yaml", "test")
    run_id = start_run(read_settings, "confident", "test")
    assert cli("workflow", "status", run_id, "--follow")[0] == 0

    expected = {
        t["task_id"]
        for t in worker_tasks([worker], run_id)
        if any(
            f["confidence"] is not None and f["confidence"] < 0.5
            for o in t["outputs"]
            for f in o["fields"]
        )
    }
    assert expected and len(expected) < MATCHING
    jsonl, table = tmp_path / "low.jsonl", tmp_path / "low.csv"
    for fmt, target in (("jsonl", jsonl), ("csv", table)):
        code, _, err = cli(
            "workflow", "results", run_id, "--confidence-below", "0.5", "--export", fmt, str(target)
        )
        assert code == 0, err
    exported = [TaskResult.model_validate_json(line) for line in jsonl.read_text().splitlines()]
    assert sorted(t.task_id for t in exported) == sorted(expected)  # each exactly once
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["task_id"] for row in rows} == expected


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, read_settings: Settings) -> Settings:
    if request.param == "sqlite":
        return read_settings
    make = request.getfixturevalue("new_database")  # skips when no PostgreSQL is installed
    return read_settings.replace(read_model_url=make())


def test_two_workers_status_and_results_from_the_api_and_the_cli_match_the_workers(
    backend: Settings,
    start_worker: Callable[..., WorkerProcess],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = new_token()
    settings = backend.replace(
        api_port=free_port(), api_url="", api_tokens=f"ops:viewer:{hash_token(token)}"
    )
    workers = [start_worker(), start_worker(worker_id="w2", web_port=free_port())]
    import_catalog(settings, workers[0], SIZE)
    engine = open_read_model(settings)
    projector = Projector(settings, engine)
    projector.start()
    api = ApiThread(settings, engine)
    api.start()
    try:
        for name, value in settings.to_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(settings.api_token_env, token)
        apply_definition(settings, chain("two"), "two.yaml", "test")
        run_id = start_run(settings, "two", "test")
        assert main(["workflow", "status", run_id, "--follow", "--read-model"]) == 0
        capsys.readouterr()

        deadline = time.monotonic() + 60  # the runs agent may trail the read model a little
        while worker_run(workers, run_id)["status"] != "COMPLETED":
            assert time.monotonic() < deadline, "the workers never saw the run complete"
            time.sleep(0.2)
        theirs = worker_run(workers, run_id)
        their_tasks = {t["task_id"]: t["status"] for t in worker_tasks(workers, run_id)}
        assert len(their_tasks) == MATCHING == theirs["tasks_created"]

        client = ApiReadSide(api.url, settings.api_token_env)
        from_api = client.run(run_id)
        api_tasks = list(client.all_tasks(run_id, TaskFilter()))
        for summary, tasks in ((from_api, api_tasks),):
            assert summary.counts == theirs["counts"]
            assert summary.tasks_created == theirs["tasks_created"]
            assert len(tasks) == len({t.task_id for t in tasks})  # every task exactly once
            assert {t.task_id: t.status for t in tasks} == their_tasks

        for where in (["--api", api.url], ["--read-model"]):
            assert main(["workflow", "status", run_id, "--json", *where]) == 0
            from_cli = RunSummary.model_validate_json(capsys.readouterr().out)
            assert from_cli.counts == theirs["counts"]
            seen: dict[str, str] = {}
            cursor: list[str] = []
            while True:
                argv = ["workflow", "results", run_id, "--json", "--limit", "7", *cursor, *where]
                assert main(argv) == 0
                page = json.loads(capsys.readouterr().out)
                for item in page["items"]:
                    assert item["task_id"] not in seen
                    seen[item["task_id"]] = item["status"]
                if page["next_cursor"] is None:
                    break
                cursor = ["--cursor", page["next_cursor"]]
            assert seen == their_tasks
        client.close()
    finally:
        api.stop()
        projector.stop()
        engine.dispose()


def test_history_of_an_extracted_regenerated_edited_and_synced_product(
    read_settings: Settings, start_worker: Callable[..., WorkerProcess], cli: Cli
) -> None:
    settings = read_settings
    worker = start_worker()
    import_catalog(settings, worker, 40)
    document = yaml.safe_load(chain_yaml("reviewed"))
    document["actions"][2]["moderation"] = {"mode": "always"}
    document["sync"] = {"targets": ["merchant_feed"]}
    definition = parse_definition(yaml.safe_dump(document), "reviewed.yaml", TYPES)
    apply_definition(settings, definition, "reviewed.yaml", "test")
    run_id = start_run(settings, definition.id, "test")

    def waiting(run: Any) -> int:
        return int(run.get("counts", {}).get("AWAITING_MODERATION", 0))

    worker.wait_for(f"/runs/{run_id}/", lambda r: waiting(r) == 10, timeout=180)
    items = sorted(pending_items(settings, run_id=run_id), key=lambda i: i["sku"])
    target, others = items[0], items[1:]
    send_decisions(
        settings,
        [decision(target, "REGENERATE", actor="rita", feedback="shorter please")]
        + [decision(i, "APPROVE", actor="anna") for i in others],
    )
    worker.wait_for(f"/runs/{run_id}/", lambda r: waiting(r) == 1, timeout=120)
    [second] = pending_items(settings, run_id=run_id)
    edit = decision(
        second, "EDIT", actor="erik", field="shopping_title", locale="de_DE", value="Kurz"
    )
    send_decisions(settings, [edit])
    worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=120)
    assert cli("workflow", "status", run_id, "--follow")[0] == 0  # the read model caught up

    code, out, err = cli("history", target["sku"], "--json")
    assert code == 0, err
    entries = ProductHistory.model_validate_json(out).entries
    # What happened, in order: the three outputs, the REGENERATE, translate again, the
    # EDIT, the sync; outputs with their model, decisions with who.
    story = [
        e.action_id if e.kind == "output" else (e.decision.decision if e.decision else e.kind)
        for e in entries
        if e.kind != "transition"
    ]
    assert story == ["extract", "enrich", "translate", "REGENERATE", "translate", "EDIT", "sync"]
    decided = [(e.decision.decision, e.decision.actor_id) for e in entries if e.decision]
    assert decided == [("REGENERATE", "rita"), ("EDIT", "erik")]
    assert {e.sync.status for e in entries if e.sync} == {"SYNCED"}
    assert all(e.model == "test" for e in entries if e.kind == "output")
    assert [e.at for e in entries] == sorted(e.at for e in entries)

    code, text, _ = cli("history", target["sku"])
    assert code == 0
    assert "decision REGENERATE by rita" in text and "decision EDIT shopping_title" in text
    assert "by erik" in text and ": output by test, prompt " in text
    assert "sync to merchant_feed" in text and "SYNCED" in text
    assert cli("history", "NO-SUCH-SKU")[0] == 1
