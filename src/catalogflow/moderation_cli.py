"""``catalogflow moderation list|show|approve|reject|edit|regenerate``.

Decisions name one item (``ITEM_ID``) or, for approve and reject, every pending item
matching a filter (``--run``, ``--workflow``, ``--action``, ``--min-confidence``,
``--max-confidence``). Exit codes: 0 done, 1 nothing matched or Kafka failed, 2 bad
usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import Value
from catalogflow.streams.review import decision, pending_item, pending_items, send_decisions
from catalogflow.streams.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_moderation_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    moderation = subparsers.add_parser(
        "moderation",
        help="review AI output waiting for approval",
        description="Review AI output waiting for approval: list, show and decide.",
    )
    commands = moderation.add_subparsers(dest="moderation_command", required=True, metavar="CMD")

    listing = commands.add_parser("list", help="list items waiting for review")
    _add_filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="source values, generated values, reasoning")
    show.add_argument("item_id", metavar="ITEM_ID")
    show.add_argument("--json", action="store_true", help="the item as JSON")
    show.set_defaults(run=run_show)

    for name, summary in (
        ("approve", "approve an item (or one field of it), or every item matching a filter"),
        ("reject", "reject an item (never synced; the task ends Rejected) or one field"),
    ):
        parser = commands.add_parser(name, help=summary, description=summary + ".")
        parser.add_argument("item_id", metavar="ITEM_ID", nargs="?", help="omit to use filters")
        _add_field(parser)
        _add_filters(parser)
        _add_actor(parser)
        parser.set_defaults(run=run_decide, decision=name.upper())

    edit = commands.add_parser("edit", help="replace a field's value (the person's value wins)")
    edit.add_argument("item_id", metavar="ITEM_ID")
    _add_field(edit, required=True)
    edit.add_argument("--value", required=True, help="the new value (JSON for lists/numbers)")
    _add_actor(edit)
    edit.set_defaults(run=run_decide, decision="EDIT")

    regenerate = commands.add_parser("regenerate", help="run the action again with feedback")
    regenerate.add_argument("item_id", metavar="ITEM_ID")
    regenerate.add_argument("--feedback", required=True, help="what the action should change")
    _add_actor(regenerate)
    regenerate.set_defaults(run=run_decide, decision="REGENERATE")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", dest="run_id", metavar="RUN_ID", help="items of this run")
    parser.add_argument("--workflow", metavar="WORKFLOW_ID", help="items of this workflow")
    parser.add_argument("--action", metavar="ACTION_ID", help="items of this action")
    parser.add_argument("--min-confidence", type=float, metavar="X", help="lowest field >= X")
    parser.add_argument("--max-confidence", type=float, metavar="X", help="lowest field <= X")


def _add_field(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--field", required=required, help="decide on this field only")
    parser.add_argument("--locale", help="with --field: only this locale's value")


def _add_actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", metavar="NAME", help="who decides (default: your login name)")
    parser.add_argument(
        "--role", choices=["EDITOR", "MODERATOR", "ADMIN"], default="EDITOR", help="default EDITOR"
    )


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "run_id": args.run_id,
        "workflow_id": args.workflow,
        "action_id": args.action,
        "min_confidence": args.min_confidence,
        "max_confidence": args.max_confidence,
    }


def run_list(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    items = pending_items(settings, **_filters(args))
    for item in items:
        if args.json:
            print(json.dumps(item, default=str))
            continue
        lowest = min((f["confidence"] or 0.0 for f in item["fields"]), default=1.0)
        print(
            f"{item['item_id']}  {item['action_id']:<12} confidence {lowest:.2f}  "
            f"{item['review_reason']}"
        )
    print(f"{len(items)} items waiting for review", file=sys.stderr)
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    item = pending_item(Settings.load(args.config), args.item_id)
    if args.json:
        print(json.dumps(item, default=str, indent=2))
        return EXIT_OK
    print(f"{item['item_id']}  ({item['sku']}, run {item['run_id']}, action {item['action_id']})")
    print(f"why: {item['review_reason']}")
    print("source values:")
    for value in item["source_values"]:
        where = f"@{value['locale']}" if value["locale"] else ""
        print(f"  {value['attribute']}{where}: {value['value']!r}")
    print("generated:")
    for field in item["fields"]:
        where = f"@{field['locale']}" if field["locale"] else ""
        confidence = "n/a" if field["confidence"] is None else f"{field['confidence']:.2f}"
        print(f"  {field['field']}{where}: {field['value']!r}  (confidence {confidence})")
        if field["reasoning"]:
            print(f"      reasoning: {field['reasoning']}")
        if field["evidence"]:
            print(f"      evidence: {field['evidence']!r}")
    for d in item["decisions"]:
        print(f"decided: {d['decision']} by {d['actor_id']} ({d['role']}) at {d['at']}")
    return EXIT_OK


def run_decide(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    actor = args.by or getpass.getuser()
    filters = _filters(args) if hasattr(args, "run_id") else {}
    if getattr(args, "item_id", None):
        if any(v is not None for v in filters.values()):
            raise CatalogflowError("give an ITEM_ID or filters, not both")
        items = [pending_item(settings, args.item_id)]
    elif any(v is not None for v in filters.values()):
        items = pending_items(settings, **filters)
    else:
        print("catalogflow: name an ITEM_ID or give a filter such as --run", file=sys.stderr)
        return EXIT_USAGE
    if not items:
        print("no pending item matches", file=sys.stderr)
        return EXIT_FAILED
    value = _value(args.value) if args.decision == "EDIT" else None
    records = [
        decision(
            item,
            args.decision,
            actor=actor,
            role=args.role,
            field=getattr(args, "field", None),
            locale=getattr(args, "locale", None),
            value=value,
            feedback=getattr(args, "feedback", None),
        )
        for item in items
    ]
    sent = send_decisions(settings, records)
    print(f"{args.decision.lower()}: {sent} decision(s) sent", file=sys.stderr)
    return EXIT_OK


def _value(text: str) -> Value:
    """``--value``: JSON when it parses as a list or number, else the text itself."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text
    return parsed if isinstance(parsed, list | int | float | bool) else text
