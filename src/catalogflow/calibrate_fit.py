"""Confidence → probability of being correct, and the ``auto_approve_above`` a precision
asks for: pure functions over labels (no database, no Kafka; ``calibrate_labels.py``
makes the labels, ``calibrate.py`` is the command).

Per action and field, an isotonic regression (scikit-learn) maps a value's confidence
to the probability that a person approves it as is. Isotonic, not a sigmoid (Platt):
the curve only has to rise with confidence, and over a set of values whose edge falls
on one of its steps its mean *is* the share approved, so the fit can smooth noise but
cannot claim more precision than the decisions show.

The proposed threshold is the lowest observed confidence ``t`` such that the values
with confidence ``>= t`` (the gate's comparison: ``streams/moderation.py`` approves
when the item's lowest confidence is ``>= auto_approve_above``) have an expected
precision (the mean calibrated probability over them) whose one-sided 95% Wilson
lower bound reaches the asked precision. The bound is the small-sample guard on top of
``min_labels``: thirty approvals in a row do not show 98%.

Values a check flagged are never auto-approved whatever the threshold, so they count
in the queue but not in the fit. The policy is per action and the gate looks at the
item's lowest confidence, so an action's threshold is the strictest of its fields'.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

#: One-sided 95%: the z of the Wilson lower bound.
Z = 1.645


@dataclass(frozen=True)
class Label:
    """One value a person decided on: approved as is (``correct``) or edited, rejected
    or sent back. ``confidence`` None: the action gave none (the gate reads it as 0)."""

    action_id: str
    field: str  # "Flavor", or "shopping_title@de_DE" for a locale's value
    item_id: str
    sku: str
    confidence: float | None
    correct: bool
    flagged: bool = False  # a check failed: always reviewed


@dataclass(frozen=True)
class Measured:
    """Precision of the values a threshold auto-approves, on labels the fit did not see."""

    values: int
    correct: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.values if self.values else None


@dataclass(frozen=True)
class FieldProposal:
    action_id: str
    field: str
    labels: int  # values the fit used (with a confidence, not flagged)
    correct: float  # their share approved as is
    threshold: float | None
    problem: str | None  # why there is no threshold
    expected: float | None  # calibrated precision of the values >= threshold
    bound: float | None  # its 95% lower bound
    at_threshold: float | None  # calibrated probability of a value right at the threshold
    saved: float  # share of the field's reviewed values the threshold auto-approves
    curve: list[tuple[float, float]]  # the fit's steps: (confidence, probability)
    held_out: Measured | None


@dataclass(frozen=True)
class ActionProposal:
    action_id: str
    threshold: float | None  # the strictest of the fields' thresholds
    problem: str | None
    fields: list[FieldProposal]
    items: int  # reviewed items of the action
    saved: float  # share of them the threshold auto-approves
    held_out: Measured | None


def in_holdout(sku: str, fraction: float, seed: int) -> bool:
    """A stable draw by product: every review of one SKU (runs repeat products, often
    with the same value) falls on the same side, so no copy leaks into the other half."""
    digest = hashlib.sha256(f"{seed}:{sku}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split(labels: Iterable[Label], fraction: float, seed: int) -> tuple[list[Label], list[Label]]:
    """(fit, held out); nothing is held out for ``fraction`` 0."""
    fit: list[Label] = []
    held: list[Label] = []
    for label in labels:
        (held if fraction and in_holdout(label.sku, fraction, seed) else fit).append(label)
    return fit, held


def wilson_lower(share: float, n: int, z: float = Z) -> float:
    """Lower bound of the Wilson score interval of a share observed over ``n`` values."""
    if n == 0:
        return 0.0
    zz = z * z
    centre = share + zz / (2 * n)
    margin = z * math.sqrt(share * (1 - share) / n + zz / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + zz / n))


def propose(
    labels: Sequence[Label],
    precision: float,
    *,
    min_labels: int,
    holdout: float = 0.0,
    seed: int = 0,
) -> list[ActionProposal]:
    """One proposal per action of ``labels``, fitted on all of them or, with ``holdout``,
    on the part :func:`split` keeps and measured on the rest. "Saved" shares count every
    reviewed value or item (they describe the queue, not a precision)."""
    fit, held = split(labels, holdout, seed)
    every, fitted, measured = _by_field(labels), _by_field(fit), _by_field(held)
    proposals = []
    for action_id in sorted({x.action_id for x in labels}):
        fields = [
            fit_field(
                action_id,
                name,
                fitted.get((action_id, name), []),
                precision,
                min_labels=min_labels,
                everyone=every[(action_id, name)],
                held=measured.get((action_id, name), []) if holdout else None,
            )
            for (action, name) in sorted(every)
            if action == action_id
        ]
        mine = [x for x in labels if x.action_id == action_id]
        proposals.append(_action(action_id, fields, mine, held if holdout else None))
    return proposals


def _by_field(labels: Iterable[Label]) -> dict[tuple[str, str], list[Label]]:
    out: dict[tuple[str, str], list[Label]] = defaultdict(list)
    for label in labels:
        out[(label.action_id, label.field)].append(label)
    return out


def fit_field(
    action_id: str,
    name: str,
    labels: Sequence[Label],
    precision: float,
    *,
    min_labels: int,
    everyone: Sequence[Label] | None = None,
    held: Sequence[Label] | None = None,
) -> FieldProposal:
    """The threshold of one action's field from its ``labels``; ``everyone`` (default:
    ``labels``) is what the saved share counts, ``held`` what the threshold is measured on."""
    scored = [x for x in labels if x.confidence is not None and not x.flagged]
    correct = sum(x.correct for x in scored) / len(scored) if scored else 0.0
    none = FieldProposal(
        action_id, name, len(scored), correct, None, None, None, None, None, 0.0, [], None
    )
    if len(scored) < min_labels:
        return replace(none, problem=f"not enough decisions ({len(scored)} of {min_labels} needed)")
    # Imported here: scikit-learn (with scipy) takes a second to load, and the CLI
    # registers this command on every start.
    from sklearn.isotonic import IsotonicRegression

    confidences = [x.confidence for x in scored if x.confidence is not None]
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(confidences, [1.0 if x.correct else 0.0 for x in scored])
    probability = [float(p) for p in model.predict(confidences)]
    curve = [
        (float(c), float(p)) for c, p in zip(model.X_thresholds_, model.y_thresholds_, strict=True)
    ]
    chosen, best = _lowest_passing(confidences, probability, precision)
    if chosen is None:
        t, expected, bound, n = best
        problem = (
            f"cannot reach {precision:g}: at best {bound:.3f} "
            f"(the {n} values at or above {t:g}, expected {expected:.3f})"
        )
        return replace(none, problem=problem, curve=curve)
    t, expected, bound, _ = chosen
    return replace(
        none,
        threshold=t,
        expected=expected,
        bound=bound,
        at_threshold=float(model.predict([t])[0]),
        saved=_saved(labels if everyone is None else everyone, t),
        curve=curve,
        held_out=None if held is None else measure(held, t),
    )


Candidate = tuple[float, float, float, int]  # threshold, expected precision, bound, values


def _lowest_passing(
    confidences: Sequence[float], probability: Sequence[float], precision: float
) -> tuple[Candidate | None, Candidate]:
    """The lowest threshold whose bound reaches ``precision`` (None if none does), and
    the candidate with the best bound (for the message when none does)."""
    pairs = sorted(zip(confidences, probability, strict=True), reverse=True)
    chosen: Candidate | None = None
    best: Candidate = (pairs[0][0], 0.0, -1.0, 0)
    total, n, i = 0.0, 0, 0
    while i < len(pairs):
        t = pairs[i][0]
        while i < len(pairs) and pairs[i][0] == t:  # every value at this confidence
            total += pairs[i][1]
            n += 1
            i += 1
        expected = total / n
        candidate = (t, expected, wilson_lower(expected, n), n)
        if candidate[2] > best[2]:
            best = candidate
        if candidate[2] >= precision:
            chosen = candidate  # descending: the last one that passes is the lowest
    return chosen, best


def measure(labels: Iterable[Label], threshold: float) -> Measured:
    """How many of ``labels`` the threshold auto-approves, and how many of those are right."""
    approved = [x for x in labels if _auto(x, threshold)]
    return Measured(len(approved), sum(x.correct for x in approved))


def _auto(label: Label, threshold: float) -> bool:
    return not label.flagged and (label.confidence or 0.0) >= threshold


def _saved(labels: Sequence[Label], threshold: float) -> float:
    if not labels:
        return 0.0
    return sum(_auto(x, threshold) for x in labels) / len(labels)


def _action(
    action_id: str,
    fields: list[FieldProposal],
    labels: Sequence[Label],
    held: Sequence[Label] | None,
) -> ActionProposal:
    """The action's threshold and what it does to whole items: the gate approves an item
    only when none of its values is flagged and its lowest confidence reaches it."""
    items = _items(labels)
    missing = [f for f in fields if f.threshold is None]
    if missing:
        problem = "; ".join(f"{f.field}: {f.problem}" for f in missing)
        return ActionProposal(action_id, None, problem, fields, len(items), 0.0, None)
    threshold = max(f.threshold for f in fields if f.threshold is not None)
    saved = sum(_item_auto(values, threshold) for values in items.values()) / len(items)
    measured = None
    if held is not None:
        approved = [
            x
            for values in _items([x for x in held if x.action_id == action_id]).values()
            if _item_auto(values, threshold)
            for x in values
        ]
        measured = Measured(len(approved), sum(x.correct for x in approved))
    return ActionProposal(action_id, threshold, None, fields, len(items), saved, measured)


def _items(labels: Iterable[Label]) -> dict[str, list[Label]]:
    items: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        items[label.item_id].append(label)
    return items


def _item_auto(values: Sequence[Label], threshold: float) -> bool:
    return all(_auto(x, threshold) for x in values)
