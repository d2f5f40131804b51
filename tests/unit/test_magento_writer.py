"""The Magento writer against the Magento simulator: store scopes, option ids, the
conflict guard, UNCHANGED, url keys, error results, and the SyncResult contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.connectors.magento.client import MagentoClient
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.writer import (
    GLOBAL_VALUES_FRESH_S,
    MagentoWriter,
    url_key_for,
)
from catalogflow.streams.clock import FakeClock
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.records import SyncRequest, SyncResult, Value
from catalogflow.streams.settings import Secret
from catalogflow.streams.sync import value_hash
from catalogflow.testbench.magento.simulator import MagentoSimConfig, MagentoSimulatorThread

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEMAS = SchemaStore.shipped()


@pytest.fixture(params=["clean", "legacy_copy"])
def shop(request: pytest.FixtureRequest) -> Iterator[MagentoSimulatorThread]:
    with MagentoSimulatorThread(MagentoSimConfig(store_save_mode=request.param)) as thread:
        sim = thread.simulator
        sim.add_attribute("flavor", "select", ("Salmon", "Chicken"), scope="global")
        sim.add_attribute("lifecycle", "select", ("Kitten", "Adult"), scope="global")
        sim.add_attribute("features", "multiselect", ("Grain free", "Organic", "Wet"))
        sim.add_product(
            "CAT-1",
            {
                "price": 19.99,
                "flavor": "Salmon",
                "description": "Salmon recipe for adult cats.",
                "meta_title": "Cat Food Salmon",
            },
            name="Cat Food Salmon",
        )
        yield thread


async def writer_for(
    shop: MagentoSimulatorThread, clock: FakeClock | None = None, **changes: Any
) -> AsyncIterator[MagentoWriter]:
    config = MagentoConfig(
        base_url=shop.url,
        token=Secret(shop.simulator.issue_integration_token("catalogflow")),
        backoff=0,
        max_attempts=2,
        **changes,
    )
    async with MagentoClient(config) as client:
        yield MagentoWriter(client, config, clock=clock or FakeClock(wall_start=NOW))


@pytest.fixture
async def writer(shop: MagentoSimulatorThread) -> AsyncIterator[MagentoWriter]:
    async for w in writer_for(shop):
        yield w


def request(store: str, *fields: tuple[str, Value, Value], sku: str = "CAT-1") -> SyncRequest:
    return {
        "request_id": f"task-1#magento#{store}",
        "task_id": "task-1",
        "run_id": "run-1",
        "sku": sku,
        "target": "magento",
        "store_scope": store,
        "fields": [
            {"attribute": a, "value": v, "read_value": r, "value_hash": value_hash(v)}
            for a, v, r in fields
        ],
        "requested_at": NOW,
    }


def statuses(result: SyncResult) -> dict[str, str]:
    return {f["attribute"]: f["status"] for f in result["fields"]}


def check_contract(result: SyncResult) -> None:
    assert (
        SCHEMAS.decode(SCHEMAS.encode("SyncResult", result), "SyncResult")["status"]
        == (result["status"])
    )


# -- scopes ----------------------------------------------------------------------------


async def test_global_values_go_to_all_and_only_those_fields(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request("all", ("meta_title", "Salmon Cat Food 2 kg | Whiskerly", "Cat Food Salmon"))
    )
    check_contract(result)
    assert result["status"] == "SYNCED"
    assert result["error_category"] is None
    assert result["at"] == NOW
    [write] = shop.simulator.writes
    assert (write.method, write.store) == ("PUT", "all")
    assert write.attributes == {"meta_title": "Salmon Cat Food 2 kg | Whiskerly"}
    assert shop.simulator.value("CAT-1", "de", "meta_title") == "Salmon Cat Food 2 kg | Whiskerly"


async def test_german_values_land_on_the_store_view_with_a_url_key(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request(
            "de",
            ("name", "Katzenfutter Lachs für Senioren", None),
            ("description", "Lachsrezept für ältere Katzen.", None),
        )
    )
    check_contract(result)
    assert result["status"] == "SYNCED"
    assert statuses(result) == {"name": "SYNCED", "description": "SYNCED", "url_key": "SYNCED"}
    sim = shop.simulator
    write, *restores = sim.writes
    assert write.store == "de"
    assert set(write.attributes) == {"name", "description", "url_key"}
    # At most one more save: null for the values that were inherited before, which
    # undoes Magento's store-view copy bug (magento/magento2#8897).
    assert len(restores) <= 1
    assert all(
        v is None and a not in write.attributes for r in restores for a, v in r.attributes.items()
    )
    assert sim.override("CAT-1", "de", "name") == "Katzenfutter Lachs für Senioren"
    assert sim.override("CAT-1", "de", "url_key") == "katzenfutter-lachs-fur-senioren"
    assert sim.value("CAT-1", "all", "name") == "Cat Food Salmon"
    assert sim.value("CAT-1", "all", "description") == "Salmon recipe for adult cats."
    assert sim.override("CAT-1", "de", "price") is None  # global values stay inherited


async def test_a_taken_url_key_gets_the_sku_appended(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    shop.simulator.add_product("CAT-2", {"price": 4}, name="Other")
    shop.simulator.set_value("CAT-2", "de", "url_key", "katzenfutter-lachs")
    result = await writer.write(request("de", ("name", "Katzenfutter Lachs", None)))
    assert result["status"] == "SYNCED"
    assert shop.simulator.override("CAT-1", "de", "url_key") == "katzenfutter-lachs-cat-1"
    assert "katzenfutter-lachs-cat-1" in (result["fields"][-1]["message"] or "")


async def test_a_store_view_value_of_a_global_attribute_is_refused(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request("de", ("flavor", "Chicken", "Salmon"), ("meta_title", "Katzenfutter", None))
    )
    check_contract(result)
    assert result["status"] == "ERROR"
    assert statuses(result) == {"flavor": "ERROR", "meta_title": "SYNCED"}
    assert "scope global" in (result["message"] or "")
    assert shop.simulator.value("CAT-1", "all", "flavor") == shop.simulator.option_id(
        "flavor", "Salmon"
    )


def test_url_key_folds_to_ascii_hyphens() -> None:
    assert url_key_for("  Große Katzen-Box: Lachs & Huhn (2 kg) ") == (
        "grosse-katzen-box-lachs-huhn-2-kg"
    )
    assert url_key_for("Crème brûlée") == "creme-brulee"


# -- requests per product --------------------------------------------------------------


async def test_each_write_reads_the_product_once_and_metadata_is_cached(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    """A product's global write then its store-view write, as the sink sends them: one
    GET of the product each (the store view takes the global values the global write
    saved); attribute metadata and options come from the client's cache after the
    first product."""
    sim = shop.simulator
    sim.add_attribute("flavor", "select", ("Salmon", "Chicken", "Tuna"), scope="global")
    sim.add_product("CAT-2", {"price": 9, "flavor": "Chicken", "meta_title": "Two"}, name="Two")
    read = {"CAT-1": ("Salmon", "Cat Food Salmon"), "CAT-2": ("Chicken", "Two")}
    for sku, (flavor, title) in read.items():
        sim.reset_stats()
        sim.reset_writes()
        written = await writer.write(
            request("all", ("flavor", "Tuna", flavor), ("meta_title", "AI", title), sku=sku)
        )
        translated = await writer.write(
            request("de", ("description", "KI-Text.", None), ("meta_title", "KI", None), sku=sku)
        )
        assert (written["status"], translated["status"]) == ("SYNCED", "SYNCED"), sku
    saves = len(sim.writes)
    assert saves in (2, 3)  # the two writes, and the restore of inherited values
    assert sim.stats["requests"] - saves == 2  # one GET of CAT-2 per write, nothing else


async def test_a_store_view_edit_made_after_the_global_write_is_still_a_conflict(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    await writer.write(request("all", ("meta_title", "AI title", "Cat Food Salmon")))
    shop.simulator.set_value("CAT-1", "de", "description", "Von Hand übersetzt.")
    result = await writer.write(request("de", ("description", "KI-Übersetzung.", None)))
    assert result["status"] == "CONFLICT"
    assert shop.simulator.override("CAT-1", "de", "description") == "Von Hand übersetzt."


async def test_remembered_global_values_are_read_again_once_they_are_old(
    shop: MagentoSimulatorThread,
) -> None:
    """A person changes a global value after our global write; a store-view write soon
    after would take the inherited new value for a store value (a conflict), so the
    remembered values serve only for GLOBAL_VALUES_FRESH_S."""
    clock = FakeClock(wall_start=NOW)
    async for writer in writer_for(shop, clock):
        await writer.write(request("all", ("meta_title", "AI title", "Cat Food Salmon")))
        shop.simulator.set_value("CAT-1", "all", "description", "Edited globally.")
        clock.advance(GLOBAL_VALUES_FRESH_S + 0.1)
        result = await writer.write(request("de", ("description", "KI-Text.", None)))
    assert result["status"] == "SYNCED", result
    assert shop.simulator.override("CAT-1", "de", "description") == "KI-Text."
    assert shop.simulator.value("CAT-1", "all", "description") == "Edited globally."


# -- options ---------------------------------------------------------------------------


async def test_labels_become_option_ids(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request(
            "all",
            ("flavor", "Chicken", "Salmon"),
            ("features", ["Grain free", "organic"], None),
        )
    )
    check_contract(result)
    assert result["status"] == "SYNCED"
    sim = shop.simulator
    features = [sim.option_id("features", label) for label in ("Grain free", "Organic")]
    assert sim.writes[0].attributes == {
        "flavor": sim.option_id("flavor", "Chicken"),
        "features": ",".join(str(i) for i in features),
    }


async def test_a_missing_option_fails_that_field_and_the_rest_still_goes(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request("all", ("flavor", "Tuna", "Salmon"), ("lifecycle", "Adult", None))
    )
    check_contract(result)
    assert result["status"] == "ERROR"
    assert result["error_category"] == "INVALID_OPTION_VALUE"
    assert "flavor" in (result["message"] or "") and "'Tuna'" in (result["message"] or "")
    assert statuses(result) == {"flavor": "ERROR", "lifecycle": "SYNCED"}
    assert shop.simulator.option_id("flavor", "Tuna") is None
    assert shop.simulator.value("CAT-1", "all", "lifecycle") == shop.simulator.option_id(
        "lifecycle", "Adult"
    )


async def test_a_missing_option_is_created_when_configured(
    shop: MagentoSimulatorThread,
) -> None:
    async for writer in writer_for(shop, missing_option="create"):
        result = await writer.write(request("all", ("flavor", "Tuna", "Salmon")))
    assert result["status"] == "SYNCED"
    tuna = shop.simulator.option_id("flavor", "Tuna")
    assert tuna is not None
    assert shop.simulator.value("CAT-1", "all", "flavor") == tuna


async def test_an_option_added_in_magento_after_the_options_were_cached_is_found(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    assert (await writer.write(request("all", ("flavor", "Chicken", "Salmon"))))["status"] == (
        "SYNCED"
    )
    shop.simulator.add_attribute("flavor", "select", ("Salmon", "Chicken", "Tuna"), scope="global")
    result = await writer.write(request("all", ("flavor", "Tuna", "Chicken")))
    assert result["status"] == "SYNCED", result
    assert shop.simulator.value("CAT-1", "all", "flavor") == shop.simulator.option_id(
        "flavor", "Tuna"
    )


# -- the conflict guard ----------------------------------------------------------------


async def test_a_persons_edit_is_a_conflict_and_stays(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    shop.simulator.set_value("CAT-1", "all", "description", "Edited by a person.")
    result = await writer.write(
        request(
            "all",
            ("description", "AI description.", "Salmon recipe for adult cats."),
            ("meta_title", "AI title", "Cat Food Salmon"),
        )
    )
    check_contract(result)
    assert result["status"] == "CONFLICT"
    assert statuses(result) == {"description": "CONFLICT", "meta_title": "SYNCED"}
    assert "Edited by a person." in (result["fields"][0]["message"] or "")
    assert shop.simulator.value("CAT-1", "all", "description") == "Edited by a person."
    assert shop.simulator.writes[0].attributes == {"meta_title": "AI title"}


async def test_a_persons_store_view_edit_is_a_conflict(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    shop.simulator.set_value("CAT-1", "de", "description", "Von Hand übersetzt.")
    result = await writer.write(request("de", ("description", "KI-Übersetzung.", None)))
    assert result["status"] == "CONFLICT"
    assert shop.simulator.writes == []
    assert shop.simulator.override("CAT-1", "de", "description") == "Von Hand übersetzt."


async def test_equal_values_are_unchanged_and_not_written(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request(
            "all",
            ("flavor", "salmon ", "Salmon"),  # a label vs the stored option id
            ("price", 19.99, "19.99"),
            ("meta_title", " Cat Food Salmon", "Cat Food Salmon"),
        )
    )
    check_contract(result)
    assert result["status"] == "UNCHANGED"
    assert set(statuses(result).values()) == {"UNCHANGED"}
    assert shop.simulator.writes == []


async def test_read_values_are_compared_normalised(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    result = await writer.write(
        request(
            "all",
            ("flavor", "Chicken", " salmon"),
            ("price", 21, "19.990"),
            ("meta_title", "New", "Cat Food Salmon  "),
        )
    )
    assert result["status"] == "SYNCED", result
    assert shop.simulator.value("CAT-1", "all", "price") == 21


# -- failures --------------------------------------------------------------------------


async def test_refused_credentials_are_an_auth_error_result(
    shop: MagentoSimulatorThread, writer: MagentoWriter
) -> None:
    shop.simulator.configure(integration_bearer_enabled=False)
    result = await writer.write(request("all", ("meta_title", "x", "Cat Food Salmon")))
    check_contract(result)
    assert result["status"] == "ERROR"
    assert result["error_category"] == "AUTH"
    assert "magento_auth=admin" in (result["message"] or "")
    assert writer.config.token.reveal() not in str(result)
    assert statuses(result) == {"meta_title": "ERROR"}


async def test_an_unknown_product_is_an_error_result(writer: MagentoWriter) -> None:
    result = await writer.write(request("all", ("meta_title", "x", None), sku="NOPE"))
    assert result["status"] == "ERROR"
    assert result["error_category"] == "OTHER"
    assert "doesn't exist" in (result["message"] or "")


async def test_retries_then_success(shop: MagentoSimulatorThread, writer: MagentoWriter) -> None:
    shop.simulator.inject("deadlock", count=1)
    result = await writer.write(request("all", ("meta_title", "x", "Cat Food Salmon")))
    assert result["status"] == "SYNCED"
    assert len(shop.simulator.writes) == 1
