"""The acceptance of ``catalogflow calibrate``: a real run on the LLM simulator, every
result reviewed by a scripted reviewer who knows the truth (the sample catalog's own
flavour and life stage) and rejects or corrects what differs; the projector folds the
decisions into a SQLite read model; ``calibrate --holdout 0.5`` proposes thresholds
whose precision, measured on the held-out half, reaches the one asked for, and the
written definition applies as a new version.

The texts are rewritten so that confidence means something: a text naming one flavour
is read without a model (confidence 1.0, right); one naming two goes to the model,
which takes the first it meets (0.97: right when the true one comes first, wrong when
not); one hedging ("maybe tuna or beef") gets a guess's confidence (0.35).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from catalogflow.connectors.sample_catalog import FLAVORS, sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.records import ModerationDecision, ModerationItem, ProductChanged
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.calibrate_labels import reviewed
from tests.integration.catalog import import_products
from tests.integration.readside_fixtures import Cli, cli, read_model, read_settings

__all__ = ["cli", "read_model", "read_settings"]  # the fixtures

pytestmark = pytest.mark.kafka

PRODUCTS = 240  # Dry Cat Food products; about half of them are held out
WORKFLOW = "calibrate-flavor"
ASKED = 0.9
_TRUTH = re.compile(r"recipe with real (\w+) for (\w+) cats")

DEFINITION = f"""
id: {WORKFLOW}
name: Flavor and life stage, every result reviewed
mode: one_time
trigger:
  all:
    - field: category
      operator: equals
      value: Pet Food/Cat/Dry Cat Food
actions:
  - id: extract
    type: attribute_extraction
    reads: [description]
    settings:
      attributes:
        - name: Flavor
          description: The main protein flavour of the food.
          allowed_values: [{", ".join(FLAVORS)}]
        - name: Lifecycle
          description: The life stage the food is made for.
          allowed_values: [Kitten, Adult, Senior]
    moderation:
      mode: always
"""


def catalog() -> tuple[list[ProductChanged], dict[str, tuple[str, str]]]:
    """Dry Cat Food products of the sample catalog, texts rewritten by a cycle of ten
    (five plain, two with the true flavour first, one with another first, two hedged),
    and each product's true (Flavor, Lifecycle) as the sample catalog made it."""
    changes: list[ProductChanged] = []
    truth: dict[str, tuple[str, str]] = {}
    dry = (
        c for c in sample_changes(PRODUCTS * 4) if "Dry Cat Food" in (c["categories"] or [""])[0]
    )
    for n, change in enumerate(dry):
        values = {v["attribute"]: v for v in change["values"]}
        found = _TRUTH.search(str(values["description"]["value"]))
        assert found is not None
        flavor, stage = found.group(1), found.group(2)
        other = FLAVORS[(FLAVORS.index(flavor.capitalize()) + 1) % len(FLAVORS)].lower()
        text = {
            5: f"recipe with real {flavor} and a little {other} for {stage} cats",
            6: f"recipe with real {flavor} and a little {other} for {stage} cats",
            7: f"recipe with {other} broth and real {flavor} for {stage} cats",
            8: f"recipe with maybe {flavor} or {other} for {stage} cats",
            9: f"recipe with maybe {other} or {flavor} for {stage} cats",
        }.get(n % 10)
        if text is not None:
            rewritten = str(values["description"]["value"]).replace(found.group(0), text)
            values["description"] = {**values["description"], "value": rewritten}
        changes.append({**change, "values": list(values.values())})
        truth[change["sku"]] = (flavor.capitalize(), stage.capitalize())
    assert len(changes) == PRODUCTS
    return changes, truth


def review(item: ModerationItem, truth: tuple[str, str], n: int) -> list[ModerationDecision]:
    """A reviewer who knows the truth: a wrong value is corrected (every other one) or
    rejected, then the item approved."""
    made = []
    for field, true in zip(("Flavor", "Lifecycle"), truth, strict=True):
        value = next(f["value"] for f in item["fields"] if f["field"] == field)
        if value == true:
            continue
        if n % 2:
            made.append(decision(item, "EDIT", actor="rita", field=field, value=true))
        else:
            made.append(decision(item, "REJECT", actor="rita", field=field))
    return [*made, decision(item, "APPROVE", actor="rita")]


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as sim:
        yield sim


