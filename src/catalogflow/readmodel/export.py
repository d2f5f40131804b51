"""The one export format of a run's results, for the API's export routes and the CLI.

CSV is one row per field value (task, action, attempt, field, locale), with the task's
columns repeated on each row: what a catalog team filters and sorts in a spreadsheet is
the field ("every description below 0.5"), and a row per task would need a column per
field and locale, different for every workflow. A task without fields still gets one
row, with the field columns empty, so the file holds every task the filter selected.
JSON Lines is one ``TaskResult`` per line, exactly as the API serves it.
Both write as they read: an export of 100,000 tasks never sits in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from catalogflow.readmodel.views import FieldResult, TaskResult

TASK_COLUMNS = (
    "task_id",
    "run_id",
    "workflow_id",
    "sku",
    "status",
    "action_id",
    "step_index",
    "attempt",
    "reason",
    "failure_category",
    "min_confidence",
    "moderation_state",
    "sync_status",
    "cost",
    "input_tokens",
    "output_tokens",
    "at",
)
FIELD_COLUMNS = (
    "field_action_id",
    "field_attempt",
    "field",
    "locale",
    "value",
    "confidence",
    "approved",
    "reasoning",
    "evidence",
    "model",
    "prompt_version",
)
CSV_COLUMNS = TASK_COLUMNS + FIELD_COLUMNS


def write_csv(tasks: Iterable[TaskResult], out: TextIO) -> int:
    """Writes the header and one row per (task, field); returns the tasks written."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for task in tasks:
        writer.writerows(csv_rows(task))
        count += 1
    return count


def csv_rows(task: TaskResult) -> Iterator[list[str]]:
    """The CSV rows of one task (for a streamed response, a task at a time)."""
    head = [_cell(getattr(task, name)) for name in TASK_COLUMNS]
    if not task.fields:
        yield head + [""] * len(FIELD_COLUMNS)
    for f in task.fields:
        yield head + _field_cells(f)


def write_jsonl(tasks: Iterable[TaskResult], out: TextIO) -> int:
    """Writes one TaskResult as JSON per line; returns the tasks written."""
    count = 0
    for task in tasks:
        out.write(jsonl_line(task))
        count += 1
    return count


def jsonl_line(task: TaskResult) -> str:
    return task.model_dump_json() + "\n"


def _field_cells(f: FieldResult) -> list[str]:
    return [
        f.action_id,
        str(f.attempt),
        f.field,
        f.locale or "",
        _value(f.value),
        _cell(f.confidence),
        "true" if f.approved else "false",
        _cell(f.reasoning),
        _cell(f.evidence),
        _cell(f.model),
        _cell(f.prompt_version),
    ]


def _value(value: Any) -> str:
    """Text as is; lists and numbers as JSON, so a spreadsheet cell reads back."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
