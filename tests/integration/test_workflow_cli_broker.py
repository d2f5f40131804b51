"""``catalogflow workflow apply|run|status|results`` against a real broker and worker:
the commands a user types, end to end, with the test action types as a plugin. The
read commands read the read model, fed by an in-process projector."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.records import AttributeValue
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import chain_yaml, import_catalog, import_products
from tests.integration.engine_actions import TYPES
from tests.integration.readside_fixtures import Cli, cli, read_model, read_settings

__all__ = ["cli", "read_model", "read_settings"]  # the fixtures

pytestmark = pytest.mark.kafka

CATALOG = 400  # a quarter of the sample catalog is Dry Cat Food
MATCHING = CATALOG // 4
ALLOW = [arg for name in TYPES for arg in ("--allow-type", name)]


def write(
    path: Path, workflow_id: str, name: str = "CLI chain", fail: dict[str, str] | None = None
) -> Path:
    path.write_text(chain_yaml(workflow_id, name, extract={"fail": fail or {}}))
    return path


def test_apply_run_wait_status_and_results(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    cli: Cli,
    tmp_path: Path,
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, CATALOG)
    path = write(tmp_path / "cli-chain.yaml", "cli-chain")

    assert cli("workflow", "apply", str(path), "--by", "anna", *ALLOW)[:2] == (
        0,
        "applied cli-chain version 1\n",
    )
    assert cli("workflow", "apply", str(path), *ALLOW)[:2] == (
        0,
        "cli-chain unchanged at version 1\n",
    )
    write(path, "cli-chain", name="CLI chain, renamed")
    assert cli("workflow", "apply", str(path), *ALLOW)[:2] == (0, "applied cli-chain version 2\n")
    code, out, err = cli("workflow", "apply", str(path))  # the plugin types are not allowed
    assert (code, out) == (2, "")
    assert "actions[0].type: unknown action type 'test_extract'" in err

    code, out, err = cli("workflow", "run", "cli-chain", "--wait")
    assert code == 0, err
    lines = out.splitlines()
    run_id = lines[0]
    assert run_id.startswith("cli-chain.v2.")
    progress = [line for line in lines[1:-1] if line.startswith(f"run {run_id}: ")]
    assert progress, out
    assert f"  translate  {MATCHING}/{MATCHING} · running 0" in lines[-2]
    assert progress[-1].startswith(f"run {run_id}: {MATCHING}/{MATCHING} done (COMPLETED ")
    assert " · RUNNING 0 · WAITING 0 · PAUSED 0" in progress[-1]
    assert lines[-1] == f"run {run_id} COMPLETED: no task ended in ERROR"

    code, out, _ = cli("workflow", "status", run_id)
    assert code == 0
    assert out.splitlines()[0] == f"run {run_id}: COMPLETED"
    assert f"  by status  COMPLETED {MATCHING}" in out
    assert f"    translate  COMPLETED {MATCHING}" in out
    code, out, _ = cli("workflow", "status", run_id, "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"COMPLETED": MATCHING}

    exported = tmp_path / "results.csv"
    code, _, err = cli("workflow", "results", run_id, "--export", "csv", str(exported))
    assert code == 0, err
    assert err == f"wrote {MATCHING} tasks to {exported} (csv)\n"
    with exported.open(newline="") as handle:
        rows = list(csv.DictReader(handle))  # one row per field value
    assert len({row["sku"] for row in rows}) == MATCHING
    assert {row["status"] for row in rows} == {"COMPLETED"}
    one = {
        (r["field_action_id"], r["field"], r["locale"]): r for r in rows if r["sku"] == "PF-000000"
    }
    flavor = one["extract", "flavor", ""]
    assert flavor["confidence"] == "1.0"
    assert flavor["reasoning"] == f"description says {flavor['value'].lower()}"
    title = one["enrich", "shopping_title", ""]["value"]
    assert one["translate", "shopping_title", "de_DE"]["value"] == f"DE {title}"

    code, _, err = cli("workflow", "status", "cli-chain.v9.nosuchrun")
    assert code == 1
    assert "no run 'cli-chain.v9.nosuchrun'" in err


def test_a_task_in_error_makes_run_wait_exit_1_and_results_filter_by_status(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    cli: Cli,
    tmp_path: Path,
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, CATALOG)
    path = write(tmp_path / "failing.yaml", "failing", fail={"PF-000000": "INVALID_OUTPUT"})
    assert cli("workflow", "apply", str(path), *ALLOW)[0] == 0

    code, out, _ = cli("workflow", "run", "failing", "--wait")
    assert code == 1
    run_id = out.splitlines()[0]
    assert out.splitlines()[-1] == f"run {run_id} COMPLETED: 1 ended in ERROR"

    code, out, _ = cli("workflow", "results", run_id, "--status", "error", "--json")
    assert code == 0
    (only,) = json.loads(out)["items"]
    assert {k: only[k] for k in ("sku", "status", "action_id", "failure_category", "reason")} == {
        "sku": "PF-000000",
        "status": "ERROR",
        "action_id": "extract",
        "failure_category": "INVALID_OUTPUT",
        "reason": "test_extract told to fail",
    }
    assert only["fields"] == []
    code, out, _ = cli("workflow", "results", run_id, "--status", "COMPLETED")
    assert code == 0
    table = out.splitlines()
    assert table[0].split() == ["SKU", "STATUS", "ACTION", "FAILURE", "CATEGORY", "REASON"]
    products = [line for line in table[1:] if not line.startswith(" ")]
    assert len(products) == MATCHING - 1
    assert all(line.split()[1] == "COMPLETED" for line in products)


SCOPED = """
id: scoped
name: Scoped chain, tried before it runs
mode: one_time
trigger: {all: [{field: category, operator: equals, value: Pet Food/Cat}]}
actions:
  - id: extract
    type: test_extract
    reads: [description]
  - id: enrich
    type: test_enrich
    scope: {categories: [Pet Food/Cat/Dry Cat Food]}
  - id: translate
    type: test_translate
    scope: {only_empty: true, categories: [Pet Food/Cat/Dry Cat Food]}
