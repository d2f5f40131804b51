"""`catalogflow dlq list|show|replay`: the dead letters, from the read side.

``replay`` goes through the API's replay endpoint when an API answers (it checks the
caller is an admin and records who asked); without one it republishes the original
bytes itself (``streams/replay.py``, the function the API's route calls too), which
needs broker access: the direct path is an admin tool.
"""

from __future__ import annotations

import argparse
import sys

from catalogflow.apiclient import ApiReadSide
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import DEFAULT_PAGE, MAX_PAGE, BadQuery, DeadLetterView, NotFound
from catalogflow.readside import add_read_side_options, for_args, where
from catalogflow.streams.replay import replay
from catalogflow.streams.settings import Settings


def add_dlq_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``dlq list|show|replay``."""
    dlq = commands.add_parser(
        "dlq",
        help="dead letters: list, show, replay",
        description="Inspect and replay dead letters.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")

    listing = actions.add_parser(
        "list", help="list dead letters, newest first", description="List dead letters."
    )
    listing.add_argument("--reason", help="only dead letters with this reason")
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_PAGE, help=f"per page, 1..{MAX_PAGE} (default 100)"
    )
    listing.add_argument("--cursor", help="the next page, as the last page named it")
    listing.add_argument("--json", action="store_true", help="print the page as JSON")
    add_read_side_options(listing)
    listing.set_defaults(run=run_list)

    show = actions.add_parser(
        "show", help="show one dead letter", description="Show a dead letter."
    )
    show.add_argument("dead_letter_id", metavar="ID", help="as `dlq list` shows it")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    add_read_side_options(show)
    show.set_defaults(run=run_show)

    again = actions.add_parser(
        "replay",
        help="put a dead letter's original bytes back on its topic",
        description="Put a dead letter's original bytes back on the topic it came from.",
    )
    again.add_argument("dead_letter_id", metavar="ID", help="as `dlq list` shows it")
    add_read_side_options(again)
    again.set_defaults(run=run_replay)


def run_list(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    try:
        page = side.dead_letters(args.reason, args.cursor, args.limit)
    except BadQuery as exc:
        print(f"catalogflow: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(page.model_dump_json(indent=2))
        return 0
    if not page.items:
        print("no dead letters")
    for d in page.items:
        print(
            f"{d.dead_letter_id}  {d.failed_at:%Y-%m-%d %H:%M:%S}  {d.reason}  "
            f"{d.source_topic}[{d.source_partition}]@{d.source_offset}  key {d.key or '-'}"
        )
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    side = for_args(Settings.load(args.config), args)
    try:
        letter = side.dead_letter(args.dead_letter_id)
    except NotFound as exc:
        print(f"catalogflow: {exc} ({where(side)})", file=sys.stderr)
        return 1
    print(letter.model_dump_json(indent=2) if args.json else format_letter(letter))
    return 0


def format_letter(d: DeadLetterView) -> str:
    return "\n".join(
        [
            f"dead letter {d.dead_letter_id}: {d.reason}",
            f"  from     {d.source_topic}[{d.source_partition}]@{d.source_offset}",
            f"  key      {d.key or '-'}",
            f"  value    {d.value_size} bytes",
            f"  agent    {d.agent}",
            f"  failed   {d.failed_at}",
            f"  detail   {d.detail}",
        ]
    )


def run_replay(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    side = for_args(settings, args)
    try:
        if isinstance(side, ApiReadSide):
            accepted = side.replay_dead_letter(args.dead_letter_id)
            print(f"replay accepted by {side.url} (command {accepted.command_id})")
            return 0
        assert isinstance(side, ReadModelQueries)
        letter = side.dead_letter_record(args.dead_letter_id)
    except NotFound as exc:
        print(f"catalogflow: {exc} ({where(side)})", file=sys.stderr)
        return 1
    topic = replay(settings, letter)
    print(f"replayed {args.dead_letter_id} to {topic}")
    return 0
