"""Scoring a workflow's outputs on golden items: per field and locale, what was right,
what was invented, what the checks caught and what the moderation policy would have
approved without a person.

"Auto-approved" is decided by the moderation code itself
(:func:`catalogflow.streams.moderation.review_reason`), so the number is what a real
run would have written unseen. A value is *invented* when the golden file says the
text supports none; it is *caught* when a check flagged it (never approved
automatically). A field the golden file does not name (generated texts) is counted, not
scored: produced, flagged by its checks, auto-approved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from catalogflow.dryrun import DryRun
from catalogflow.evaluation.golden import GoldenItem
from catalogflow.evaluation.reliability import (
    ReliabilityBin,
    expected_calibration_error,
    reliability,
)
from catalogflow.streams.definitions import ActionSpec
from catalogflow.streams.moderation import review_reason
from catalogflow.streams.records import ActionOutput, FieldOutput, Value


@dataclass
class FieldScore:
    """One field (and locale) over every product of the golden set."""

    field: str
    locale: str | None
    action_id: str
    scored: bool  # the golden file names this field: correct/invented are known
    products: int = 0
    produced: int = 0  # a value (not "no value") came out
    correct: int = 0
    missed: int = 0  # no value where the golden file has one
    wrong: int = 0  # a value other than the golden one
    invented: int = 0  # a value where the golden file says none
    caught: int = 0  # invented values a check flagged
    flagged: int = 0  # values a check flagged (never approved automatically)
    auto_approved: int = 0  # values the policy would have approved without a person
    invented_auto_approved: int = 0
    wrong_auto_approved: int = 0  # wrong or invented values approved without a person
    failed: int = 0  # the step failed for the product

    @property
    def label(self) -> str:
        return self.field + (f"@{self.locale}" if self.locale else "")

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.products if self.scored and self.products else None


@dataclass
class Report:
    workflow_id: str
    products: int
    fields: list[FieldScore]
    reliability: list[ReliabilityBin]
    ece: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    models: list[str]
    failures: dict[str, int] = field(default_factory=dict)  # "action: CATEGORY" -> products


def score(
    workflow_id: str,
    chain: Sequence[ActionSpec],
    golden: Sequence[GoldenItem],
    results: Sequence[DryRun],
) -> Report:
    """``results[i]`` is the dry run of ``golden[i]``."""
    fields: dict[tuple[str, str | None], FieldScore] = {}
    for spec_id, name in _golden_fields(chain, golden):
        fields[(name, None)] = FieldScore(name, None, spec_id, scored=True)
    for result in results:  # the generated fields, in the order they first appear
        for produced in result["outputs"]:
            for out in produced["fields"]:
                key = (out["field"], out["locale"])
                if key not in fields:
                    fields[key] = FieldScore(key[0], key[1], produced["action_id"], scored=False)
    pairs: list[tuple[float, bool]] = []
    failures: Counter[str] = Counter()
    models: set[str] = set()
    for item, result in zip(golden, results, strict=True):
        outputs = {o["action_id"]: o for o in result["outputs"]}
        failed_at = _failed_actions(result["errors"], failures)
        models.update(o["model"] for o in result["outputs"] if o["model"])
        for spec in chain:
            output = outputs.get(spec.id)
            approved_unseen = output is not None and _auto_approved(spec, output, item.sku)
            shown = {(f["field"], f["locale"]): f for f in (output["fields"] if output else [])}
            for key, target in fields.items():
                if target.action_id != spec.id:
                    continue
                target.products += 1
                if spec.id in failed_at or output is None:  # failed, or not reached
                    target.failed += 1
                    continue
                _count(target, shown.get(key), item.expected, approved_unseen, pairs)
    table = reliability(pairs)
    return Report(
        workflow_id=workflow_id,
        products=len(golden),
        fields=list(fields.values()),
        reliability=table,
        ece=expected_calibration_error(table),
        input_tokens=sum(o["input_tokens"] for r in results for o in r["outputs"]),
        output_tokens=sum(o["output_tokens"] for r in results for o in r["outputs"]),
        cost=sum(r["cost"] for r in results),
        models=sorted(models),
        failures=dict(sorted(failures.items())),
    )


def _count(
    target: FieldScore,
    out: FieldOutput | None,
    expected: Mapping[str, Value],
    approved_unseen: bool,
    pairs: list[tuple[float, bool]],
) -> None:
    value = out["value"] if out is not None else None
    has_value = value is not None and value != ""
    auto = has_value and out is not None and out["approved"] and approved_unseen
    if has_value:
        target.produced += 1
        target.flagged += 0 if out is None or out["approved"] else 1
        target.auto_approved += 1 if auto else 0
    if not target.scored:
        return
    truth = expected.get(target.field)
    correct = (value if has_value else None) == truth
    if auto and not correct:
        target.wrong_auto_approved += 1
    if correct:
        target.correct += 1
    elif truth is None:
        target.invented += 1
        target.caught += 1 if out is not None and not out["approved"] else 0
        target.invented_auto_approved += 1 if auto else 0
    elif not has_value:
        target.missed += 1
    else:
        target.wrong += 1
    if has_value and out is not None and out["confidence"] is not None:
        pairs.append((out["confidence"], correct))


def _golden_fields(
    chain: Sequence[ActionSpec], golden: Sequence[GoldenItem]
) -> list[tuple[str, str]]:
    """(action id, field) for every field the golden file names, by the action that
    extracts it (the first extraction action naming it as an attribute)."""
    named = {name for item in golden for name in item.expected}
    found: list[tuple[str, str]] = []
    for spec in chain:
        for attribute in spec.settings.get("attributes", []) or []:
            name = str(attribute.get("name"))
            if name in named and all(name != f for _, f in found):
                found.append((spec.id, name))
    return found


def _auto_approved(spec: ActionSpec, output: ActionOutput, sku: str) -> bool:
    return bool(output["fields"]) and review_reason(spec.moderation, output["fields"], sku) is None


def _failed_actions(errors: Iterable[str], failures: Counter[str]) -> set[str]:
    """The actions that failed, from the dry run's "action: CATEGORY: message" lines."""
    failed = set()
    for error in errors:
        action, _, rest = error.partition(": ")
        category = rest.partition(": ")[0]
        failed.add(action)
        failures[f"{action}: {category}"] += 1
    return failed


def unscored_golden_fields(chain: Sequence[ActionSpec], golden: Sequence[GoldenItem]) -> list[str]:
    """Fields the golden file names that no action of the chain extracts."""
    extracted = {name for _, name in _golden_fields(chain, golden)}
    return sorted({n for item in golden for n in item.expected} - extracted)
