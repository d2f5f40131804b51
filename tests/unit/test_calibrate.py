"""``catalogflow calibrate``: thresholds learned from review decisions. The fit on
synthetic labels, the labels folded from decisions, and the command over a read model
filled straight through its tables (no broker; the pipeline run is
tests/integration/test_calibrate.py)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.definitions import ModerationPolicy, parse_definition
from catalogflow.streams.moderation import apply_decision, new_item
from catalogflow.streams.records import (
    DecisionKind,
    FieldOutput,
    ModerationDecision,
    ModerationItem,
)
from catalogflow.streams.review import decision

from catalogflow.calibrate_fit import Label, fit_field, propose, split, wilson_lower
from catalogflow.calibrate_labels import item_labels
from catalogflow.cli import main
from catalogflow.readmodel import tables as t
from catalogflow.readmodel.store import engine_for, upgrade
from tests.unit.test_moderation import T0, output, task
from tests.unit.test_moderation import field as output_field

#: A model with four confidence levels, as real ones have: (confidence, share right).
LEVELS = [(0.99, 0.995), (0.9, 0.97), (0.6, 0.75), (0.3, 0.4)]


def synthetic(count: int, seed: int = 1, action: str = "extract") -> list[Label]:
    rng = random.Random(seed)
    labels = []
    for n in range(count):
        confidence, right = rng.choice(LEVELS)
        labels.append(
            Label(action, "Flavor", f"item-{n}", f"SKU-{n}", confidence, rng.random() < right)
        )
    return labels


def labels_at(confidence: float, count: int, correct: bool, field: str = "Flavor") -> list[Label]:
    return [
        Label("extract", field, f"{field}-{confidence}-{n}", f"S{n}", confidence, correct)
        for n in range(count)
    ]


# --------------------------------------------------------------------------- the fit


@pytest.mark.parametrize("seed", range(5))
def test_proposed_thresholds_reach_the_asked_precision_on_the_held_out_half(seed: int) -> None:
    [proposal] = propose(synthetic(3000), 0.95, min_labels=50, holdout=0.5, seed=seed)

    assert proposal.threshold == 0.9  # 0.99 and 0.9 together are right 98% of the time
    assert proposal.held_out is not None and proposal.held_out.values > 500
    assert proposal.held_out.precision is not None and proposal.held_out.precision >= 0.95
    [flavor] = proposal.fields
    assert flavor.labels + proposal.held_out.values > 2000  # the fit saw the other half
    assert flavor.bound is not None and flavor.bound >= 0.95
    assert 0.45 < flavor.saved < 0.55  # half the queue is at 0.9 or above
    print(f"seed {seed}: held-out precision {proposal.held_out.precision:.3f}")


def test_a_field_with_too_few_decisions_gets_no_threshold_and_says_how_many_are_needed() -> None:
    labels = labels_at(0.99, 12, True, "Lifecycle") + labels_at(0.99, 80, True)

    [proposal] = propose(labels, 0.9, min_labels=50)

    lifecycle = next(f for f in proposal.fields if f.field == "Lifecycle")
    assert lifecycle.threshold is None
    assert lifecycle.problem == "not enough decisions (12 of 50 needed)"
    assert proposal.threshold is None  # the action's policy would cover Lifecycle too
    assert proposal.problem == "Lifecycle: not enough decisions (12 of 50 needed)"


def test_a_field_whose_values_are_all_wrong_gets_no_threshold() -> None:
    labels = labels_at(0.95, 60, False) + labels_at(0.5, 60, False)

    result = fit_field("extract", "Flavor", labels, 0.9, min_labels=50)

    assert result.threshold is None and result.saved == 0.0
    assert result.problem is not None and result.problem.startswith("cannot reach 0.9: at best 0")
    assert result.curve == [(0.5, 0.0), (0.95, 0.0)]


def test_thirty_approvals_in_a_row_do_not_show_98_percent() -> None:
    result = fit_field("extract", "Flavor", labels_at(0.99, 30, True), 0.98, min_labels=10)

    assert result.threshold is None
    assert result.problem == (
        "cannot reach 0.98: at best 0.917 (the 30 values at or above 0.99, expected 1.000)"
    )
    assert wilson_lower(1.0, 200) >= 0.98  # two hundred would


def test_the_action_takes_the_strictest_of_its_fields_thresholds() -> None:
    def item(n: int, flavor: float, stage: float, flavor_right: bool) -> list[Label]:
        return [
            Label("extract", "Flavor", f"i{n}", f"S{n}", flavor, flavor_right),
            Label("extract", "Lifecycle", f"i{n}", f"S{n}", stage, True),
        ]

    labels = [x for n in range(100) for x in item(n, 0.99, 0.8, True)]
    labels += [x for n in range(100, 160) for x in item(n, 0.7, 0.99, n % 2 == 0)]

    [proposal] = propose(labels, 0.9, min_labels=50)

    thresholds = {f.field: f.threshold for f in proposal.fields}
    assert thresholds == {"Flavor": 0.99, "Lifecycle": 0.8}
    assert proposal.threshold == 0.99
    # Every item has one value below 0.99: the gate (lowest confidence) approves none.
    assert proposal.saved == 0.0 and proposal.items == 160


def test_flagged_values_are_left_out_of_the_fit_and_never_auto_approved() -> None:
    flagged = [
        Label("extract", "Flavor", f"f{n}", f"F{n}", 0.99, False, flagged=True) for n in range(40)
    ]
    labels = labels_at(0.99, 60, True) + flagged

    result = fit_field("extract", "Flavor", labels, 0.9, min_labels=50)

    assert result.labels == 60 and result.correct == 1.0
    assert result.threshold == 0.99
    assert result.saved == 0.6  # the flagged 40 still wait for a person


def test_every_review_of_one_product_falls_on_the_same_side_of_the_split() -> None:
    labels = [Label("a", "f", f"item-{n}", f"SKU-{n % 50}", 0.9, True) for n in range(500)]

    fit, held = split(labels, 0.5, seed=3)

    assert {x.sku for x in fit}.isdisjoint({x.sku for x in held})
    assert 100 < len(held) < 400
    assert split(labels, 0.5, seed=3) == (fit, held)
    assert split(labels, 0.5, seed=4) != (fit, held)


# --------------------------------------------------------------------------- the labels

ALWAYS = ModerationPolicy(mode="always")


def reviewed(*fields: FieldOutput, reason: str = "every result is reviewed") -> ModerationItem:
    return new_item(
        task(),
        output(*fields, action_id="extract"),
        source_values=[],
        reason=reason,
        policy=ALWAYS,
        now=T0,
    )


def flavor_and_stage() -> ModerationItem:
    return reviewed(
        output_field("Flavor", "Chicken", confidence=0.6),
        output_field("Lifecycle", "Adult", confidence=0.95),
    )


def in_order(*made: ModerationDecision) -> list[ModerationDecision]:
    """The decisions one after the other, a second apart."""
    return [{**d, "decided_at": T0 + timedelta(seconds=n + 1)} for n, d in enumerate(made)]


def verdicts(item: ModerationItem, decisions: Sequence[ModerationDecision]) -> dict[str, bool]:
    found = item_labels(item, decisions)
    assert found is not None
    return {x.field: x.correct for x in found}


def test_an_approval_labels_every_value_right_with_the_models_confidence() -> None:
    item = flavor_and_stage()

    found = item_labels(item, in_order(decision(item, "APPROVE", actor="rita")))

    assert found is not None
    assert [(x.field, x.confidence, x.correct, x.flagged) for x in found] == [
        ("Flavor", 0.6, True, False),
        ("Lifecycle", 0.95, True, False),
    ]


def test_an_edit_is_wrong_unless_it_keeps_the_value() -> None:
    item = flavor_and_stage()
    decisions = in_order(
        decision(item, "EDIT", actor="rita", field="Flavor", value="Salmon"),
        decision(item, "EDIT", actor="rita", field="Lifecycle", value="Adult"),
        decision(item, "APPROVE", actor="rita"),
    )

    found = item_labels(item, decisions)

    assert found is not None
    assert {x.field: (x.correct, x.confidence) for x in found} == {
        "Flavor": (False, 0.6),  # the model's confidence, not the edit's 1.0
        "Lifecycle": (True, 0.95),
    }


def test_a_field_rejected_before_the_items_approval_stays_wrong() -> None:
    item = flavor_and_stage()
    decisions = in_order(
        decision(item, "REJECT", actor="rita", field="Flavor"),
        decision(item, "APPROVE", actor="rita"),
    )

    assert verdicts(item, decisions) == {"Flavor": False, "Lifecycle": True}


def test_a_reject_and_an_approval_in_the_same_millisecond_fold_in_the_agents_order() -> None:
    item = flavor_and_stage()
    reject = decision(item, "REJECT", actor="rita", field="Flavor")
    approve = decision(item, "APPROVE", actor="rita")
    reject["decision_id"], approve["decision_id"] = "b", "a"  # the approval sorts first
    reject["decided_at"] = approve["decided_at"] = T0
    tied = [approve, reject]
    folded = apply_decision(item, tied[1])  # the agent folded the reject first…
    assert folded.item is not None  # …and wrote the item, still pending, holding it

    assert verdicts(folded.item, tied) == {"Flavor": False, "Lifecycle": True}
    assert verdicts(item, tied) == {"Flavor": False, "Lifecycle": True}  # a field first


@pytest.mark.parametrize("kind", ["REJECT", "REGENERATE"])
def test_a_rejected_or_regenerated_item_labels_every_value_wrong(kind: DecisionKind) -> None:
    item = flavor_and_stage()
    decisions = in_order(decision(item, kind, actor="rita", feedback="not this flavour"))

    assert verdicts(item, decisions) == {"Flavor": False, "Lifecycle": False}


def test_an_item_waiting_for_a_moderator_gives_no_labels_and_later_decisions_change_nothing() -> (
    None
):
    item: ModerationItem = {**flavor_and_stage(), "requires_second_approval": True}

    assert item_labels(item, in_order(decision(item, "APPROVE", actor="erik"))) is None
    assert item_labels(item, []) is None
    approved_then_rejected = in_order(
        decision(item, "APPROVE", actor="erik"),
        decision(item, "APPROVE", actor="moritz", role="MODERATOR"),
        decision(item, "REJECT", actor="rita"),  # too late: the item was resolved
    )
    assert verdicts(item, approved_then_rejected) == {"Flavor": True, "Lifecycle": True}


def test_a_value_a_check_flagged_is_labelled_as_flagged() -> None:
    item = reviewed(
        output_field("Flavor", "Beef", confidence=0.1, approved=False),
        reason="a check failed for Flavor: never approved automatically",
    )

    found = item_labels(item, in_order(decision(item, "REJECT", actor="rita")))

    assert found is not None and [x.flagged for x in found] == [True]


# --------------------------------------------------------------------------- the command

WORKFLOW = """
id: wf-describe
name: Flavor, reviewed
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
          description: The main protein.
          allowed_values: [Chicken, Salmon]
    moderation:
      mode: always
      audit_sample: 0.05
