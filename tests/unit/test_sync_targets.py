"""Sync targets as plug-ins (``connectors/targets/``): the registry finds the built-in
targets and the ``sync_plugins`` ones by name, definitions accept only names it knows,
every target keeps the same contract, and the worker closes every target it built."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from catalogflow.agents.routing import Router
from catalogflow.connectors.magento.target import MagentoTarget
from catalogflow.connectors.targets.base import SyncTarget, TargetContext, write_limit
from catalogflow.connectors.targets.registry import builtin_targets, load_targets
from catalogflow.streams.app import Topology
from catalogflow.streams.clock import FakeClock
from catalogflow.streams.definitions import DefinitionError, WorkflowDefinition, parse_definition
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.records import ActionOutput, Task
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import sync_requests

from catalogflow.worker import build_worker
from tests.integration import jsonl_target

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WORKFLOW = """
id: wf
mode: one_time
actions: [{id: a, type: noop}]
sync: {targets: [magento, jsonl]}
"""


def plugin_settings(tmp_path: Path) -> Settings:
    return Settings.load(environ={}).replace(
        data_dir=tmp_path / "worker", sync_plugins=jsonl_target.MODULE
    )


def test_the_registry_holds_the_built_in_targets_and_the_sync_plugins_ones(
    tmp_path: Path,
) -> None:
    assert builtin_targets().names == ["magento", "merchant_feed"]
    assert load_targets(plugin_settings(tmp_path)).names == ["jsonl", "magento", "merchant_feed"]


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("tests.no_such_module", "sync plugin 'tests.no_such_module' cannot be imported"),
        ("tests.integration.catalog", "has no register(registry) function"),
    ],
)
def test_a_sync_plugin_that_does_not_load_stops_the_start_with_its_name(
    module: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_targets(Settings.load(environ={}).replace(sync_plugins=module))


def test_a_target_name_is_registered_once() -> None:
    registry = builtin_targets()
    with pytest.raises(ConfigError, match="sync target 'magento' is registered twice"):
        registry.register("magento", MagentoTarget)


def test_a_workflow_may_name_only_targets_the_registry_knows(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as refused:
        parse_definition(WORKFLOW, "wf.yaml", ["noop"])
    assert str(refused.value) == (
        "wf.yaml: sync.targets[1]: unknown sync target 'jsonl'; allowed: magento, "
        "merchant_feed (a plug-in target's module goes in the sync_plugins setting)"
    )
    known = load_targets(plugin_settings(tmp_path)).names
    definition = parse_definition(WORKFLOW, "wf.yaml", ["noop"], known)
    assert definition.sync_targets == ("magento", "jsonl")


def test_a_published_definition_may_name_a_target_this_process_does_not_have() -> None:
    document = {**parse_definition(WORKFLOW.replace(", jsonl", ""), "wf.yaml", ["noop"]).to_dict()}
    document["sync"] = {"targets": ["jsonl"], "mode": "automatic"}
    assert WorkflowDefinition.from_dict(document).sync_targets == ("jsonl",)


# --------------------------------------------------------------------------- contract


def task(steps: int = 1) -> Task:
    output: ActionOutput = {
        "action_id": "a",
        "action_type": "noop",
        "fields": [
            {
                "field": name,
                "locale": locale,
                "value": value,
                "reasoning": None,
                "confidence": None,
                "evidence": None,
                "approved": True,
            }
            for name, locale, value in (
                ("Flavor", None, "Salmon"),
                ("shopping_title", "de_DE", "Trockenfutter mit Lachs"),
                ("shopping_title", "xx_XX", "no store view has this locale"),
            )
        ],
        "model": None,
        "prompt_version": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "skipped": None,
    }
    return {
        "task_id": "PF-1@run-1",
        "run_id": "run-1",
        "workflow_id": "wf",
        "workflow_version": 1,
        "sku": "PF-1",
        "step_index": steps,
        "steps": ["a"] * steps,
        "definition": "{}",
        "input_hash": "sha256:ab",
        "created_at": NOW,
        "attempt": 0,
        "outputs": [output],
        "origin": None,
        "history": [],
    }


def built(tmp_path: Path) -> dict[str, SyncTarget]:
    """Every target a worker with the test plug-in has, built as the worker does."""
    context = TargetContext(plugin_settings(tmp_path), {"feed-content": {}}, FakeClock())
    return load_targets(context.settings).build(context)


@pytest.mark.parametrize("name", ["jsonl", "magento", "merchant_feed"])
async def test_every_target_answers_each_field_of_what_it_planned(
    name: str, tmp_path: Path
) -> None:
    """Every registered target, built-in or plug-in, answers a request it planned with
    a SyncResult for that request that gives each field one status; closing it twice
    is harmless. (Magento, with no magento_url here, answers ERROR for every field.)"""
    targets = built(tmp_path)
    assert sorted(targets) == ["jsonl", "magento", "merchant_feed"]  # a new target: add it
    requests, notes = sync_requests(task(), {name: targets[name]}, None, NOW)
    assert requests and all(r["target"] == name for r in requests)
    planned = {f["attribute"] for r in requests for f in r["fields"]}
    assert len(planned) + len(notes) >= 3  # each value is placed or refused with a note
    for request in requests:
        result = await targets[name].write(request)
        assert (result["request_id"], result["task_id"], result["sku"]) == (
            request["request_id"],
            request["task_id"],
            request["sku"],
        )
        assert (result["target"], result["store_scope"]) == (name, request["store_scope"])
        assert [f["attribute"] for f in result["fields"]] == [
            f["attribute"] for f in request["fields"]
        ]
        assert all(
            f["status"] in ("SYNCED", "UNCHANGED", "CONFLICT", "ERROR") for f in result["fields"]
        )
        assert (result["status"] == "ERROR") == (result["error_category"] is not None)
    await targets[name].aclose()
    await targets[name].aclose()


def test_each_target_says_how_many_writes_it_takes_at_once(tmp_path: Path) -> None:
    """Magento takes magento_concurrency; a target that does not say, one at a time."""
    targets = built(tmp_path)
    limits = {name: write_limit(name, target) for name, target in targets.items()}
    assert limits == {"jsonl": 1, "magento": Settings().magento_concurrency, "merchant_feed": 1}


def test_the_worker_closes_every_sync_target_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    async def close_jsonl(self: jsonl_target.JsonLinesTarget) -> None:
        closed.append("jsonl")

    async def close_magento(self: MagentoTarget) -> None:
        closed.append("magento")

    monkeypatch.setattr(jsonl_target.JsonLinesTarget, "aclose", close_jsonl)
    monkeypatch.setattr(MagentoTarget, "aclose", close_magento)
    topology = build_worker(plugin_settings(tmp_path))
    asyncio.run(topology.app.on_before_shutdown.send())
    assert sorted(closed) == ["jsonl", "magento"]


# --------------------------------------------------------------------------- router


class _Topology:
    """What the router reads of a topology, without faust."""

    def __init__(self, targets: dict[str, SyncTarget]) -> None:
        self.settings = Settings.load(environ={})
        self.tables: dict[str, dict[str, Any]] = {
            name: {} for name in ("moderation", "remembered-decisions", "sync-pending", "products")
        }
        self.products = self.tables["products"]
        self.targets = targets
        self.clock = FakeClock()
        self.sent: list[tuple[str, Any]] = []

    def send(self, topic: str, key: str | None, record: Any, partition: int | None = None) -> Any:
        self.sent.append((topic, record))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_workflow_target_the_worker_lacks_ends_the_task_in_a_sync_issue() -> None:
    context = TargetContext(Settings.load(environ={}), {"feed-content": {}}, FakeClock())
    fake = _Topology(builtin_targets().build(context))
    topology = cast(Topology, fake)
    document = parse_definition(WORKFLOW.replace(", jsonl", ""), "wf.yaml", ["noop"]).to_dict()
    definition = WorkflowDefinition.from_dict({**document, "sync": {"targets": ["jsonl"]}})
    unfinished: Task = {**task(steps=1), "step_index": 0}
    await Router(topology, Outbox(topology)).advance(unfinished, definition, task()["outputs"][0])
    assert [topic for topic, _ in fake.sent] == ["task-events"]  # no sync request
    event = fake.sent[0][1]
    assert (event["status"], event["failure_category"]) == ("ERROR", "SYNC_ISSUE")
    assert event["reason"].startswith(
        "unknown sync target 'jsonl'; allowed: magento, merchant_feed"
    )
    assert fake.tables["sync-pending"] == {}
