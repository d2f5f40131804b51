"""``catalogflow calibrate WORKFLOW``: ``auto_approve_above`` learned from the reviewers.

Reads the workflow's decided review items from the read model (``calibrate_labels``),
fits confidence → probability of being correct per action and field and proposes the
lowest threshold that reaches ``--precision`` (``calibrate_fit``), with the share of
the queue it saves and the audit sample it keeps. ``--holdout`` measures the proposal
on decisions the fit did not see; ``--write FILE`` writes the workflow's current
definition with the proposals in, for ``catalogflow workflow apply`` (a new version).

It reads the read model's database directly (``read_model_url``): the read side's API
offers no labels. Exit codes: 0 every action got a threshold (that held on the held-out
part), 1 some field had too few decisions or could not reach the precision, or the
workflow is unknown, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from catalogflow.calibrate_fit import ActionProposal, FieldProposal, Measured, propose
from catalogflow.calibrate_labels import Applied, Reviewed, applied, reviewed
from catalogflow.readmodel.store import open_read_model
from catalogflow.readmodel.views import NotFound
from catalogflow.streams.definitions import ModerationPolicy, WorkflowDefinition
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_PRECISION = 0.98
DEFAULT_MIN_LABELS = 50


def add_calibrate_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``calibrate WORKFLOW``."""
    parser = commands.add_parser(
        "calibrate",
        help="propose auto_approve_above per action from past review decisions",
        description="Learn auto-approval thresholds from reviewers: values approved as is "
        "are correct, edited, rejected or regenerated ones wrong. Fits confidence to the "
        "probability of being correct per action and field (isotonic regression) and "
        "proposes the lowest auto_approve_above whose values reach --precision (a 95% "
        "lower bound), with the share of the review queue it saves. Reads the read model. "
        "Exit 0 proposed, 1 some field had too few decisions or could not reach the "
        "precision, 2 bad usage.",
    )
    parser.add_argument("workflow_id", metavar="WORKFLOW", help="the workflow's id")
    parser.add_argument(
        "--precision",
        type=_open_fraction("--precision"),
        metavar="SHARE",
        default=DEFAULT_PRECISION,
        help=f"share of auto-approved values that must be right (default {DEFAULT_PRECISION})",
    )
    parser.add_argument(
        "--min-labels",
        type=_positive,
        default=DEFAULT_MIN_LABELS,
        metavar="N",
        help=f"decisions a field needs before a threshold is proposed "
        f"(default {DEFAULT_MIN_LABELS})",
    )
    parser.add_argument(
        "--holdout",
        type=_open_fraction("--holdout"),
        metavar="SHARE",
        help="fit on the rest, measure the proposal on this share of the products (e.g. 0.5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the --holdout split (default 0)")
    parser.add_argument(
        "--audit-sample",
        type=_fraction("--audit-sample"),
        metavar="SHARE",
        help="audit sample to keep (default: each action's current audit_sample)",
    )
    parser.add_argument("--action", metavar="ACTION_ID", help="only this action")
    parser.add_argument(
        "--since-version",
        type=_positive,
        default=0,
        metavar="N",
        help="only decisions on runs of version N or later (e.g. after a prompt change)",
    )
    parser.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="write the current definition with the proposals, for `workflow apply`",
    )
    parser.add_argument("--json", action="store_true", help="print the proposal as JSON")
    parser.set_defaults(run=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    engine = open_read_model(settings)
    try:
        try:
            workflow = applied(engine, args.workflow_id)
        except NotFound as exc:
            print(f"catalogflow: {exc} in the read model ({settings.read_model})", file=sys.stderr)
            return EXIT_FAILED
        found = reviewed(engine, args.workflow_id, args.since_version)
    finally:
        engine.dispose()
    labels = [x for x in found.labels if args.action is None or x.action_id == args.action]
    if not labels:
        what = f"action {args.action!r} of " if args.action else ""
        print(
            f"catalogflow: no decided review items of {what}{args.workflow_id} in the read "
            f"model ({found.items} review items, {found.resolved} decided)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    proposals = propose(
        labels,
        args.precision,
        min_labels=args.min_labels,
        holdout=args.holdout or 0.0,
        seed=args.seed,
    )
    policies = {a.id: a.moderation for a in workflow.definition.actions}
    proposals += [  # reviewed actions nobody has decided on yet: nothing learned
        ActionProposal(action_id, None, "no decided review items", [], 0, 0.0, None)
        for action_id, policy in policies.items()
        if policy.mode != "none"
        and args.action in (None, action_id)
        and action_id not in {p.action_id for p in proposals}
    ]
    audit = {
        p.action_id: args.audit_sample
        if args.audit_sample is not None
        else policies.get(p.action_id, ModerationPolicy()).audit_sample
        for p in proposals
    }
    written = None
    if args.write is not None:
        written = write_definition(args.write, workflow, proposals, args)
    if args.json:
        result = as_json(args, workflow, found, proposals, audit, policies, written)
        print(json.dumps(result, indent=2))
    else:
        for line in report_lines(args, workflow, found, proposals, audit, policies, written):
            print(line)
    return EXIT_OK if all(reached(p, args.precision) for p in proposals) else EXIT_FAILED


def reached(proposal: ActionProposal, precision: float) -> bool:
    """A threshold, and (with a hold-out) a measured precision that reaches the ask."""
    if proposal.threshold is None:
        return False
    held = proposal.held_out
    return held is None or (held.precision is not None and held.precision >= precision)


# --------------------------------------------------------------------------- output


def report_lines(
    args: argparse.Namespace,
    workflow: Applied,
    found: Reviewed,
    proposals: list[ActionProposal],
    audit: dict[str, float],
    policies: dict[str, ModerationPolicy],
    written: Path | None,
) -> list[str]:
    versions = ", ".join(f"v{v}" for v in found.versions)
    split = f", {args.holdout:.0%} held out (seed {args.seed})" if args.holdout else ""
    lines = [
        f"{args.workflow_id} (current version {workflow.version}): {found.resolved} decided "
        f"review items of runs of {versions} ({found.audited} from the audit sample), "
        f"asked precision {args.precision:g}{split}",
        "An action's policy is one threshold over the item's lowest confidence: its "
        "proposal is the strictest (highest) of its fields' thresholds.",
    ]
    for p in proposals:
        policy = policies.get(p.action_id)
        now = "not in the current version" if policy is None else _current(policy)
        lines.append("")
        if p.threshold is None:
            why = p.problem if not p.fields else "not every field got a threshold"
            lines.append(f"{p.action_id}: no proposal ({now}): {why}")
        else:
            keep = audit[p.action_id]
            lines.append(
                f"{p.action_id}: auto_approve_above {p.threshold:g} ({now}): saves "
                f"{p.saved:.0%} of {p.items} reviewed items ({p.saved * (1 - keep):.0%} after "
                f"an audit sample of {keep:.0%})"
            )
            if p.held_out is not None:
                short = "" if reached(p, args.precision) else ": short of it, not written"
                lines.append(
                    f"  held out: {_measured(p.held_out)} vs asked {args.precision:g}{short}"
                )
        if not p.fields:
            continue
        lines.append(
            "  FIELD                     LABELS CORRECT THRESHOLD  SAVED EXPECTED  BOUND  HELD OUT"
        )
        lines.extend(_field_line(f) for f in p.fields)
        lines.extend(f"    {f.field}: {f.problem}" for f in p.fields if f.problem)
    if written is not None:
        lines += ["", f"wrote {written}; apply it with: catalogflow workflow apply {written}"]
    return lines


def _field_line(f: FieldProposal) -> str:
    threshold = "-" if f.threshold is None else f"{f.threshold:.4g}"
    expected = "-" if f.expected is None else f"{f.expected:.3f}"
    bound = "-" if f.bound is None else f"{f.bound:.3f}"
    held = "-" if f.held_out is None else _measured(f.held_out)
    return (
        f"  {f.field:<25} {f.labels:>6} {f.correct:>6.0%} {threshold:>9} {f.saved:>6.0%} "
        f"{expected:>8} {bound:>6}  {held}"
    )


def _measured(m: Measured) -> str:
    if m.precision is None:
        return "nothing auto-approved"
    return f"precision {m.precision:.3f} ({m.correct} of {m.values} values)"


def _current(policy: ModerationPolicy) -> str:
    now = policy.auto_approve_above
    return f"now {policy.mode}, " + ("no auto-approval" if now is None else f"{now:g}")


def as_json(
    args: argparse.Namespace,
    workflow: Applied,
    found: Reviewed,
    proposals: list[ActionProposal],
    audit: dict[str, float],
    policies: dict[str, ModerationPolicy],
    written: Path | None,
) -> dict[str, Any]:
    def action(p: ActionProposal) -> dict[str, Any]:
        data = asdict(p)
        policy = policies.get(p.action_id)
        data["current_auto_approve_above"] = None if policy is None else policy.auto_approve_above
        data["audit_sample"] = audit[p.action_id]
        data["reached"] = reached(p, args.precision)
        for m in [data["held_out"], *(f["held_out"] for f in data["fields"])]:
            if m is not None:
                m["precision"] = m["correct"] / m["values"] if m["values"] else None
        return data

    return {
        "workflow_id": args.workflow_id,
        "version": workflow.version,
        "precision": args.precision,
        "min_labels": args.min_labels,
        "holdout": args.holdout,
        "seed": args.seed,
        "items": found.items,
        "resolved": found.resolved,
        "audited": found.audited,
        "versions": list(found.versions),
        "actions": [action(p) for p in proposals],
        "written": None if written is None else str(written),
    }


# --------------------------------------------------------------------------- --write


def write_definition(
    path: Path,
    workflow: Applied,
    proposals: list[ActionProposal],
    args: argparse.Namespace,
) -> Path | None:
    """The current definition with each threshold that reached the precision (and
    ``--audit-sample``) in its action's moderation; None (nothing written) when none did."""
    chosen = {
        p.action_id: p.threshold
        for p in proposals
        if p.threshold is not None and reached(p, args.precision)
    }
    document = json.loads(json.dumps(workflow.document))
    changed = []
    for action in document["actions"]:
        threshold = chosen.get(action["id"])
        moderation = action["moderation"]
        if threshold is None:
            continue
        if moderation["mode"] == "none":
            print(
                f"catalogflow: {action['id']} reviews nothing (mode none); left as is",
                file=sys.stderr,
            )
            continue
        floor = moderation["threshold"]
        if floor is not None and threshold < floor:
            # A definition wants auto_approve_above >= threshold, and below_threshold
            # reviews nothing above its threshold anyway.
            print(
                f"catalogflow: {action['id']}: {threshold:g} is below the action's threshold "
                f"{floor:g}; written as {floor:g} (lower the threshold to save more)",
                file=sys.stderr,
            )
            threshold = floor
        moderation["auto_approve_above"] = threshold
        if args.audit_sample is not None:
            moderation["audit_sample"] = args.audit_sample
        changed.append(action["id"])
    if not changed:
        print("catalogflow: no action reached the precision; nothing written", file=sys.stderr)
        return None
    WorkflowDefinition.from_dict(document, str(path))  # the file must apply as written
    header = (
        f"# {args.workflow_id} version {workflow.version} with moderation.auto_approve_above "
        f"from `catalogflow calibrate` (precision {args.precision:g}) for: {', '.join(changed)}.\n"
        f"# Apply it as a new version: catalogflow workflow apply {path}\n"
    )
    text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CatalogflowError(f"cannot write {path}: {exc.strerror}") from exc
    return path


# --------------------------------------------------------------------------- arguments


def _fraction(option: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _number(option, text)
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{option} must be from 0 to 1, got {text}")
        return value

    return parse


def _open_fraction(option: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _number(option, text)
        if not 0.0 < value < 1.0:
            raise argparse.ArgumentTypeError(f"{option} must be between 0 and 1, got {text}")
        return value

    return parse


def _number(option: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option} expects a number, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value
