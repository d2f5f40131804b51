"""Comparing an evaluation with a saved one, so a prompt or model change can be gated:
a field's accuracy falling by more than the margin, more invented values approved
without a person, or a worse calibration (ECE up by more than the margin) is a
regression."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalogflow.evaluation.scoring import Report
from catalogflow.streams.errors import ConfigError

DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class Regression:
    what: str  # e.g. "Flavor accuracy"
    before: float
    after: float

    def __str__(self) -> str:
        return f"{self.what}: {self.before:.3f} -> {self.after:.3f}"


def report_json(report: Report) -> dict[str, Any]:
    """The report as saved with ``--save`` and printed with ``--json``."""
    data = dataclasses.asdict(report)
    for row, score in zip(data["fields"], report.fields, strict=True):
        row["label"], row["accuracy"] = score.label, score.accuracy
    return data


def load_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the baseline {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"the baseline {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("fields"), list):
        raise ConfigError(
            f"the baseline {path} is not a saved evaluation (catalogflow eval --save)"
        )
    return data


def regressions(
    baseline: dict[str, Any], current: dict[str, Any], margin: float = DEFAULT_MARGIN
) -> list[Regression]:
    now = {row["label"]: row for row in current["fields"]}
    found: list[Regression] = []
    for row in baseline["fields"]:
        if row.get("accuracy") is None:
            continue
        label = row["label"]
        after = now.get(label)
        if after is None or after.get("accuracy") is None:
            found.append(
                Regression(f"{label} accuracy (field no longer produced)", row["accuracy"], 0.0)
            )
            continue
        if after["accuracy"] < row["accuracy"] - margin:
            found.append(Regression(f"{label} accuracy", row["accuracy"], after["accuracy"]))
        if after["invented_auto_approved"] > row["invented_auto_approved"]:
            found.append(
                Regression(
                    f"{label} invented values auto-approved",
                    row["invented_auto_approved"],
                    after["invented_auto_approved"],
                )
            )
    before_ece, after_ece = baseline.get("ece"), current.get("ece")
    if before_ece is not None and after_ece is not None and after_ece > before_ece + margin:
        found.append(Regression("expected calibration error", before_ece, after_ece))
    return found
