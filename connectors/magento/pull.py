"""Magento's products as ProductChanged events: ``catalogflow magento pull``.

Magento Open Source has no outbound product events, so changes are found by polling
``updated_at`` (``--since``). Each product is read globally (``/rest/all``) and, per
mapped locale, through its store view; a locale value is emitted only where the store
view differs from the global value (an inherited value is not a translation). Select
option ids become their labels, multiselect values lists of labels, so the products
table holds what a person reads, and the writer maps labels back to ids.

Event ids are ``magento:<sku>:<updated_at>:<hash of the mapped values>``: pulling the
same state twice yields the same ids, which the catalog agent recognises.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from catalogflow.connectors.magento.client import MAX_PAGE_SIZE, MagentoClient
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.errors import MagentoError
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import AttributeValue, Author, ProductChanged, Value

AuthorOf = Callable[[str, ProductChanged], Author]

SOURCE: Final = "magento"
TOPIC: Final = "product-changes"
PROGRESS_EVERY: Final = 100
DEFAULT_AUTHOR: Final[Author] = {"kind": "SYSTEM", "id": "magento", "name": None}
STATUS_NAMES: Final = {1: "enabled", 2: "disabled"}
VISIBILITY_NAMES: Final = {
    1: "Not Visible Individually",
    2: "Catalog",
    3: "Search",
    4: "Catalog, Search",
}
#: Top-level product fields that are attribute values (status is its own field).
TOP_LEVEL_VALUES: Final = ("name", "price", "weight", "visibility")
#: Magento bookkeeping, not catalog content.
SKIPPED_ATTRIBUTES: Final = frozenset(
    {
        "category_ids",
        "url_path",
        "options_container",
        "required_options",
        "has_options",
        "msrp_display_actual_price_type",
        "gift_message_available",
        "tax_class_id",
    }
)
NUMERIC_INPUTS: Final = frozenset({"price", "weight"})


def product_change(
    product: Mapping[str, Any],
    *,
    store_values: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
    inputs: Mapping[str, str] | None = None,
    categories: Mapping[str, str] | None = None,
    now: datetime,
) -> ProductChanged:
    """A ProductChanged record for one Magento product JSON.

    ``store_values``: locale → the product read through that locale's store view.
    ``options``: attribute code → {option id: label}. ``inputs``: attribute code →
    ``frontend_input`` (tells multiselect from select, numbers and yes/no; without it a
    comma in an option attribute's value means multiselect). ``categories``: category id
    → path such as ``Pet Food/Cat/Dry Cat Food`` (without it ``categories`` is None,
    "unchanged"). The author is SYSTEM; :func:`pull_changes` can decide another.
    """
    option_labels = options or {}
    kinds = inputs or {}
    sku = str(product["sku"])
    global_values = _mapped_values(product, option_labels, kinds)
    values: list[AttributeValue] = [
        {"attribute": code, "locale": None, "scope": None, "value": value}
        for code, value in global_values.items()
    ]
    for locale, store_product in sorted((store_values or {}).items()):
        for code, value in _mapped_values(store_product, option_labels, kinds).items():
            if value != global_values.get(code):
                values.append({"attribute": code, "locale": locale, "scope": None, "value": value})
    updated_at = str(product.get("updated_at") or "")
    digest = hashlib.sha256(
        json.dumps(values, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()[:16]
    return {
        "event_id": f"magento:{sku}:{updated_at}:{digest}",
        "sku": sku,
        "change_type": "CREATED"
        if updated_at and product.get("created_at") == updated_at
        else "UPDATED",
        "author": {**DEFAULT_AUTHOR},
        "source": SOURCE,
        "source_timestamp": _timestamp(updated_at) or now,
        "values": values,
        "categories": _category_paths(product, categories),
        "supplier": None,
        "status": STATUS_NAMES.get(_int(product.get("status")) or 0),
        "family": None,
    }


async def pull_changes(
    client: MagentoClient,
    *,
    since: datetime | None,
    locales: Mapping[str, str],
    author_of: AuthorOf | None = None,
    page_size: int = 100,
    categories: Mapping[str, str] | None = None,
) -> AsyncIterator[ProductChanged]:
    """ProductChanged records for every product changed at or after ``since`` (all
    products if None), oldest change first.

    ``locales``: locale → store view code (``{"de_DE": "de"}``). ``author_of(sku,
    record)``, when given, returns the author for the record built so far (e.g.
    CATALOGFLOW when the values are the ones catalogflow wrote)."""
    inputs: dict[str, str] = {}
    options: dict[str, dict[str, str]] = {}
    async for product in client.iter_products(updated_since=since, page_size=page_size):
        sku = str(product["sku"])
        for code in _attribute_codes(product):
            if code not in inputs:
                await _learn(client, code, inputs, options)
        store_values = {
            locale: await client.get_product(sku, store) for locale, store in locales.items()
        }
        change = product_change(
            product,
            store_values=store_values,
            options=options,
            inputs=inputs,
            categories=categories,
            now=datetime.now(UTC),
        )
        if author_of is not None:
            change["author"] = author_of(sku, change)
        yield change


async def _learn(
    client: MagentoClient,
    code: str,
    inputs: dict[str, str],
    options: dict[str, dict[str, str]],
) -> None:
    """Remember an attribute's input type and, for option attributes, its labels."""
    try:
        metadata = await client.attribute(code)
    except MagentoError as exc:
        if exc.status != 404:
            raise
        inputs[code] = "text"  # not an EAV attribute Magento describes: keep the text
        return
    kind = str(metadata.get("frontend_input") or "text")
    inputs[code] = kind
    if kind in ("select", "multiselect"):
        options[code] = {o["value"]: o["label"] for o in await client.options(code)}


def _attribute_codes(product: Mapping[str, Any]) -> list[str]:
    codes = [
        str(item["attribute_code"])
        for item in product.get("custom_attributes") or []
        if isinstance(item, Mapping) and "attribute_code" in item
    ]
    return [c for c in codes if c not in SKIPPED_ATTRIBUTES]


def _mapped_values(
    product: Mapping[str, Any],
    options: Mapping[str, Mapping[str, str]],
    inputs: Mapping[str, str],
) -> dict[str, Value]:
    """Attribute code → value as ProductChanged carries it (labels, numbers, text)."""
    values: dict[str, Value] = {}
    for code in TOP_LEVEL_VALUES:
        raw = product.get(code)
        if raw is None:
            continue
        if code == "visibility":
            values[code] = VISIBILITY_NAMES.get(_int(raw) or 0, str(raw))
        elif code in ("price", "weight"):
            values[code] = _number(raw)
        else:
            values[code] = str(raw)
    for item in product.get("custom_attributes") or []:
        if not isinstance(item, Mapping):
            continue
        code = str(item.get("attribute_code", ""))
        raw = item.get("value")
        if not code or code in SKIPPED_ATTRIBUTES or raw is None or raw == "":
            continue
        values[code] = _mapped(raw, inputs.get(code), options.get(code))
    return values


def _mapped(raw: Any, kind: str | None, labels: Mapping[str, str] | None) -> Value:
    text = ",".join(str(v) for v in raw) if isinstance(raw, list) else str(raw)
    if labels is not None or kind in ("select", "multiselect"):
        ids = [part.strip() for part in text.split(",") if part.strip()]
        names = [(labels or {}).get(i, i) for i in ids]
        if kind == "multiselect" or (kind is None and len(ids) > 1):
            return names
        return names[0] if names else None
    if kind == "boolean":
        return text.strip() == "1"
    if kind in NUMERIC_INPUTS:
        return _number(text)
    return text


def _int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _number(raw: Any) -> float | str:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return str(raw)


def _timestamp(text: str) -> datetime | None:
    """Magento's ``YYYY-MM-DD HH:MM:SS`` (UTC, no zone) as an aware datetime."""
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _category_paths(
    product: Mapping[str, Any], categories: Mapping[str, str] | None
) -> list[str] | None:
    if categories is None:
        return None
    links = (product.get("extension_attributes") or {}).get("category_links") or []
    ids = [str(link.get("category_id")) for link in links if isinstance(link, Mapping)]
    return [categories[i] for i in ids if i in categories]


# -- the command -------------------------------------------------------------------------


class ChangeSink(Protocol):
    """Where pulled records go: :class:`~catalogflow.streams.producer.RecordProducer`."""

    def send(self, topic: Any, key: str, record: ProductChanged) -> None: ...


async def publish_changes(
    client: MagentoClient,
    sink: ChangeSink,
    *,
    since: datetime | None,
    locales: Mapping[str, str],
    page_size: int = 100,
    progress: Callable[[str], None] = lambda _: None,
    split: Callable[[ProductChanged], list[ProductChanged]] = lambda change: [change],
) -> int:
    """Send every pulled record to ``product-changes``; return how many products.
    ``split`` may cut a record in two (catalogflow's own values, and the rest)."""
    count = 0
    async for change in pull_changes(client, since=since, locales=locales, page_size=page_size):
        for part in split(change):
            sink.send(TOPIC, part["sku"], part)
        count += 1
        if count % PROGRESS_EVERY == 0:
            progress(f"{count} products pulled")
    return count


def add_magento_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``magento pull``."""
    magento = subparsers.add_parser(
        "magento",
        help="read products from Magento 2 over REST",
        description="Read products from Magento 2 over REST.",
    )
    actions = magento.add_subparsers(dest="magento_command", required=True, metavar="COMMAND")
    pull = actions.add_parser(
        "pull",
        help="publish Magento's products as ProductChanged events",
        description="Read Magento's products (changed since --since, or all) with their "
        "store-view values and publish them to product-changes. Exit 0 done, 1 when "
        "Magento or Kafka failed.",
    )
    pull.add_argument(
        "--since",
        type=_since,
        metavar="ISO8601",
        help="only products updated at or after this time (UTC unless it names a zone)",
    )
    pull.add_argument(
        "--page-size",
        type=_page_size,
        default=100,
        metavar="N",
        help=f"products per page, 1..{MAX_PAGE_SIZE} (default 100)",
    )
    pull.set_defaults(run=run_pull)


def run_pull(args: argparse.Namespace) -> int:
    """``catalogflow magento pull``: 0 done; Magento and Kafka failures raise
    :class:`CatalogflowError`, which the top-level command turns into exit 1."""
    from catalogflow.streams.admin import ensure_topics
    from catalogflow.streams.ownwrites import OwnWrites
    from catalogflow.streams.producer import RecordProducer
    from catalogflow.streams.settings import Settings
    from confluent_kafka import KafkaException

    settings = Settings.load(getattr(args, "config", None))
    config = MagentoConfig.from_settings(settings)
    try:
        ensure_topics(settings)
        producer = RecordProducer(settings)
    except KafkaException as exc:
        raise CatalogflowError(f"Kafka at {settings.bootstrap_servers}: {exc}") from exc

    own_writes = OwnWrites.load(settings)

    async def pull() -> int:
        async with MagentoClient(config) as client:
            return await publish_changes(
                client,
                producer,
                since=args.since,
                locales=config.store_codes,
                page_size=args.page_size,
                progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True),
                split=own_writes.split,
            )

    try:
        count = asyncio.run(pull())
    except KafkaException as exc:
        with contextlib.suppress(CatalogflowError):
            producer.flush()
        raise CatalogflowError(f"Kafka at {settings.bootstrap_servers}: {exc}") from exc
    except BaseException:
        with contextlib.suppress(CatalogflowError):
            producer.flush()  # what was pulled goes out even if Magento failed midway
        raise
    producer.flush()
    since = f" changed since {args.since.isoformat()}" if args.since else ""
    print(
        f"{count} products{since} pulled from {config.base_url} and published to "
        f"{settings.topic(TOPIC)}"
    )
    return 0


def _since(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since wants an ISO 8601 time such as 2026-03-01T12:00:00Z, got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _page_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"--page-size must be 1..{MAX_PAGE_SIZE}, got {text!r}")
    return size