def waiting(run: dict[str, object]) -> int:
    counts = run.get("counts", {})
    return int(counts.get("AWAITING_MODERATION", 0)) if isinstance(counts, dict) else 0


def test_thresholds_from_a_scripted_review_reach_the_asked_precision_on_the_held_out_half(
    read_settings: Settings,
    read_model: sa.Engine,
    start_worker: Callable[..., WorkerProcess],
    simulator: SimulatorThread,
    cli: Cli,
    tmp_path: Path,
) -> None:
    worker = start_worker(
        llm_base_url=f"{simulator.url}/v1",
        llm_kind="compatible",
        action_batch_size=32,
        action_concurrency=8,
    )
    changes, truth = catalog()
    import_products(read_settings, worker, changes)
    definition = parse_definition(DEFINITION, "calibrate-flavor.yaml")
    apply_definition(read_settings, definition, "calibrate-flavor.yaml", "test")
    run_id = start_run(read_settings, WORKFLOW, "test")
    worker.wait_for(f"/runs/{run_id}/", lambda r: waiting(r) == PRODUCTS, timeout=240)

    items = pending_items(read_settings, run_id=run_id)
    assert len(items) == PRODUCTS
    confidences = {f["confidence"] for i in items for f in i["fields"] if f["field"] == "Flavor"}
    assert len(confidences) == 3, confidences  # read without a model, found, hedged
    send_decisions(
        read_settings,
        [d for n, item in enumerate(items) for d in review(item, truth[item["sku"]], n)],
    )
    worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=120)
    deadline = time.monotonic() + 60
    while reviewed(read_model, WORKFLOW).resolved < PRODUCTS:  # the projector catches up
        assert time.monotonic() < deadline, "the projector did not fold every decision"
        time.sleep(0.5)

    # The labels are the reviewer's verdicts: right exactly where the value was the truth.
    right = {(i["item_id"], f["field"]): f["value"] == truth[i["sku"]][f["field"] == "Lifecycle"]
             for i in items for f in i["fields"]}  # fmt: skip
    labels = reviewed(read_model, WORKFLOW).labels
    assert {(x.item_id, x.field): x.correct for x in labels} == right
    assert sum(x.correct for x in labels if x.field == "Flavor") == PRODUCTS * 8 // 10

    out_file = tmp_path / "calibrated.yaml"
    code, out, err = cli(
        "calibrate", WORKFLOW, "--precision", str(ASKED), "--holdout", "0.5",
        "--write", str(out_file), "--json",
    )  # fmt: skip

    assert code == 0, (out, err)
    result = json.loads(out)
    [action] = result["actions"]
    fields = {f["field"]: f for f in action["fields"]}
    assert set(fields) == {"Flavor", "Lifecycle"}
    # Above 0.97 one flavour in eight is wrong: the threshold must leave those to a person.
    assert fields["Flavor"]["threshold"] > 0.97
    assert action["threshold"] == max(f["threshold"] for f in fields.values())
    for measured in [action["held_out"], *(f["held_out"] for f in fields.values())]:
        assert measured["values"] >= 30
        assert measured["precision"] >= ASKED
    assert 0.4 < action["saved"] < 0.6  # the plain half of the queue

    code, out, err = cli("workflow", "apply", str(out_file))
    assert code == 0, err
    assert out.strip() == f"applied {WORKFLOW} version 2"
    applied = parse_definition(out_file.read_text(encoding="utf-8"), str(out_file))
    assert applied.actions[0].moderation.auto_approve_above == action["threshold"]
    print(
        "calibrate:",
        {
            name: (f["labels"], round(f["correct"], 3), f["threshold"], f["held_out"])
            for name, f in fields.items()
        },
        "action:", action["threshold"], action["saved"], action["held_out"],
    )  # fmt: skip
