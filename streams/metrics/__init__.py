"""Every metric catalogflow records, declared once per family module (see ``base``).

A new metric: declare it in its family's module (or a new module) and, for a new
module, add it to ``FAMILIES``; ``tests/unit/test_metrics.py`` checks every declaration.
"""

from __future__ import annotations

from types import ModuleType

from catalogflow.streams.metrics import (
    api,
    deadletters,
    lag,
    model,
    moderation,
    projector,
    quality,
    runs,
    sync,
    tasks,
    workers,
)
from catalogflow.streams.metrics.base import Metric

FAMILIES: tuple[ModuleType, ...] = (
    tasks,
    model,
    moderation,
    sync,
    deadletters,
    lag,
    runs,
    workers,
    projector,
    api,
    quality,
)


def declared() -> list[Metric]:
    """Every declared metric, family by family."""
    return [
        value for family in FAMILIES for value in vars(family).values() if isinstance(value, Metric)
    ]
