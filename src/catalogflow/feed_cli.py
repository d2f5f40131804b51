"""``catalogflow feed write``: the Merchant Center feed from approved content.

The sink agent keeps each product's approved values for the ``merchant_feed`` target
in the ``feed-content`` table; this command reads that table's changelog and the
products table's changelog (no worker needed), overlays the approved title and
description on each product for one locale, and rewrites the XML and TSV feeds
atomically. Exit codes: 0 written, 1 items were left out (named on stderr), 2 bad
usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from catalogflow.connectors.feeds.merchant import feed_item, is_listed, write_feeds
from catalogflow.streams.reader import read_latest
from catalogflow.streams.records import ProductSnapshot, SyncField, SyncRequest, Value
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic

#: Approved fields that are the feed's title and description.
TITLE_FIELDS = ("shopping_title", "title", "name")
DESCRIPTION_FIELDS = ("shopping_description", "description")


def add_feed_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    feed = subparsers.add_parser(
        "feed",
        help="write marketplace feeds from approved content",
        description="Write marketplace feeds from approved content.",
    )
    commands = feed.add_subparsers(dest="feed_command", required=True, metavar="CMD")
    write = commands.add_parser(
        "write",
        help="rewrite the Google Merchant Center feed (RSS 2.0 XML and TSV)",
        description="Rewrite the Google Merchant Center feed from the approved content of "
        "workflows that sync to merchant_feed. Exit 0 written, 1 some items left out.",
    )
    write.add_argument("--xml", type=Path, default=Path("feed.xml"), help="default feed.xml")
    write.add_argument("--tsv", type=Path, default=Path("feed.tsv"), help="default feed.tsv")
    write.add_argument("--shop-url", required=True, help="the shop's base URL, for links")
    write.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR)")
    write.add_argument("--locale", help="the feed's language, e.g. de_DE (default: global)")
    write.set_defaults(run=run_write)


def approved_for(fields: list[SyncField], locale: str | None) -> dict[str, Value]:
    """``shopping_title@de_DE`` etc. → ``{"name": …, "description": …}`` for ``locale``."""
    by_name: dict[str, Value] = {}
    for field in fields:
        name, _, field_locale = field["attribute"].partition("@")
        if (field_locale or None) == locale:
            by_name[name] = field["value"]
    approved: dict[str, Value] = {}
    for target, names in (("name", TITLE_FIELDS), ("description", DESCRIPTION_FIELDS)):
        value = next((by_name[n] for n in names if by_name.get(n)), None)
        if value is not None:
            approved[target] = value
    return approved


def run_write(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    content = read_latest(settings, changelog_topic(settings, "feed-content"), SyncRequest)
    products = read_latest(settings, changelog_topic(settings, "products"), ProductSnapshot)
    items = []
    for sku in sorted(content):
        snapshot = products.get(sku)
        if snapshot is None or not is_listed(snapshot):
            continue
        approved = approved_for(content[sku]["fields"], args.locale)
        items.append(
            feed_item(
                snapshot,
                approved,
                shop_url=args.shop_url,
                currency=args.currency,
                locale=args.locale,
            )
        )
    report = write_feeds(items, args.xml, args.tsv)
    for line in report.lines():
        print(line, file=sys.stderr)
    print(f"feed: {args.xml} and {args.tsv} written from {len(items)} approved products")
    return 1 if report.rejected else 0
