"""`catalogflow eval`: the shipped golden file, the scoring of outputs against it, the
reliability table, and the baseline gate, as a person runs them (the CLI on the
in-process LLM simulator)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from catalogflow.connectors.golden_catalog import COUNT, golden_products
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.records import ActionOutput, FieldOutput, Value

from catalogflow.dryrun import DryRun
from catalogflow.evaluation.baseline import regressions, report_json
from catalogflow.evaluation.golden import GoldenItem, load_golden
from catalogflow.evaluation.reliability import expected_calibration_error, reliability
from catalogflow.evaluation.scoring import score

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dry-cat-food.yaml"
GOLDEN = ROOT / "examples" / "golden" / "dry-cat-food.jsonl"


def catalogflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalogflow", *args], capture_output=True, text=True, timeout=180
    )


def test_the_shipped_golden_file_is_the_generated_one() -> None:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(golden_products())
    items = load_golden(GOLDEN)
    assert len(items) == COUNT >= 200
    no_flavor = [i for i in items if i.expected["Flavor"] is None]
    assert len(no_flavor) >= 40
    assert {i.kind for i in items} >= {"plain", "no_flavor", "other_fish", "excluded"}
    assert all("Pet Food/Cat/Dry Cat Food" in i.product["categories"] for i in items)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "golden.jsonl:2: not JSON"),
        ('{"sku": "A"}', "golden.jsonl:2: missing product, expected"),
        ('{"sku": "A", "product": {"sku": "B"}, "expected": {"F": null}}', "ProductChanged"),
        ('{"sku": "A", "product": {"sku": "A"}, "expected": {}}', "expected must map"),
    ],
)
def test_a_bad_golden_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(GOLDEN.read_text(encoding="utf-8").splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_golden(path)


def test_a_sku_twice_is_named(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    first = GOLDEN.read_text(encoding="utf-8").splitlines()[0]
    path.write_text(f"{first}\n{first}\n")
    with pytest.raises(ConfigError, match=r"golden.jsonl:2: sku 'GD-0000' is in the golden file"):
        load_golden(path)


def field(name: str, value: Value, confidence: float | None, approved: bool = True) -> FieldOutput:
    return {
        "field": name,
        "locale": None,
        "value": value,
        "reasoning": None,
        "confidence": confidence,
        "evidence": None,
        "approved": approved,
    }


def extracted(fields: list[FieldOutput]) -> ActionOutput:
    return {
        "action_id": "extract",
        "action_type": "attribute_extraction",
        "fields": fields,
        "model": "m",
        "prompt_version": "v1",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.01,
        "skipped": None,
    }


def dry(sku: str, outputs: list[ActionOutput], errors: list[str] | None = None) -> DryRun:
    return {"sku": sku, "outputs": outputs, "errors": errors or [], "tokens": 15, "cost": 0.01}


def golden_items(count: int) -> list[GoldenItem]:
    return load_golden(GOLDEN, limit=count)


def test_scoring_counts_invented_caught_and_auto_approved_values() -> None:
    definition = parse_definition(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    chain = list(definition.actions[:1])
    items = golden_items(20)
    by_kind = {i.kind: i for i in items}
    plain, no_flavor, neither = by_kind["plain"], by_kind["no_flavor"], by_kind["neither"]
    stage = str(no_flavor.expected["Lifecycle"])
    results = [
        dry(  # right on both
            plain.sku,
            [
                extracted(
                    [
                        field("Flavor", plain.expected["Flavor"], 0.95),
                        field("Lifecycle", plain.expected["Lifecycle"], 0.9),
                    ]
                )
            ],
        ),
        dry(  # an invented flavour the evidence check caught
            no_flavor.sku,
            [
                extracted(
                    [
                        field("Flavor", "Chicken", 0.1, approved=False),
                        field("Lifecycle", stage, 0.9),
                    ]
                )
            ],
        ),
        dry(neither.sku, [], ["extract: INVALID_OUTPUT: not JSON"]),  # the step failed
    ]
    report = score("dry-cat-food", chain, [plain, no_flavor, neither], results)
    flavor = next(f for f in report.fields if f.field == "Flavor")
    assert (flavor.products, flavor.correct, flavor.invented, flavor.caught) == (3, 1, 1, 1)
    assert (flavor.invented_auto_approved, flavor.auto_approved, flavor.failed) == (0, 1, 1)
    assert flavor.accuracy == pytest.approx(1 / 3)
    lifecycle = next(f for f in report.fields if f.field == "Lifecycle")
    assert (lifecycle.correct, lifecycle.auto_approved) == (2, 1)  # the flagged item waits
    assert report.failures == {"extract: INVALID_OUTPUT": 1}
    assert report.cost == pytest.approx(0.03) and report.input_tokens == 20


def test_an_invented_value_without_a_failed_check_counts_as_auto_approved() -> None:
    definition = parse_definition(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    (no_flavor,) = [i for i in golden_items(20) if i.kind == "no_flavor"][:1]
    results = [dry(no_flavor.sku, [extracted([field("Flavor", "Tuna", 0.8)])])]
    report = score("dry-cat-food", list(definition.actions[:1]), [no_flavor], results)
    flavor = next(f for f in report.fields if f.field == "Flavor")
    assert (flavor.invented, flavor.caught, flavor.invented_auto_approved) == (1, 0, 1)
    assert flavor.wrong_auto_approved == 1


def test_reliability_table_and_calibration_error() -> None:
    pairs = [(0.95, True)] * 9 + [(0.95, False)] + [(0.35, True)] + [(0.35, False)] * 3
    table = reliability(pairs)
    assert [(b.lower, b.values) for b in table] == [(0.3, 4), (0.9, 10)]
    assert table[1].accuracy == pytest.approx(0.9)
    ece = expected_calibration_error(table)
    assert ece == pytest.approx(4 / 14 * 0.1 + 10 / 14 * 0.05)
    assert reliability([(1.0, True)])[0].upper == 1.0
    assert expected_calibration_error([]) is None


def test_the_baseline_gate_names_each_regression() -> None:
    definition = parse_definition(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    chain = list(definition.actions[:1])
    (item,) = [i for i in golden_items(20) if i.kind == "no_flavor"][:1]
    good = report_json(score("w", chain, [item], [dry(item.sku, [extracted([])])]))
    bad = report_json(
        score("w", chain, [item], [dry(item.sku, [extracted([field("Flavor", "Tuna", 0.9)])])])
    )
    found = [str(r) for r in regressions(good, bad)]
    assert "Flavor accuracy: 1.000 -> 0.000" in found
    assert "Flavor invented values auto-approved: 0.000 -> 1.000" in found
    assert regressions(good, good) == []
    assert regressions(bad, good) == []


def test_eval_on_the_simulator_prints_the_tables_and_gates_a_worse_prompt(tmp_path: Path) -> None:
    saved = tmp_path / "baseline.json"
    done = catalogflow(
        "eval", str(EXAMPLE), "--golden", str(GOLDEN), "--simulator", "--limit", "40",
        "--action", "extract", "--save", str(saved),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "dry-cat-food on 40 golden products" in out
    for heading in ("extracted values", "reliability", "expected calibration error", "tokens:"):
        assert heading in out
    assert "Flavor" in out and "Lifecycle" in out
    baseline = json.loads(saved.read_text())
    flavor = next(f for f in baseline["fields"] if f["label"] == "Flavor")
    assert flavor["products"] == 40 and flavor["accuracy"] > 0.8
    assert flavor["invented_auto_approved"] == 0

    # A "new prompt version" that forgets Salmon: its Salmon products lose their value.
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    attributes = document["actions"][0]["settings"]["attributes"]
    attributes[0]["allowed_values"].remove("Salmon")
    worse = tmp_path / "worse.yaml"
    worse.write_text(yaml.safe_dump(document), encoding="utf-8")
    gated = catalogflow(
        "eval", str(worse), "--golden", str(GOLDEN), "--simulator", "--limit", "40",
        "--action", "extract", "--baseline", str(saved), "--json",
    )  # fmt: skip
    assert gated.returncode == 1, gated.stderr
    result = json.loads(gated.stdout)
    assert any(r.startswith("Flavor accuracy:") for r in result["regressions"])

    same = catalogflow(
        "eval", str(EXAMPLE), "--golden", str(GOLDEN), "--simulator", "--limit", "40",
        "--action", "extract", "--baseline", str(saved),
    )  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert "no regression against the baseline" in same.stdout


def test_eval_usage_errors_name_the_problem(tmp_path: Path) -> None:
    missing = catalogflow("eval", str(EXAMPLE), "--golden", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2
    assert "cannot read the golden file" in missing.stderr
    assert "Traceback" not in missing.stderr
    lonely = catalogflow("eval", str(EXAMPLE), "--golden", str(GOLDEN), "--model", "x")
    assert lonely.returncode == 2 and "give --endpoint too" in lonely.stderr
