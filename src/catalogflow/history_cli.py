"""`catalogflow history SKU`: everything that happened to one product, from the read side.

Every step in order: transitions, each step's output with its lineage (input hash,
prompt version, model, fields with confidence), every decision (who, role, when,
what) and every sync result. Exit 1 for a product the read side does not know.
"""

from __future__ import annotations

import argparse
import json
import sys

from catalogflow.readmodel.views import HistoryEntry, NotFound
from catalogflow.readside import add_read_side_options, for_args, where
from catalogflow.streams.settings import Settings


def add_history_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``history SKU``."""
    history = commands.add_parser(
        "history",
        help="everything that happened to one product, across runs",
        description="Show every step of one product in order: outputs with prompt version "
        "and model, decisions with who and when, sync results.",
    )
    history.add_argument("sku", metavar="SKU", help="the product's SKU")
    history.add_argument("--json", action="store_true", help="print the history as JSON")
    add_read_side_options(history)
    history.set_defaults(run=run_history)


def run_history(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    try:
        history = side.history(args.sku)
    except NotFound as exc:
        print(f"catalogflow: {exc} ({where(side)})", file=sys.stderr)
        return 1
    if args.json:
        print(history.model_dump_json(indent=2))
        return 0
    print(f"{history.sku}: {len(history.entries)} entries")
    for entry in history.entries:
        for line in entry_lines(entry):
            print(line)
    return 0


def entry_lines(e: HistoryEntry) -> list[str]:
    """One entry as text: a head line, then details indented."""
    when = f"{e.at:%Y-%m-%d %H:%M:%S}"
    where_ = " ".join(filter(None, [e.run_id, e.action_id]))
    attempt = f" attempt {e.attempt}" if e.attempt else ""
    if e.kind == "transition":
        head = f"{when}  {where_}{attempt}: {e.status}"
        extra = [x for x in (e.failure_category, e.reason) if x]
        return [head + (f" ({'; '.join(extra)})" if extra else "")]
    if e.kind == "output":
        lines = [
            f"{when}  {where_}{attempt}: output by {e.model or '-'}, "
            f"prompt {e.prompt_version or '-'}"
            f", input {(e.input_hash or '-')[:12]}, tokens {e.input_tokens}/{e.output_tokens}"
            f", cost {e.cost:.4f}"
        ]
        for f in e.fields:
            name = f.field + (f"@{f.locale}" if f.locale else "")
            confidence = "-" if f.confidence is None else f"{f.confidence:.2f}"
            lines.append(f"    {name} = {_text(f.value)} (confidence {confidence})")
        return lines
    if e.kind == "decision" and e.decision is not None:
        d = e.decision
        what = (
            d.decision + (f" {d.field}" if d.field else "") + (f"@{d.locale}" if d.locale else "")
        )
        lines = [f"{when}  {where_ or d.task_id}: decision {what} by {d.actor_id} ({d.role})"]
        if d.edited_value is not None:
            lines.append(f"    value = {_text(d.edited_value)}")
        if d.feedback:
            lines.append(f"    feedback: {d.feedback}")
        return lines
    if e.kind == "sync" and e.sync is not None:
        s = e.sync
        lines = [f"{when}  {where_ or s.task_id}: sync to {s.target}/{s.store_scope}: {s.status}"]
        if s.message:
            lines.append(f"    {s.message}")
        for sf in s.fields:
            note = f" ({sf.message})" if sf.message else ""
            lines.append(f"    {sf.attribute}: {sf.status}{note}")
        return lines
    return [f"{when}  {where_}: {e.kind}"]


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
