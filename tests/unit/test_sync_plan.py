"""Planning writes to targets (streams/sync.py): pure functions, no broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.connectors.feeds.target import FEED_SCOPE
from catalogflow.connectors.targets.base import SyncTarget, TargetContext
from catalogflow.connectors.targets.registry import builtin_targets
from catalogflow.streams.clock import FakeClock
from catalogflow.streams.definitions import FieldRef
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.records import (
    ActionOutput,
    AttributeValue,
    FieldOutput,
    ProductSnapshot,
    SyncResult,
    SyncTaskState,
    Task,
    Value,
)
from catalogflow.streams.rules import field_value
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import (
    GLOBAL_SCOPE,
    approved_values,
    attribute_code,
    failed_request_ids,
    is_error_summary,
    ledger_key,
    request_id,
    retry_sync_state,
    store_codes,
    summary,
    sync_requests,
    value_hash,
)

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
CODES = {"de_DE": "de"}


def fo(name: str, value: Value, locale: str | None = None, *, approved: bool = True) -> FieldOutput:
    return {
        "field": name,
        "locale": locale,
        "value": value,
        "reasoning": None,
        "confidence": 0.9,
        "evidence": None,
        "approved": approved,
    }


def step(action_id: str, *fields: FieldOutput) -> ActionOutput:
    return {
        "action_id": action_id,
        "action_type": "generation",
        "fields": list(fields),
        "model": "gpt-4o-mini",
        "prompt_version": "v1",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.0001,
        "skipped": None,
    }


def task(*outputs: ActionOutput) -> Task:
    return {
        "task_id": "CAT-DRY-2KG@run-1",
        "run_id": "run-1",
        "workflow_id": "wf-translate",
        "workflow_version": 1,
        "sku": "CAT-DRY-2KG",
        "step_index": len(outputs),
        "steps": [o["action_id"] for o in outputs],
        "input_hash": "sha256:ab",
        "created_at": NOW,
        "attempt": 0,
        "outputs": list(outputs),
        "origin": None,
        "definition": "{}",
        "history": [],
    }


def snapshot(*values: AttributeValue) -> ProductSnapshot:
    return {
        "sku": "CAT-DRY-2KG",
        "deleted": False,
        "values": [{**v, "updated_at": NOW, "author_kind": "PERSON"} for v in values],
        "categories": ["Pet Food/Cat/Dry Cat Food"],
        "supplier": "acme-pet",
        "status": "enabled",
        "family": "cat_food",
        "version": 3,
        "last_event_id": "e-3",
        "updated_at": NOW,
    }


def av(
    attribute: str, value: Value, locale: str | None = None, scope: str | None = None
) -> AttributeValue:
    return {"attribute": attribute, "locale": locale, "scope": scope, "value": value}


def targets(*names: str, store_codes: str = "de_DE=de") -> dict[str, SyncTarget]:
    """The built-in targets ``names``, in that order, as a worker builds them."""
    settings = Settings.load(environ={}).replace(magento_store_codes=store_codes)
    built = builtin_targets().build(TargetContext(settings, {"feed-content": {}}, FakeClock()))
    return {name: built[name] for name in names}


# --------------------------------------------------------------------------- small helpers


class TestStoreCodes:
    def test_parses_pairs_and_strips_blanks(self) -> None:
        assert store_codes("de_DE=de,fr_FR=fr") == {"de_DE": "de", "fr_FR": "fr"}
        assert store_codes(" de_DE = de , fr_FR=fr , ") == {"de_DE": "de", "fr_FR": "fr"}

    @pytest.mark.parametrize("text", ["", "   ", ",", " , , "])
    def test_empty_text_is_no_codes(self, text: str) -> None:
        assert store_codes(text) == {}

    @pytest.mark.parametrize("bad", ["de_DE", "de_DE=", "=de", " = ", "de_DE=de,fr_FR", "de:de"])
    def test_bad_text_is_a_config_error(self, bad: str) -> None:
        with pytest.raises(ConfigError, match="magento_store_codes") as info:
            store_codes(bad)
        assert "locale=store_code" in str(info.value)


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("Flavor", "flavor"),
        ("Meta Title", "meta_title"),
        ("shopping_title", "shopping_title"),
        ("  Meta -- Title  ", "meta_title"),
        ("Pack Size (g)", "pack_size_g"),
        ("protein_pct2", "protein_pct2"),
    ],
)
def test_attribute_code(field: str, code: str) -> None:
    assert attribute_code(field) == code


class TestValueHash:
    def test_stable_hex_digest(self) -> None:
        assert value_hash("Chicken") == value_hash("Chicken")
        assert len(value_hash("Chicken")) == 64
        int(value_hash("Chicken"), 16)

    def test_dicts_hash_independently_of_key_order(self) -> None:
        assert value_hash({"a": 1, "b": [1, 2]}) == value_hash({"b": [1, 2], "a": 1})

    def test_different_values_differ(self) -> None:
        assert value_hash("Chicken") != value_hash("chicken")
        assert value_hash(1) != value_hash("1")
        assert value_hash(["a", "b"]) != value_hash(["b", "a"])
        assert value_hash(None) != value_hash("")

    def test_non_json_values_hash(self) -> None:
        assert value_hash(NOW) == value_hash(datetime(2025, 3, 1, 10, 0, tzinfo=UTC))


def test_ledger_key_and_request_id_shapes() -> None:
    assert ledger_key("CAT-DRY-2KG", "magento", "de", "flavor") == "CAT-DRY-2KG@magento|de|flavor"
    assert request_id("CAT-DRY-2KG@run-1", "magento", "all") == "CAT-DRY-2KG@run-1#magento#all"
    # The SKU leads the ledger key, so the row lives on the product's partition.
    assert ledger_key("SKU-1", "t", "s", "a").startswith("SKU-1@")


# --------------------------------------------------------------------------- approved_values


class TestApprovedValues:
    def test_later_steps_win(self) -> None:
        t = task(
            step("extract", fo("Flavor", "Chiken"), fo("title", "Cat food")),
            step("fix", fo("Flavor", "Chicken")),
        )
        assert approved_values(t) == {("Flavor", None): "Chicken", ("title", None): "Cat food"}

    def test_locales_are_separate_keys(self) -> None:
        t = task(step("tr", fo("description", "Dry food"), fo("description", "Futter", "de_DE")))
        assert approved_values(t) == {
            ("description", None): "Dry food",
            ("description", "de_DE"): "Futter",
        }

    def test_unapproved_values_are_left_out(self) -> None:
        t = task(
            step("extract", fo("Flavor", "Chicken")),
            step("fix", fo("Flavor", "Beef", approved=False), fo("title", "X", approved=False)),
        )
        assert approved_values(t) == {("Flavor", None): "Chicken"}

    @pytest.mark.parametrize("empty", [None, "", []])
    def test_empty_values_never_clear_an_earlier_one(self, empty: Any) -> None:
        t = task(step("extract", fo("Flavor", "Chicken")), step("fix", fo("Flavor", empty)))
        assert approved_values(t) == {("Flavor", None): "Chicken"}

    @pytest.mark.parametrize("empty", [None, "", []])
    def test_empty_values_are_left_out(self, empty: Any) -> None:
        assert approved_values(task(step("extract", fo("Flavor", empty)))) == {}

    def test_falsy_but_real_values_are_kept(self) -> None:
        t = task(step("extract", fo("grain_free", False), fo("pack_size_g", 0)))
        assert approved_values(t) == {("grain_free", None): False, ("pack_size_g", None): 0}

    def test_no_outputs(self) -> None:
        assert approved_values(task()) == {}


# --------------------------------------------------------------------------- sync_requests


class TestSyncRequests:
    def test_global_and_locale_values_go_to_their_scopes(self) -> None:
        t = task(
            step("extract", fo("Flavor", "Chicken"), fo("Meta Title", "Dry Cat Food")),
            step("translate", fo("description", "Trockenfutter mit Huhn", "de_DE")),
        )
        requests, notes = sync_requests(t, targets("magento"), None, NOW)
        assert notes == []
        assert [r["store_scope"] for r in requests] == [GLOBAL_SCOPE, "de"]
        everywhere, german = requests
        assert everywhere == {
            "request_id": "CAT-DRY-2KG@run-1#magento#all",
            "task_id": "CAT-DRY-2KG@run-1",
            "run_id": "run-1",
            "sku": "CAT-DRY-2KG",
            "target": "magento",
            "store_scope": "all",
            "fields": [
                {
                    "attribute": "flavor",
                    "value": "Chicken",
                    "read_value": None,
                    "value_hash": value_hash("Chicken"),
                },
                {
                    "attribute": "meta_title",
                    "value": "Dry Cat Food",
                    "read_value": None,
                    "value_hash": value_hash("Dry Cat Food"),
                },
            ],
            "requested_at": NOW,
        }
        assert german["request_id"] == "CAT-DRY-2KG@run-1#magento#de"
        assert german["fields"] == [
            {
                "attribute": "description",
                "value": "Trockenfutter mit Huhn",
                "read_value": None,
                "value_hash": value_hash("Trockenfutter mit Huhn"),
            }
        ]

    def test_a_locale_without_a_store_view_is_a_note_not_a_request(self) -> None:
        t = task(
            step(
                "translate",
                fo("description", "Trockenfutter", "de_DE"),
                fo("description", "Croquettes", "fr_FR"),
            )
        )
        requests, notes = sync_requests(t, targets("magento"), None, NOW)
        assert notes == ["description@fr_FR: no Magento store view for fr_FR"]
        assert [r["store_scope"] for r in requests] == ["de"]
        assert [f["value"] for f in requests[0]["fields"]] == ["Trockenfutter"]

    def test_only_unmapped_locales_means_no_requests(self) -> None:
        t = task(step("translate", fo("description", "Croquettes", "fr_FR")))
        requests, notes = sync_requests(t, targets("magento", store_codes=""), None, NOW)
        assert requests == []
        assert len(notes) == 1

    def test_merchant_feed_gets_one_feed_request(self) -> None:
        t = task(
            step("title", fo("shopping_title", "Dry Cat Food 2 kg")),
            step(
                "translate",
                fo("shopping_title", "Trockenfutter 2 kg", "de_DE"),
                fo("shopping_title", "Croquettes 2 kg", "fr_FR"),
            ),
        )
        requests, notes = sync_requests(t, targets("merchant_feed"), None, NOW)
        assert notes == []  # the feed needs no store view
        assert len(requests) == 1
        (feed,) = requests
        assert feed["store_scope"] == FEED_SCOPE == "feed"
        assert feed["target"] == "merchant_feed"
        assert feed["request_id"] == "CAT-DRY-2KG@run-1#merchant_feed#feed"
        assert [f["attribute"] for f in feed["fields"]] == [
            "shopping_title",
            "shopping_title@de_DE",
            "shopping_title@fr_FR",
        ]

    def test_each_target_gets_its_own_requests(self) -> None:
        t = task(step("x", fo("Flavor", "Chicken"), fo("description", "Futter", "de_DE")))
        requests, _ = sync_requests(t, targets("magento", "merchant_feed"), None, NOW)
        assert [(r["target"], r["store_scope"]) for r in requests] == [
            ("magento", "all"),
            ("magento", "de"),
            ("merchant_feed", "feed"),
        ]
        assert len({r["request_id"] for r in requests}) == 3

    def test_read_value_comes_from_the_product_snapshot(self) -> None:
        product = snapshot(
            av("Flavor", "Chiken"),
            av("description", "Altes Futter", "de_DE"),
            av("description", "Scoped text", "de_DE", "ecommerce"),
            av("title", "Global title"),
        )
        t = task(
            step(
                "x",
                fo("Flavor", "Chicken"),
                fo("description", "Neues Futter", "de_DE"),
                fo("title", "New title", "de_DE"),
                fo("pack_size_g", 2000),
            )
        )
        requests, _ = sync_requests(t, targets("magento"), product, NOW)
        read = {
            (r["store_scope"], f["attribute"]): f["read_value"]
            for r in requests
            for f in r["fields"]
        }
        assert read == {
            ("all", "flavor"): "Chiken",
            ("all", "pack_size_g"): None,  # the product has no such value
            ("de", "description"): "Altes Futter",  # exactly that locale, no scope
            ("de", "title"): None,  # no fallback to the global value
        }
        # The same lookup as the trigger rules.
        for (name, locale), _value in approved_values(t).items():
            expected = field_value(product, FieldRef(name, locale, None))
            scope = "all" if locale is None else CODES[locale]
            assert read[(scope, attribute_code(name))] == expected

    def test_no_targets_no_requests(self) -> None:
        t = task(step("x", fo("Flavor", "Chicken"), fo("description", "F", "fr_FR")))
        assert sync_requests(t, targets(), None, NOW) == ([], [])

    def test_nothing_approved_no_requests(self) -> None:
        t = task(step("x", fo("Flavor", "Chicken", approved=False), fo("title", "")))
        assert sync_requests(t, targets("magento", "merchant_feed"), None, NOW) == ([], [])


# --------------------------------------------------------------------------- summary


def test_summary_lists_each_field_and_the_message() -> None:
    result: SyncResult = {
        "request_id": "sync-1",
        "task_id": "task-1",
        "sku": "CAT-DRY-2KG",
        "target": "magento",
        "store_scope": "de",
        "status": "ERROR",
        "fields": [
            {"attribute": "description", "status": "SYNCED", "message": None},
            {"attribute": "flavours", "status": "ERROR", "message": "unknown option 'rice'"},
        ],
        "error_category": "INVALID_OPTION_VALUE",
        "message": "1 of 2 attributes failed",
        "at": NOW,
    }
    assert summary(result) == (
        "magento/de ERROR: description synced, flavours error (1 of 2 attributes failed)"
    )


def test_summary_without_fields_or_message() -> None:
    result: SyncResult = {
        "request_id": "sync-1",
        "task_id": "task-1",
        "sku": "CAT-DRY-2KG",
        "target": "magento",
        "store_scope": "all",
        "status": "SYNCED",
        "fields": [],
        "error_category": None,
        "message": None,
        "at": NOW,
    }
    assert summary(result) == "magento/all SYNCED: nothing to write"


def test_read_value_of_a_pulled_catalog_is_found_under_the_magento_code() -> None:
    """A catalog filled by ``magento pull`` holds ``flavor``, the workflow says ``Flavor``."""
    t = task(step("extract", fo("Flavor", "Chicken")))
    pulled = snapshot(av("flavor", "Salmon"))
    [request], _ = sync_requests(t, targets("magento"), pulled, NOW)
    assert request["fields"][0]["read_value"] == "Salmon"


def test_a_retried_sync_waits_only_for_the_requests_that_failed() -> None:
    ok = "magento/de SYNCED: shopping_title synced"
    failed = "magento/all ERROR: flavor error (Too Many Requests)"
    assert is_error_summary(failed) and not is_error_summary(ok)
    assert not is_error_summary("magento/all CONFLICT: flavor conflict (ERROR in the text)")
    state: SyncTaskState = {
        "task_id": "SKU-1@r",
        "run_id": "r",
        "workflow_id": "wf",
        "sku": "SKU-1",
        "steps": ["a"],
        "step_index": 1,
        "attempt": 0,
        "request_ids": ["SKU-1@r#magento#all", "SKU-1@r#magento#de"],
        "outcomes": {"SKU-1@r#magento#all": failed, "SKU-1@r#magento#de": ok},
    }
    assert failed_request_ids(state) == ["SKU-1@r#magento#all"]
    retry = retry_sync_state(state)
    assert retry["attempt"] == 1
    assert retry["request_ids"] == state["request_ids"]
    assert retry["outcomes"] == {"SKU-1@r#magento#de": ok}
