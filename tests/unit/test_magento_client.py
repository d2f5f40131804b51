"""The Magento REST client against the Magento simulator on loopback: auth, paging,
retries, error categories, options, and secrets kept out of every text."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.connectors.magento.client import MagentoClient, oauth1_header, retry_policy
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.errors import MagentoError, render_message
from catalogflow.streams.clock import FakeClock
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.settings import Secret, Settings
from catalogflow.testbench.magento.simulator import MagentoSimConfig, MagentoSimulatorThread
from yarl import URL

ADMIN_PASSWORD = "s3cret-admin-pass"


class Clock:
    """The simulator's clock, so updated_at values are known."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


class Sleeps(FakeClock):
    """The client's clock: records every retry wait, and waits none of them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.advance(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(clock: Clock) -> Iterator[MagentoSimulatorThread]:
    with MagentoSimulatorThread(MagentoSimConfig(), clock=clock) as thread:
        thread.simulator.add_attribute("flavor", "select", ("Salmon", "Chicken"), scope="global")
        thread.simulator.add_product(
            "CAT-1", {"price": 19.99, "flavor": "Salmon"}, name="Cat Food Salmon"
        )
        thread.simulator.add_admin_user("api", ADMIN_PASSWORD)
        yield thread


def config_for(shop: MagentoSimulatorThread, **changes: Any) -> MagentoConfig:
    values: dict[str, Any] = {
        "base_url": shop.url,
        "token": Secret(shop.simulator.issue_integration_token("catalogflow")),
        "backoff": 0.01,
        "max_attempts": 3,
    }
    values.update(changes)
    return MagentoConfig(**values)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(shop: MagentoSimulatorThread, sleeps: Sleeps) -> AsyncIterator[MagentoClient]:
    async with MagentoClient(config_for(shop), clock=sleeps) as c:
        yield c


# -- auth ------------------------------------------------------------------------------


async def test_integration_token_as_bearer_reads_a_product(client: MagentoClient) -> None:
    product = await client.get_product("CAT-1")
    assert product["sku"] == "CAT-1"
    assert product["name"] == "Cat Food Salmon"


async def test_bearer_switch_off_is_an_auth_error_naming_the_setting(
    shop: MagentoSimulatorThread, client: MagentoClient
) -> None:
    shop.simulator.configure(integration_bearer_enabled=False)
    with pytest.raises(MagentoError) as caught:
        await client.get_product("CAT-1")
    error = caught.value
    assert error.category == "AUTH"
    assert error.status == 401
    text = str(error)
    assert "The consumer isn't authorized to access Magento_Catalog::products" in text
    assert (
        "Stores > Configuration > Services > OAuth > Consumer Settings > Allow OAuth Access "
        "Tokens to be used as standalone Bearer tokens" in text
    )
    assert "magento_auth=admin" in text
    assert client.config.token.reveal() not in text
    assert client.config.token.reveal() not in repr(client.config)
    assert client.config.token.reveal() not in repr(error)


async def test_admin_token_is_fetched_and_refreshed_once_after_expiry(
    shop: MagentoSimulatorThread, sleeps: Sleeps
) -> None:
    config = config_for(shop, auth="admin", username="api", password=Secret(ADMIN_PASSWORD))
    async with MagentoClient(config, clock=sleeps) as client:
        assert (await client.get_product("CAT-1"))["sku"] == "CAT-1"
        assert client.requests == 2  # login, GET
        shop.simulator.expire_admin_tokens()
        assert (await client.get_product("CAT-1"))["sku"] == "CAT-1"
        assert client.requests == 5  # GET 401, login, GET
    assert sleeps.calls == []


async def test_concurrent_calls_after_expiry_share_one_new_token(
    shop: MagentoSimulatorThread, sleeps: Sleeps
) -> None:
    config = config_for(
        shop, auth="admin", username="api", password=Secret(ADMIN_PASSWORD), concurrency=4
    )
    async with MagentoClient(config, clock=sleeps) as client:
        await client.get_product("CAT-1")
        shop.simulator.expire_admin_tokens()
        before = client.requests
        await asyncio.gather(*(client.get_product("CAT-1") for _ in range(4)))
        # 4 refused GETs, at most 4 logins would be wrong: one login, 4 retried GETs.
        assert client.requests - before == 4 + 1 + 4


async def test_wrong_admin_password_is_auth_error_without_the_password(
    shop: MagentoSimulatorThread,
) -> None:
    config = config_for(shop, auth="admin", username="api", password=Secret("wrong-pass-123"))
    async with MagentoClient(config) as client:
        with pytest.raises(MagentoError) as caught:
            await client.get_product("CAT-1")
    assert caught.value.category == "AUTH"
    assert "account sign-in was incorrect" in str(caught.value)
    assert "wrong-pass-123" not in str(caught.value)
    assert "wrong-pass-123" not in repr(caught.value)


async def test_two_factor_auth_is_an_auth_error(shop: MagentoSimulatorThread) -> None:
    shop.simulator.configure(two_factor_auth=True)
    config = config_for(shop, auth="admin", username="api", password=Secret(ADMIN_PASSWORD))
    async with MagentoClient(config) as client:
        with pytest.raises(MagentoError) as caught:
            await client.get_product("CAT-1")
    assert caught.value.category == "AUTH"
    assert "2fa provider-specific endpoints" in str(caught.value)


def test_oauth1_header_is_signed_hmac_sha256_and_deterministic() -> None:
    url = URL("http://shop.test/rest/all/V1/products?searchCriteria%5BpageSize%5D=10", encoded=True)
    kwargs: dict[str, Any] = {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "token": "tok",
        "token_secret": "ts",
        "nonce": "n1",
        "timestamp": 1700000000,
    }
    header = oauth1_header("GET", url, **kwargs)
    assert header.startswith("OAuth ")
    assert 'oauth_signature_method="HMAC-SHA256"' in header
    assert 'oauth_token="tok"' in header
    assert header == oauth1_header("GET", url, **kwargs)
    assert header != oauth1_header("GET", url, **{**kwargs, "token_secret": "other"})
    assert "cs" not in header.replace("oauth_consumer_key", "")


# -- reading ---------------------------------------------------------------------------


async def test_paging_stops_on_total_count_even_when_pages_clamp(
    shop: MagentoSimulatorThread, client: MagentoClient
) -> None:
    for number in range(2, 8):
        shop.simulator.add_product(f"CAT-{number}", {"price": number}, name=f"Cat Food {number}")
    before = client.requests
    skus = [p["sku"] async for p in client.iter_products(page_size=3)]
    assert skus == [f"CAT-{n}" for n in range(1, 8)]
    assert client.requests - before == 3  # 3 + 3 + 1, no request past the last page


async def test_updated_since_filters_and_orders_by_change(
    shop: MagentoSimulatorThread, client: MagentoClient, clock: Clock
) -> None:
    clock.now += 3600
    shop.simulator.add_product("DOG-1", {"price": 5}, name="Dog Treats")
    clock.now += 3600
    shop.simulator.set_value("CAT-1", "all", "price", 21.5)
    since = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    skus = [p["sku"] async for p in client.iter_products(updated_since=since, page_size=1)]
    assert skus == ["DOG-1", "CAT-1"]


async def test_unknown_sku_is_other_with_magentos_message(client: MagentoClient) -> None:
    with pytest.raises(MagentoError) as caught:
        await client.get_product("NOPE")
    assert caught.value.category == "OTHER"
    assert caught.value.status == 404
    assert "The product that was requested doesn't exist" in str(caught.value)


# -- retries ---------------------------------------------------------------------------


async def test_429_waits_retry_after_then_succeeds(
    shop: MagentoSimulatorThread, client: MagentoClient, sleeps: Sleeps
) -> None:
    shop.simulator.inject("429", count=2, seconds=3)
    assert (await client.get_product("CAT-1"))["sku"] == "CAT-1"
    assert sleeps.calls == [3.0, 3.0]
    assert client.retries == 2


async def test_the_waits_are_the_retry_policys_backoff_with_its_jitter(
    shop: MagentoSimulatorThread, sleeps: Sleeps
) -> None:
    shop.simulator.inject("500", count=3, path_contains="/products/CAT-1")
    config = config_for(shop, max_attempts=4, backoff=0.5, backoff_cap=1.2)
    async with MagentoClient(config, clock=sleeps, rng=random.Random(7)) as client:
        assert (await client.get_product("CAT-1"))["sku"] == "CAT-1"
    policy, jitter = retry_policy(config), random.Random(7)
    assert sleeps.calls == [policy.backoff(retry, jitter) for retry in range(3)]
    assert 0.375 <= sleeps.calls[0] <= 0.5 and sleeps.calls[2] <= 1.2  # the cap holds


async def test_500_and_deadlock_are_retried_with_backoff(
    shop: MagentoSimulatorThread, client: MagentoClient, sleeps: Sleeps
) -> None:
    shop.simulator.inject("500", count=1, path_contains="/products/CAT-1")
    shop.simulator.inject("deadlock", count=1)
    await client.save_fields("CAT-1", "all", {"price": 22})
    assert shop.simulator.value("CAT-1", "all", "price") == 22
    assert len(sleeps.calls) == 2
    assert all(0 < s <= 0.02 for s in sleeps.calls)
    assert [w.method for w in shop.simulator.writes] == ["PUT"]


async def test_retries_run_out_as_a_retryable_connection_error(
    shop: MagentoSimulatorThread, client: MagentoClient, sleeps: Sleeps
) -> None:
    shop.simulator.inject("lock_wait", count=5)
    with pytest.raises(MagentoError) as caught:
        await client.save_fields("CAT-1", "all", {"price": 22})
    assert caught.value.category == "CONNECTION"
    assert caught.value.retryable
    assert "Database lock wait timeout exceeded" in str(caught.value)
    assert len(sleeps.calls) == 2  # 3 attempts
    assert shop.simulator.writes == []


async def test_a_long_retry_after_fails_at_once(
    shop: MagentoSimulatorThread, sleeps: Sleeps
) -> None:
    shop.simulator.inject("429", count=1, seconds=600)
    async with MagentoClient(config_for(shop, max_retry_after=60), clock=sleeps) as client:
        with pytest.raises(MagentoError) as caught:
            await client.get_product("CAT-1")
    assert caught.value.category == "CONNECTION"
    assert "600 s" in str(caught.value)
    assert sleeps.calls == []


async def test_nothing_listening_is_a_connection_error(sleeps: Sleeps) -> None:
    with MagentoSimulatorThread() as thread:
        url = thread.url  # a port that was free a moment ago, now closed
    config = MagentoConfig(base_url=url, token=Secret("t0ken-abc"), max_attempts=2, backoff=0)
    async with MagentoClient(config, clock=sleeps) as client:
        with pytest.raises(MagentoError) as caught:
            await client.get_product("CAT-1")
    assert caught.value.category == "CONNECTION"
    assert "t0ken-abc" not in str(caught.value)
    assert len(sleeps.calls) == 1


# -- writes and their errors -----------------------------------------------------------


async def test_save_fields_puts_only_the_given_fields(
    shop: MagentoSimulatorThread, client: MagentoClient
) -> None:
    await client.save_fields("CAT-1", "de", {"name": "Katzenfutter Lachs", "meta_title": "Lachs"})
    [write] = shop.simulator.writes
    assert (write.method, write.store, write.sku) == ("PUT", "de", "CAT-1")
    assert write.attributes == {"name": "Katzenfutter Lachs", "meta_title": "Lachs"}
    assert shop.simulator.override("CAT-1", "de", "name") == "Katzenfutter Lachs"
    assert shop.simulator.value("CAT-1", "all", "name") == "Cat Food Salmon"


async def test_more_than_20_custom_attributes_go_in_several_puts(
    shop: MagentoSimulatorThread, client: MagentoClient
) -> None:
    shop.simulator.configure(limit_mode=True)
    values: dict[str, Any] = {f"attr_{n:02d}": f"value {n}" for n in range(25)}
    for code in values:
        shop.simulator.add_attribute(code)
    await client.save_fields("CAT-1", "all", {"price": 23, **values})
    first, second = shop.simulator.writes
    assert len(first.attributes) == 21  # price and 20 custom attributes
    assert set(second.attributes) == {f"attr_{n}" for n in range(20, 25)}
    assert shop.simulator.value("CAT-1", "all", "attr_24") == "value 24"


async def test_error_categories(shop: MagentoSimulatorThread, client: MagentoClient) -> None:
    shop.simulator.add_product("CAT-2", {"price": 3}, name="Other")
    await client.save_fields("CAT-2", "de", {"url_key": "katzenfutter"})
    with pytest.raises(MagentoError) as taken:
        await client.save_fields("CAT-1", "de", {"url_key": "katzenfutter"})
    assert taken.value.category == "DUPLICATE_URL_KEY"
    assert "URL key for specified store already exists." in str(taken.value)

    with pytest.raises(MagentoError) as missing:
        await client.save_fields("NEW-1", "all", {"meta_title": "x"})  # a create without name
    assert missing.value.category == "MISSING_REQUIRED_ATTRIBUTE"
    assert "attribute value is empty" in str(missing.value)

    with pytest.raises(MagentoError) as not_select:
        await client.create_option("meta_title", "Big")
    assert not_select.value.category == "INVALID_OPTION_VALUE"
    assert 'The "meta_title" attribute doesn\'t work with options.' in str(not_select.value)


# -- attributes and options ------------------------------------------------------------


async def test_options_and_serialised_option_creation(
    shop: MagentoSimulatorThread, client: MagentoClient
) -> None:
    labels = [o["label"] for o in await client.options("flavor")]
    assert labels == ["Salmon", "Chicken"]  # without the leading empty option
    assert (await client.attribute("flavor"))["frontend_input"] == "select"
    ids = await asyncio.gather(*(client.create_option("flavor", "Tuna") for _ in range(3)))
    assert set(ids) == {shop.simulator.option_id("flavor", "Tuna")}
    assert sorted(o["label"] for o in await client.options("flavor")) == [
        "Chicken",
        "Salmon",
        "Tuna",
    ]
    assert await client.create_option("flavor", "salmon") == shop.simulator.option_id(
        "flavor", "Salmon"
    )


# -- config, messages, secrets ---------------------------------------------------------


def test_render_message_substitutes_positional_and_named_parameters() -> None:
    assert render_message("Invalid attribute name: %1", ["store_id"]) == (
        "Invalid attribute name: store_id"
    )
    assert render_message("%1 and %10", list("abcdefghij")) == "a and j"
    assert (
        render_message(
            'Invalid value of "%value" provided for the %fieldName field.',
            {"fieldName": "flavor", "value": "Tuna"},
        )
        == 'Invalid value of "Tuna" provided for the flavor field.'
    )
    assert render_message("left %1 alone", None) == "left %1 alone"


def test_config_from_settings_reads_secrets_from_the_named_variables() -> None:
    settings = Settings(
        magento_url="https://shop.example.com/",
        magento_auth="admin",
        magento_username="api",
        magento_password_env="SHOP_PW",
        magento_store_codes="de_DE=de,fr_FR=fr",
        magento_concurrency=3,
    )
    config = MagentoConfig.from_settings(settings, {"SHOP_PW": "pw-123456"})
    assert config.base_url == "https://shop.example.com"
    assert config.password.reveal() == "pw-123456"
    assert config.store_code("fr_FR") == "fr"
    assert config.concurrency == 3
    assert "pw-123456" not in repr(config)
    assert "pw-123456" not in str(config)


def test_config_names_the_missing_variable() -> None:
    settings = Settings(magento_url="https://shop.example.com", magento_token_env="MY_TOKEN")
    with pytest.raises(ConfigError, match="MY_TOKEN"):
        MagentoConfig.from_settings(settings, {})
    with pytest.raises(ConfigError, match="magento_url"):
        MagentoConfig.from_settings(Settings(), {"MAGENTO_TOKEN": "x"})
