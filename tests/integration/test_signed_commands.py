"""Roles cannot be bypassed through the broker: a worker with a signing key refuses
unsigned and badly signed decisions and commands (dead letter ``unsigned-command``,
nothing changes) and applies the ones signed with its key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Secret, Settings
from catalogflow.streams.signing import sign
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import chain_yaml, import_catalog
from tests.integration.engine_actions import TYPES
from tests.integration.test_dead_letters import read_all

pytestmark = pytest.mark.kafka

CATALOG = 40
MATCHING = CATALOG // 4
KEY = "integration-signing-key"


def waiting(run: Any) -> int:
    return int(run.get("counts", {}).get("AWAITING_MODERATION", 0))


def test_forged_decisions_and_commands_change_nothing(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    keyed = settings.replace(signing_key=Secret(KEY))
    unkeyed = settings  # what any process that can write the topics has
    worker = start_worker(signing_key=Secret(KEY))
    import_catalog(settings, worker, CATALOG)
    document = yaml.safe_load(chain_yaml("signed-cat"))
    document["actions"][2]["moderation"] = {"mode": "always"}
    definition = parse_definition(yaml.safe_dump(document), "signed-cat.yaml", TYPES)
    apply_definition(keyed, definition, "signed-cat.yaml", "test")
    run_id = start_run(keyed, definition.id, "admin")  # signed: the CLI holds the key
    worker.wait_for(f"/runs/{run_id}/", lambda r: waiting(r) == MATCHING, timeout=180)

    items = pending_items(settings, run_id=run_id)
    target, other = items[0], items[1]
    # A forger claims the moderator role: once unsigned, once signed with a wrong key.
    forged = decision(target, "APPROVE", actor="mallory", role="MODERATOR")
    send_decisions(unkeyed, [forged])
    badly_signed = sign(decision(target, "REJECT", actor="mallory", role="MODERATOR"), "guess")
    producer = RecordProducer(unkeyed)
    producer.send("moderation-decisions", target["sku"], badly_signed)
    producer.flush()
    # An unsigned RUN, as a process without the key would send it.
    forged_run = start_run(unkeyed, definition.id, "mallory")
    # The reviewer's tool with the key: applied.
    send_decisions(keyed, [decision(other, "APPROVE", actor="anna")])

    letters = read_all(settings, "dead-letters", expected=3)
    schemas = SchemaStore.shipped()
    refused = sorted(
        (record["agent"], record["reason"])
        for record in (schemas.decode(m.value(), "DeadLetter") for m in letters)
    )
    assert refused == [
        ("commands", "unsigned-command"),
        ("moderation", "unsigned-command"),
        ("moderation", "unsigned-command"),
    ]
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r["counts"].get("COMPLETED", 0) == 1)
    assert waiting(run) == MATCHING - 1
    still = {item["item_id"] for item in pending_items(settings, run_id=run_id)}
    assert target["item_id"] in still and other["item_id"] not in still
    assert worker.get(f"/runs/{forged_run}/") == {"error": f"no run {forged_run!r} on this worker"}
