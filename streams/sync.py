"""Planning writes to targets, as pure functions over records.

A finished task's approved outputs become one SyncRequest per target and store
scope: each sync target says where a value goes (:meth:`SyncTarget.place
<catalogflow.connectors.targets.base.SyncTarget.place>`: Magento puts a value without
a locale in the global scope ``all`` and a locale's value on its store view; the
Merchant Center feed keeps everything in one scope). Each field carries the value the
AI read, for the target's conflict guard, and a hash of the value to write, for the
sync ledger that makes every write idempotent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from catalogflow.connectors.targets.base import Refusal, SyncTarget
from catalogflow.streams.definitions import FieldRef
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.records import (
    ActionOutput,
    FieldOutput,
    ProductSnapshot,
    SyncField,
    SyncRequest,
    SyncResult,
    SyncTaskState,
    Task,
    Value,
)
from catalogflow.streams.rules import field_value

#: The scope of a value that is not per store view: Magento's global scope, the ``all``
#: store code of its REST paths (the one name for it: requests, ledger and client).
GLOBAL_SCOPE = "all"


def store_codes(text: str) -> dict[str, str]:
    """``de_DE=de,fr_FR=fr`` → ``{"de_DE": "de", "fr_FR": "fr"}``."""
    codes: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        locale, sep, code = pair.partition("=")
        if not sep or not locale.strip() or not code.strip():
            raise ConfigError(
                f"setting magento_store_codes: {pair!r} is not locale=store_code (e.g. de_DE=de)"
            )
        codes[locale.strip()] = code.strip()
    return codes


def attribute_code(field: str) -> str:
    """Magento attribute codes are lowercase ``[a-z0-9_]``: ``Flavor`` → ``flavor``."""
    return re.sub(r"[^a-z0-9_]+", "_", field.strip().lower()).strip("_")


def value_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def ledger_key(sku: str, target: str, scope: str, attribute: str) -> str:
    """The SKU comes first, so the row lives on the product's partition."""
    return f"{sku}@{target}|{scope}|{attribute}"


def request_id(task_id: str, target: str, scope: str) -> str:
    return f"{task_id}#{target}#{scope}"


#: The action type of the review a workflow with ``sync.mode: after_approval`` adds
#: after its last step: one item holding every value about to be written.
SYNC_APPROVAL = "sync_approval"


def is_sync_approval(output: ActionOutput) -> bool:
    return output["action_type"] == SYNC_APPROVAL


def sync_approval_output(task: Task) -> ActionOutput:
    """The values a person approves before anything is written, as one output."""
    fields: list[FieldOutput] = [
        {
            "field": name,
            "locale": locale,
            "value": value,
            "reasoning": "to be written to the workflow's sync targets",
            "confidence": None,
            "evidence": None,
            "approved": False,
        }
        for (name, locale), value in approved_values(task).items()
    ]
    return {
        "action_id": "sync",
        "action_type": SYNC_APPROVAL,
        "fields": fields,
        "model": None,
        "prompt_version": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "skipped": None,
    }


def approved_values(task: Task) -> dict[tuple[str, str | None], Value]:
    """(field, locale) → value from every step; a later step wins. Empty values are
    left out: an abstention must never clear what the shop has. After a sync
    approval, only what the person approved there counts."""
    outputs = list(task["outputs"])
    if outputs and is_sync_approval(outputs[-1]):
        outputs = outputs[-1:]
    values: dict[tuple[str, str | None], Value] = {}
    for output in outputs:
        for produced in output["fields"]:
            if produced["approved"] and produced["value"] not in (None, "", []):
                values[(produced["field"], produced["locale"])] = produced["value"]
    return values


def sync_requests(
    task: Task,
    targets: Mapping[str, SyncTarget],
    product: ProductSnapshot | None,
    now: datetime,
) -> tuple[list[SyncRequest], list[str]]:
    """The requests for a finished task (``targets``: name → target, in the workflow's
    order), and notes on the values a target cannot take."""
    values = approved_values(task)
    requests: list[SyncRequest] = []
    notes: list[str] = []
    for target, planner in targets.items():
        by_scope: dict[str, list[SyncField]] = {}
        for (name, locale), value in values.items():
            placed = planner.place(name, locale)
            if isinstance(placed, Refusal):
                notes.append(placed.note)
                continue
            by_scope.setdefault(placed.scope, []).append(
                {
                    "attribute": placed.attribute,
                    "value": value,
                    "read_value": _read_value(product, name, locale),
                    "value_hash": value_hash(value),
                }
            )
        for scope, fields in sorted(by_scope.items()):
            requests.append(
                {
                    "request_id": request_id(task["task_id"], target, scope),
                    "task_id": task["task_id"],
                    "run_id": task["run_id"],
                    "sku": task["sku"],
                    "target": target,
                    "store_scope": scope,
                    "fields": fields,
                    "requested_at": now,
                }
            )
    return requests, notes


def _read_value(product: ProductSnapshot | None, name: str, locale: str | None) -> Value:
    """What the catalog held for the field when the values were made: under the
    workflow's name, or under the Magento code a pulled catalog uses (``flavor``)."""
    if product is None:
        return None
    value = field_value(product, FieldRef(name, locale, None))
    if value is None and attribute_code(name) != name:
        value = field_value(product, FieldRef(attribute_code(name), locale, None))
    return value


def summary(result: SyncResult) -> str:
    """One line per sync result for the task's history: ``magento/de SYNCED: …``."""
    parts = [f"{f['attribute']} {f['status'].lower()}" for f in result["fields"]]
    detail = f" ({result['message']})" if result["message"] else ""
    return (
        f"{result['target']}/{result['store_scope']} {result['status']}: "
        f"{', '.join(parts) or 'nothing to write'}{detail}"
    )


def sync_outcome(result: SyncResult) -> str:
    """The ``outcome`` label of a result in ``catalogflow_sync_results_total``: synced,
    conflict, unchanged, or the error's category (``auth``, ``connection``, ...)."""
    if result["status"] == "ERROR":
        return (result["error_category"] or "OTHER").lower()
    return result["status"].lower()


def is_error_summary(line: str) -> bool:
    """A :func:`summary` line of a request that failed (``magento/all ERROR: …``)."""
    return line.split(":", 1)[0].endswith(" ERROR")


def failed_request_ids(state: SyncTaskState) -> list[str]:
    """The requests of a finished sync (a ``sync-pending`` row with every outcome)
    that failed: what a retry sends again."""
    return [r for r in state["request_ids"] if is_error_summary(state["outcomes"].get(r, ""))]


def retry_sync_state(state: SyncTaskState) -> SyncTaskState:
    """The ``sync-pending`` row of a retried sync: the next attempt, still waiting for
    the failed requests, and keeping the outcomes of those that went through (they
    are not sent again, and the task's final history still names them)."""
    failed = set(failed_request_ids(state))
    return {
        **state,
        "attempt": state["attempt"] + 1,
        "outcomes": {r: line for r, line in state["outcomes"].items() if r not in failed},
    }