"""


def read_model(path: Path, labels: Sequence[tuple[float, bool]]) -> str:
    """A SQLite read model holding one decided Flavor item per (confidence, right)."""
    url = f"sqlite:///{path / 'read-model.sqlite'}"
    engine = engine_for(url)
    upgrade(engine)
    definition = parse_definition(WORKFLOW, "wf.yaml")
    store = SchemaStore.shipped()
    items, decisions = [], []
    for n, (confidence, right) in enumerate(labels):
        sku = f"SKU-{n:04d}"
        item = new_item(
            task(
                f"{sku}@run-1",
                sku=sku,
                step_index=0,
                steps=["extract"],
                outputs=[],
                workflow_version=1,
            ),
            output(output_field("Flavor", "Chicken", confidence=confidence), action_id="extract"),
            source_values=[],
            reason="the action's moderation policy reviews every result",
            policy=definition.actions[0].moderation,
            now=T0,
        )
        items.append(_item_row(item, store.encode("ModerationItem", item)))
        if right:
            made = decision(item, "APPROVE", actor="rita")
        else:
            made = decision(item, "EDIT", actor="rita", field="Flavor", value="Salmon")
        decisions.append(_decision_row(made))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.workflow_versions),
            [
                {
                    "workflow_id": "wf-describe",
                    "version": 1,
                    "content_hash": definition.content_hash(),
                    "definition": json.dumps(definition.to_dict(), sort_keys=True),
                    "source": "wf.yaml",
                    "applied_by": "julia",
                    "applied_at": T0,
                }
            ],
        )
        conn.execute(sa.insert(t.moderation_items), items)
        conn.execute(sa.insert(t.decisions), decisions)
    engine.dispose()
    return url


def _item_row(item: ModerationItem, record: bytes) -> dict[str, object]:
    return {
        "item_id": item["item_id"],
        "task_id": item["task_id"],
        "run_id": item["run_id"],
        "workflow_id": item["workflow_id"],
        "sku": item["sku"],
        "action_id": item["action_id"],
        "review_reason": item["review_reason"],
        "requires_second_approval": False,
        "risk": 0.5,
        "pending": False,
        "created_at": T0,
        "resolved_at": T0 + timedelta(minutes=1),
        "record": record,
    }


def _decision_row(d: ModerationDecision) -> dict[str, object]:
    return {
        "decision_id": d["decision_id"],
        "item_id": d["item_id"],
        "task_id": d["task_id"],
        "sku": d["sku"],
        "decision": d["decision"],
        "field": d["field"],
        "locale": d["locale"],
        "edited_value": d["edited_value"],
        "feedback": d["feedback"],
        "actor_id": d["actor"]["id"],
        "role": d["actor"]["role"],
        "decided_at": d["decided_at"],
    }


def population(count: int, seed: int = 5) -> list[tuple[float, bool]]:
    rng = random.Random(seed)
    return [
        (confidence, rng.random() < right)
        for confidence, right in (rng.choice(LEVELS) for _ in range(count))
    ]


Calibrate = Callable[..., tuple[int, str, str]]


@pytest.fixture
def calibrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Calibrate:
    made: list[Path] = []

    def run(labels: Sequence[tuple[float, bool]], *argv: str) -> tuple[int, str, str]:
        """``catalogflow calibrate ARGV`` over a new read model holding ``labels``."""
        made.append(tmp_path / f"read-model-{len(made)}")
        made[-1].mkdir()
        monkeypatch.setenv("CATALOGFLOW_READ_MODEL_URL", read_model(made[-1], labels))
        code = main(["calibrate", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_calibrate_proposes_a_threshold_and_writes_a_definition_to_apply(
    calibrate: Calibrate, tmp_path: Path
) -> None:
    out_file = tmp_path / "calibrated.yaml"
    args = ("wf-describe", "--precision", "0.95", "--holdout", "0.5", "--write", str(out_file))

    code, out, err = calibrate(population(1200), *args)

    assert code == 0, err
    print(out)
    proposed = re.search(
        r"extract: auto_approve_above (0\.99?) \(now always, no auto-approval\)", out
    )
    assert proposed is not None, out  # 0.9 or 0.99: above 0.6, 75% right, precision falls
    assert "strictest (highest) of its fields' thresholds" in out
    assert "after an audit sample of 5%" in out and "vs asked 0.95" in out
    written = out_file.read_text(encoding="utf-8")
    assert written.startswith("# wf-describe version 1 with moderation.auto_approve_above")
    applied = parse_definition(written, str(out_file))
    assert applied.actions[0].moderation.auto_approve_above == float(proposed.group(1))
    assert applied.actions[0].moderation.audit_sample == 0.05
    assert applied.actions[0].moderation.mode == "always"
    assert applied.content_hash() != parse_definition(WORKFLOW, "wf.yaml").content_hash()


def test_calibrate_json_says_why_a_field_got_no_threshold_and_exits_1(calibrate: Calibrate) -> None:
    code, out, _ = calibrate(population(30), "wf-describe", "--json")

    assert code == 1
    result = json.loads(out)
    [action] = result["actions"]
    assert action["threshold"] is None and action["reached"] is False
    assert action["problem"] == "Flavor: not enough decisions (30 of 50 needed)"
    assert result["resolved"] == 30 and result["versions"] == [1]


def test_calibrate_refuses_bad_input_with_exit_2_and_an_unknown_workflow_with_1(
    calibrate: Calibrate,
) -> None:
    with pytest.raises(SystemExit) as exc:
        calibrate(population(10), "wf-describe", "--precision", "1.5")
    assert exc.value.code == 2

    code, _, err = calibrate(population(10), "nope")
    assert code == 1
    assert "no workflow 'nope' in the read model (sqlite:///" in err


def test_an_audit_sample_given_is_written_into_the_definition(
    calibrate: Calibrate, tmp_path: Path
) -> None:
    out_file = tmp_path / "w.yaml"
    code, _, err = calibrate(
        population(600),
        "wf-describe",
        "--precision",
        "0.9",
        "--audit-sample",
        "0.1",
        "--write",
        str(out_file),
    )
    assert code == 0, err
    document = yaml.safe_load(out_file.read_text(encoding="utf-8"))
    assert document["actions"][0]["moderation"]["audit_sample"] == 0.1
