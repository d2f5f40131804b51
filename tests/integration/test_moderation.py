"""The moderation gate on a real broker: outputs wait in the compacted ``moderation``
topic, a scripted reviewer approves, edits, rejects and asks for a regeneration, and
only approved (or edited) values reach the sync target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.reader import read_latest
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.cli import main
from tests.integration.catalog import chain_yaml, import_catalog
from tests.integration.engine_actions import TYPES

pytestmark = pytest.mark.kafka

G = "{http://base.google.com/ns/1.0}"
CATALOG = 240
MATCHING = CATALOG // 4


def reviewed_chain(workflow_id: str) -> Any:
    document = yaml.safe_load(chain_yaml(workflow_id))
    document["actions"][2]["moderation"] = {"mode": "always"}
    document["sync"] = {"targets": ["merchant_feed"]}
    return parse_definition(yaml.safe_dump(document), f"{workflow_id}.yaml", TYPES)


def waiting(run: Any) -> int:
    return int(run.get("counts", {}).get("AWAITING_MODERATION", 0))


def test_reviewer_decisions_decide_what_is_synced(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, CATALOG)
    definition = reviewed_chain("dry-cat-reviewed")
    apply_definition(settings, definition, "dry-cat-reviewed.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    worker.wait_for(f"/runs/{run_id}/", lambda r: waiting(r) == MATCHING, timeout=180)

    items = pending_items(settings, run_id=run_id)
    assert len(items) == MATCHING
    first = items[0]
    assert first["review_reason"] == "the action's moderation policy reviews every result"
    assert first["fields"][0]["field"] == "shopping_title"
    assert first["fields"][0]["locale"] == "de_DE"
    assert first["fields"][0]["approved"] is False

    # The same queue from the command line: list (JSON lines) and show, side by side.
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["moderation", "list", "--run", run_id, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == MATCHING
    assert main(["moderation", "show", first["item_id"]]) == 0
    shown = capsys.readouterr().out
    assert "why: the action's moderation policy" in shown and "generated:" in shown
    assert f"shopping_title@de_DE: {first['fields'][0]['value']!r}" in shown
    assert main(["moderation", "edit", first["item_id"], "--field", "nope", "--value", "x"]) == 1
    assert "has no field nope" in capsys.readouterr().err

    rejected, edited, again, approved = items[:5], items[5:10], items[10], items[11:]
    decisions = [decision(i, "REJECT", actor="rita") for i in rejected]
    decisions += [
        decision(
            i,
            "EDIT",
            actor="erik",
            field="shopping_title",
            locale="de_DE",
            value=f"Handgeschrieben {i['sku']}",
        )
        for i in edited
    ]
    decisions.append(decision(again, "REGENERATE", actor="rita", feedback="shorter please"))
    decisions += [decision(i, "APPROVE", actor="anna") for i in approved]
    send_decisions(settings, decisions)

    # The regenerated task comes back for review under a new item id.
    def back(run: Any) -> bool:
        return waiting(run) == 1 and run["counts"].get("SYNCED", 0) == MATCHING - 6

    worker.wait_for(f"/runs/{run_id}/", back, timeout=120)
    [second] = pending_items(settings, run_id=run_id)
    assert second["task_id"] == again["task_id"] and second["item_id"] != again["item_id"]
    send_decisions(settings, [decision(second, "APPROVE", actor="moritz", role="MODERATOR")])

    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert run["counts"] == {"SYNCED": MATCHING - 5, "REJECTED": 5}
    assert pending_items(settings, run_id=run_id) == []  # every item tombstoned

    feed = read_latest(settings, changelog_topic(settings, "feed-content"), "SyncRequest")
    assert set(feed) == {i["sku"] for i in items} - {i["sku"] for i in rejected}
    for item in edited:
        values = {f["attribute"]: f["value"] for f in feed[item["sku"]]["fields"]}
        assert values["shopping_title@de_DE"] == f"Handgeschrieben {item['sku']}"

    tasks = {t["sku"]: t for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]}
    edited_task = tasks[edited[0]["sku"]]
    german = edited_task["outputs"][-1]["fields"][0]
    assert german["reasoning"].startswith("Human-authored by erik (editor)")
    statuses = [h["status"] for h in edited_task["history"]]
    assert statuses[-3:] == ["AWAITING_MODERATION", "WAITING", "SYNCED"]
    assert tasks[rejected[0]["sku"]]["status"] == "REJECTED"
    regenerated = [h["status"] for h in tasks[again["sku"]]["history"]]
    assert regenerated.count("AWAITING_MODERATION") == 2

    # The Merchant Center feed, in German, from the approved content.
    xml, tsv = tmp_path / "feed.xml", tmp_path / "feed.tsv"
    args = ["feed", "write", "--xml", str(xml), "--tsv", str(tsv)]
    assert main([*args, "--shop-url", "https://shop.example", "--locale", "de_DE"]) == 0
    channel = ElementTree.parse(xml).getroot().find("channel")
    assert channel is not None
    entries = {e.findtext(f"{G}id"): e for e in channel.findall("item")}
    assert set(entries) == set(feed)
    title = entries[edited[0]["sku"]].findtext(f"{G}title")
    assert title == f"Handgeschrieben {edited[0]['sku']}"
    header = tsv.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert "structured_title" in header and "id" in header


def test_after_approval_sync_writes_only_what_a_person_approved(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, 200)  # 50 Dry Cat Food
    document = yaml.safe_load(chain_yaml("dry-cat-approved-sync"))
    document["sync"] = {"targets": ["merchant_feed"], "mode": "after_approval"}
    definition = parse_definition(yaml.safe_dump(document), "approved-sync.yaml", TYPES)
    apply_definition(settings, definition, "approved-sync.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    worker.wait_for(f"/runs/{run_id}/", lambda r: waiting(r) == 50, timeout=180)

    items = pending_items(settings, run_id=run_id)
    assert {i["action_id"] for i in items} == {"sync"}
    fields = {(f["field"], f["locale"]) for f in items[0]["fields"]}
    assert fields == {("flavor", None), ("shopping_title", None), ("shopping_title", "de_DE")}
    trimmed, dropped, rest = items[0], items[1], items[2:]
    send_decisions(
        settings,
        [
            decision(trimmed, "REJECT", actor="rita", field="shopping_title", locale="de_DE"),
            decision(trimmed, "APPROVE", actor="rita"),
            decision(dropped, "REJECT", actor="rita"),
        ]
        + [decision(i, "APPROVE", actor="anna") for i in rest],
    )
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert run["counts"] == {"SYNCED": 49, "REJECTED": 1}
    feed = read_latest(settings, changelog_topic(settings, "feed-content"), "SyncRequest")
    assert dropped["sku"] not in feed and len(feed) == 49
    kept = {f["attribute"] for f in feed[trimmed["sku"]]["fields"]}
    assert kept == {"flavor", "shopping_title"}


def test_a_full_review_queue_holds_products_back_until_reviews_make_room(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, 200)  # 50 Dry Cat Food
    document = yaml.safe_load(chain_yaml("dry-cat-queue"))
    limit = 2 * settings.partitions
    document["actions"][1]["moderation"] = {"mode": "always", "queue_limit": limit}
    definition = parse_definition(yaml.safe_dump(document), "queue.yaml", TYPES)
    apply_definition(settings, definition, "queue.yaml", "test")
    run_id = start_run(settings, definition.id, "test")

    approved, rounds = 0, 0
    while approved < 50:

        def settled(run: Any, done: int = approved) -> bool:
            counts = run.get("counts", {})
            moving = counts.get("WAITING", 0) + counts.get("RUNNING", 0)
            return counts.get("COMPLETED", 0) == done and not moving and waiting(run) > 0

        run = worker.wait_for(f"/runs/{run_id}/", settled, timeout=120)
        assert waiting(run) <= limit, run  # never more than the limit waits for review
        assert waiting(run) + run["counts"].get("PAUSED", 0) == 50 - approved
        items = pending_items(settings, run_id=run_id)
        send_decisions(settings, [decision(i, "APPROVE", actor="anna") for i in items])
        approved += len(items)
        rounds += 1
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert run["counts"] == {"COMPLETED": 50} and rounds >= 50 // limit
