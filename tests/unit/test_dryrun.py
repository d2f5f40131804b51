"""`workflow dry-run` and `workflow estimate` as a person runs them on a fresh clone:
no broker, the built-in sample catalog, the in-process LLM simulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml")


def catalogflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalogflow", *args], capture_output=True, text=True, timeout=120
    )


def test_dry_run_shows_outputs_reasoning_confidence_and_cost() -> None:
    done = catalogflow(
        "workflow", "dry-run", EXAMPLE, "--simulator", "--sample-catalog", "40", "--sample", "2"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "PF-000000:" in out and "PF-000004:" in out
    for field in ("extract/Flavor", "enrich/shopping_title", "translate/shopping_title@de_DE"):
        assert field in out
    assert "why:" in out and "confidence" in out
    assert "tried 2 of 10 matching products" in out and "projected full run" in out


def test_dry_run_of_one_action_as_json() -> None:
    done = catalogflow(
        "workflow",
        "dry-run",
        EXAMPLE,
        "--simulator",
        "--sample-catalog",
        "8",
        "--sample",
        "1",
        "--action",
        "enrich",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[0])
    assert [o["action_id"] for o in result["outputs"]] == ["extract", "enrich"]
    assert result["cost"] > 0


def test_estimate_needs_no_model() -> None:
    done = catalogflow("workflow", "estimate", EXAMPLE, "--sample-catalog", "2000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dry-cat-food: 500 matching products")


def test_unknown_action_is_a_usage_error() -> None:
    done = catalogflow(
        "workflow", "dry-run", EXAMPLE, "--simulator", "--sample-catalog", "8", "--action", "x"
    )
    assert done.returncode == 2
    assert "--action 'x' is not in dry-cat-food: extract, enrich, translate" in done.stderr


SCOPED = """
id: dry-scoped
name: Cat food titles, dry cat food only, never over a written name
mode: one_time
trigger: {all: [{field: category, operator: equals, value: Pet Food/Cat}]}
actions:
  - id: enrich
    type: content_enrichment
    reads: [name, description]
    settings: {fields: [name, shopping_title]}
    scope: {only_empty: true, categories: [Pet Food/Cat/Dry Cat Food]}
"""


def test_a_dry_run_keeps_the_actions_scope_and_only_empty(tmp_path: Path) -> None:
    workflow = tmp_path / "dry-scoped.yaml"
    workflow.write_text(SCOPED)
    done = catalogflow(
        "workflow", "dry-run", str(workflow), "--simulator", "--sample-catalog", "8", "--json"
    )
    assert done.returncode == 0, done.stderr
    results = {r["sku"]: r for r in map(json.loads, done.stdout.splitlines()[:-1])}
    (dry,) = results["PF-000000"]["outputs"]  # Dry Cat Food: in scope, and it has a name
    assert [f["field"] for f in dry["fields"]] == ["shopping_title"]
    (wet,) = results["PF-000001"]["outputs"]  # Wet Cat Food: outside the action's scope
    assert wet["fields"] == [] and wet["skipped"] == "not in categories Pet Food/Cat/Dry Cat Food"
    assert wet["cost"] == 0


def batch_variant(tmp_path: Path) -> Path:
    """The seed example with every action on the Batch API (short waits, for a test)."""
    document = yaml.safe_load(Path(EXAMPLE).read_text(encoding="utf-8"))
    document["id"] = "dry-cat-food-batch"
    for action in document["actions"]:
        action["settings"]["model"] = {"batch": True, "batch_linger_s": 0.05, "batch_poll_s": 0.05}
    path = tmp_path / "batch.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_estimate_shows_the_cost_live_and_through_the_batch_api(tmp_path: Path) -> None:
    costs = re.compile(r"estimated cost (\d+\.\d+) with live calls, (\d+\.\d+) through the Batch")
    live = catalogflow("workflow", "estimate", EXAMPLE, "--sample-catalog", "2000")
    batch = catalogflow(
        "workflow", "estimate", str(batch_variant(tmp_path)), "--sample-catalog", "2000"
    )
    for done in (live, batch):
        assert done.returncode == 0, done.stderr
        print(done.stdout.strip())
    found, batched = costs.search(live.stdout), costs.search(batch.stdout)
    assert found is not None and batched is not None
    assert found.groups() == batched.groups()  # the estimate shows both, whatever is chosen
    assert abs(float(found[2]) - float(found[1]) / 2) <= 0.0001  # half, at 4 decimals
    assert "Batch API;" not in live.stdout
    assert "this workflow sends extract, enrich, translate through the Batch API" in batch.stdout


def test_a_dry_run_through_the_batch_api_gives_the_live_outputs_at_half_the_cost(
    tmp_path: Path,
) -> None:
    args = ("--simulator", "--sample-catalog", "40", "--sample", "2", "--json")
    live = catalogflow("workflow", "dry-run", EXAMPLE, *args)
    batch = catalogflow("workflow", "dry-run", str(batch_variant(tmp_path)), *args)
    results = []
    for done in (live, batch):
        assert done.returncode == 0, done.stderr
        results.append([json.loads(line) for line in done.stdout.splitlines()[:-1]])
    for one, other in zip(*results, strict=True):
        assert values(one) == values(other) and values(one)
        assert one["tokens"] == other["tokens"] and other["cost"] == pytest.approx(one["cost"] / 2)


def values(result: dict[str, Any]) -> dict[tuple[str, str, str | None], Any]:
    return {
        (o["action_id"], f["field"], f["locale"]): (f["value"], f["confidence"])
        for o in result["outputs"]
        for f in o["fields"]
    }