"""


def test_a_dry_run_shows_the_outputs_the_run_then_produces(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    cli: Cli,
    tmp_path: Path,
) -> None:
    worker = start_worker()
    changes = list(sample_changes(40))
    german: AttributeValue = {
        "attribute": "shopping_title",
        "locale": "de_DE",
        "scope": None,
        "value": "Von Hand",
    }
    changes[4]["values"].append(german)  # PF-000004 (Dry Cat Food) has a German title
    import_products(settings, worker, changes)
    path = tmp_path / "scoped.yaml"
    path.write_text(SCOPED)

    code, out, err = cli("workflow", "dry-run", str(path), "--sample", "40", "--json", *ALLOW)
    assert code == 0, err
    tried = [json.loads(line) for line in out.splitlines()[:-1]]
    assert out.splitlines()[-1].startswith("tried 20 of 20 matching products")
    assert cli("workflow", "apply", str(path), *ALLOW)[0] == 0
    code, out, err = cli("workflow", "run", "scoped", "--wait")
    assert code == 0, err
    tasks = worker.get(f"/runs/{out.splitlines()[0]}/tasks/")["tasks"]

    assert {t["sku"]: t["outputs"] for t in tasks} == {r["sku"]: r["outputs"] for r in tried}
    by_sku = {r["sku"]: r["outputs"] for r in tried}
    wet = by_sku["PF-000001"]  # outside the scope of enrich and translate
    assert [o["skipped"] for o in wet[1:]] == ["not in categories Pet Food/Cat/Dry Cat Food"] * 2
    kept = by_sku["PF-000004"][2]  # only_empty kept the person's German title
    assert kept["fields"] == []
    assert kept["skipped"] == "translate kept existing values of shopping_title@de_DE"
