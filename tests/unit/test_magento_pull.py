"""Magento products as ProductChanged records: the mapping on its own, the pull against
the Magento simulator, and the command's arguments."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.connectors.magento.client import MagentoClient
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.pull import (
    add_magento_commands,
    product_change,
    publish_changes,
    pull_changes,
)
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.products import validate_change
from catalogflow.streams.records import Author, ProductChanged, Value
from catalogflow.streams.settings import Secret
from catalogflow.testbench.magento.simulator import MagentoSimConfig, MagentoSimulatorThread

NOW = datetime(2026, 3, 2, tzinfo=UTC)
SCHEMAS = SchemaStore.shipped()

PRODUCT: dict[str, Any] = {
    "id": 7,
    "sku": "CAT-1",
    "name": "Cat Food Salmon",
    "attribute_set_id": 4,
    "price": 19.99,
    "status": 1,
    "visibility": 4,
    "type_id": "simple",
    "created_at": "2026-03-01 10:00:00",
    "updated_at": "2026-03-01 12:00:00",
    "weight": 2,
    "extension_attributes": {"category_links": [{"position": 0, "category_id": "11"}]},
    "custom_attributes": [
        {"attribute_code": "description", "value": "<p>Salmon for adult cats.</p>"},
        {"attribute_code": "flavor", "value": "215"},
        {"attribute_code": "features", "value": "301,302"},
        {"attribute_code": "grain_free", "value": "1"},
        {"attribute_code": "category_ids", "value": ["11"]},
        {"attribute_code": "tax_class_id", "value": "2"},
        {"attribute_code": "url_key", "value": "cat-food-salmon"},
    ],
}
OPTIONS = {"flavor": {"215": "Salmon"}, "features": {"301": "Grain free", "302": "Organic"}}
INPUTS = {"flavor": "select", "features": "multiselect", "grain_free": "boolean"}


def values_of(change: ProductChanged) -> dict[tuple[str, str | None], Value]:
    return {(v["attribute"], v["locale"]): v["value"] for v in change["values"]}


def check_contract(change: ProductChanged) -> None:
    validate_change(change)
    assert SCHEMAS.decode(SCHEMAS.encode("ProductChanged", change), "ProductChanged") == change


# -- the mapping -----------------------------------------------------------------------


def test_a_product_maps_to_product_changed() -> None:
    change = product_change(
        PRODUCT,
        options=OPTIONS,
        inputs=INPUTS,
        categories={"11": "Pet Food/Cat/Dry Cat Food"},
        now=NOW,
    )
    check_contract(change)
    assert change["sku"] == "CAT-1"
    assert change["source"] == "magento"
    assert change["author"] == {"kind": "SYSTEM", "id": "magento", "name": None}
    assert change["change_type"] == "UPDATED"
    assert change["source_timestamp"] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert change["status"] == "enabled"
    assert change["categories"] == ["Pet Food/Cat/Dry Cat Food"]
    assert values_of(change) == {
        ("name", None): "Cat Food Salmon",
        ("price", None): 19.99,
        ("weight", None): 2.0,
        ("visibility", None): "Catalog, Search",
        ("description", None): "<p>Salmon for adult cats.</p>",
        ("flavor", None): "Salmon",
        ("features", None): ["Grain free", "Organic"],
        ("grain_free", None): True,
        ("url_key", None): "cat-food-salmon",
    }


def test_locale_values_only_where_the_store_view_differs() -> None:
    german = {
        **PRODUCT,
        "name": "Katzenfutter Lachs",
        "custom_attributes": [
            {"attribute_code": "description", "value": "<p>Salmon for adult cats.</p>"},
            {"attribute_code": "flavor", "value": "215"},
            {"attribute_code": "url_key", "value": "katzenfutter-lachs"},
        ],
    }
    change = product_change(
        PRODUCT, store_values={"de_DE": german}, options=OPTIONS, inputs=INPUTS, now=NOW
    )
    check_contract(change)
    german_values = {k: v for k, v in values_of(change).items() if k[1] == "de_DE"}
    assert german_values == {
        ("name", "de_DE"): "Katzenfutter Lachs",
        ("url_key", "de_DE"): "katzenfutter-lachs",
    }
    assert all(v["scope"] is None for v in change["values"])  # as sync.py reads them


def test_event_ids_are_stable_and_follow_the_values() -> None:
    first = product_change(PRODUCT, options=OPTIONS, now=NOW)
    again = product_change(PRODUCT, options=OPTIONS, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert first["event_id"] == again["event_id"]
    changed = product_change({**PRODUCT, "name": "Renamed"}, options=OPTIONS, now=NOW)
    assert changed["event_id"] != first["event_id"]


def test_without_metadata_options_still_become_labels() -> None:
    change = product_change(PRODUCT, options=OPTIONS, now=NOW)
    values = values_of(change)
    assert values[("flavor", None)] == "Salmon"
    assert values[("features", None)] == ["Grain free", "Organic"]
    assert values[("grain_free", None)] == "1"
    assert change["categories"] is None
    assert (
        product_change({**PRODUCT, "created_at": PRODUCT["updated_at"]}, now=NOW)["change_type"]
        == "CREATED"
    )


# -- against the simulator -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(clock: Clock) -> Iterator[MagentoSimulatorThread]:
    with MagentoSimulatorThread(MagentoSimConfig(), clock=clock) as thread:
        sim = thread.simulator
        sim.add_attribute("flavor", "select", ("Salmon", "Chicken"), scope="global")
        sim.add_attribute("features", "multiselect", ("Grain free", "Organic"))
        sim.add_product(
            "CAT-1",
            {"price": 19.99, "flavor": "Salmon", "features": ["Organic"], "description": "Salmon."},
            name="Cat Food Salmon",
        )
        sim.set_value("CAT-1", "de", "name", "Katzenfutter Lachs")
        clock.now += 3600
        sim.add_product("DOG-1", {"price": 5, "flavor": "Chicken"}, name="Dog Treats")
        yield thread


@pytest.fixture
async def client(shop: MagentoSimulatorThread) -> AsyncIterator[MagentoClient]:
    config = MagentoConfig(
        base_url=shop.url, token=Secret(shop.simulator.issue_integration_token("cf"))
    )
    async with MagentoClient(config) as c:
        yield c


async def test_pull_reads_products_with_labels_and_translations(client: MagentoClient) -> None:
    changes = [c async for c in pull_changes(client, since=None, locales={"de_DE": "de"})]
    assert [c["sku"] for c in changes] == ["CAT-1", "DOG-1"]
    for change in changes:
        check_contract(change)
    cat = values_of(changes[0])
    assert cat[("flavor", None)] == "Salmon"
    assert cat[("features", None)] == ["Organic"]
    assert cat[("name", "de_DE")] == "Katzenfutter Lachs"
    assert ("description", "de_DE") not in cat  # inherited, not translated
    assert values_of(changes[1])[("flavor", None)] == "Chicken"


async def test_pull_since_and_the_author_hook(client: MagentoClient) -> None:
    since = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    seen: list[tuple[str, str]] = []

    def author_of(sku: str, change: ProductChanged) -> Author:
        seen.append((sku, change["values"][0]["attribute"]))
        return {"kind": "CATALOGFLOW", "id": "sync", "name": None}

    changes = [c async for c in pull_changes(client, since=since, locales={}, author_of=author_of)]
    assert [c["sku"] for c in changes] == ["DOG-1"]
    assert changes[0]["author"]["kind"] == "CATALOGFLOW"
    assert seen == [("DOG-1", "name")]


async def test_publish_sends_each_record_to_product_changes(client: MagentoClient) -> None:
    sent: list[tuple[str, str, ProductChanged]] = []
    progress: list[str] = []

    class Sink:
        def send(self, topic: Any, key: str, record: ProductChanged) -> None:
            SCHEMAS.encode("ProductChanged", record)
            sent.append((topic, key, record))

    count = await publish_changes(
        client, Sink(), since=None, locales={"de_DE": "de"}, page_size=1, progress=progress.append
    )
    assert count == 2
    assert [(t, k) for t, k, _ in sent] == [
        ("product-changes", "CAT-1"),
        ("product-changes", "DOG-1"),
    ]
    assert progress == []  # every 100 products


# -- the command -----------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="catalogflow")
    add_magento_commands(parser.add_subparsers())
    return parser.parse_args(argv)


def test_pull_command_arguments() -> None:
    args = parse("magento", "pull", "--since", "2026-03-01T12:00:00", "--page-size", "50")
    assert args.since == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert args.page_size == 50
    assert callable(args.run)
    assert parse("magento", "pull").since is None
    with pytest.raises(SystemExit):
        parse("magento", "pull", "--page-size", "500")
    with pytest.raises(SystemExit):
        parse("magento", "pull", "--since", "yesterday")
