"""`workflow dry-run` and `workflow estimate` as a person runs them on a fresh clone:
no broker, the built-in sample catalog, the in-process LLM simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
