"""Confidence against correctness: a reliability table in equal-width bins and the
expected calibration error (ECE), the share-weighted gap between each bin's mean
confidence and its accuracy. A well-calibrated 0.8 is right four times in five."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    values: int
    mean_confidence: float
    accuracy: float


def reliability(pairs: Sequence[tuple[float, bool]], bins: int = BINS) -> list[ReliabilityBin]:
    """The non-empty bins of (confidence, correct) pairs; confidence 1.0 falls in the
    last bin."""
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for confidence, correct in pairs:
        index = min(int(max(confidence, 0.0) * bins), bins - 1)
        grouped[index].append((confidence, correct))
    table = []
    for index, members in enumerate(grouped):
        if members:
            table.append(
                ReliabilityBin(
                    lower=index / bins,
                    upper=(index + 1) / bins,
                    values=len(members),
                    mean_confidence=sum(c for c, _ in members) / len(members),
                    accuracy=sum(1 for _, ok in members if ok) / len(members),
                )
            )
    return table


def expected_calibration_error(table: Sequence[ReliabilityBin]) -> float | None:
    """None when there is nothing to measure."""
    total = sum(b.values for b in table)
    if not total:
        return None
    return sum(b.values / total * abs(b.accuracy - b.mean_confidence) for b in table)
