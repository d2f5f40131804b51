"""The Magento REST simulator over real loopback HTTP (aiohttp client; no broker)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from catalogflow.testbench.magento.simulator import (
    IntegrationCredentials,
    MagentoSimConfig,
    MagentoSimulator,
    MagentoSimulatorError,
    MagentoSimulatorThread,
    WriteLogEntry,
)

UNAUTHORIZED = "The consumer isn't authorized to access %resources."
NO_PRODUCT = "The product that was requested doesn't exist. Verify the product and try again."


class Clock:
    """A settable wall clock (epoch seconds), so updated_at and token expiry are exact."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

    def __call__(self) -> float:
        return self.now


class Api:
    """A thin client: ``/rest/<store>/<path>`` with the bearer token, JSON in and out."""

    def __init__(self, http: aiohttp.ClientSession, sim: MagentoSimulator, token: str) -> None:
        self.http, self.sim, self.token = http, sim, token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        store: str | None = "default",
        token: str | None = "",
        params: Any = None,
    ) -> tuple[int, Any]:
        prefix = f"/rest/{store}" if store else "/rest"
        headers = {}
        bearer = self.token if token == "" else token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        async with self.http.request(
            method,
            f"{self.sim.url}{prefix}/{path}",
            json=body,
            headers=headers,
            params=params,
        ) as response:
            return response.status, json.loads(await response.text())

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)


def custom(product: dict[str, Any], code: str) -> Any:
    return next(
        (c["value"] for c in product["custom_attributes"] if c["attribute_code"] == code), None
    )


def seed(sim: MagentoSimulator) -> None:
    sim.add_attribute(
        "flavor",
        "select",
        ["Chicken", "Salmon", "Tuna"],
        scope="global",
        store_labels={"de": {"Salmon": "Lachs", "Chicken": "Huhn"}},
    )
    sim.add_attribute("features", "multiselect", ["Grain-free", "Organic", "Vegan"])
    sim.add_attribute("lifecycle", "select", ["Kitten", "Adult"], scope="global")
    for n in range(1, 6):
        sim.add_product(
            f"CAT-{n}",
            {"price": 10 + n, "description": f"<p>Food {n}</p>", "flavor": "Salmon"},
            name=f"Cat Food {n}",
            category_ids=[3, 4] if n % 2 else [5],
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[MagentoSimulator]:
    simulator = MagentoSimulator(clock=clock)
    seed(simulator)
    async with simulator:
        yield simulator


@pytest.fixture
async def api(sim: MagentoSimulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, sim, sim.issue_integration_token())


# -- auth ----------------------------------------------------------------------------------


async def test_admin_token_is_a_json_string_and_expires(
    sim: MagentoSimulator, api: Api, clock: Clock
) -> None:
    sim.add_admin_user("apiuser", "secret123")
    status, token = await api.post(
        "V1/integration/admin/token", {"username": "apiuser", "password": "secret123"}, token=None
    )
    assert status == 200 and isinstance(token, str) and len(token) == 32
    assert (await api.get("V1/products/CAT-1", token=token))[0] == 200

    status, body = await api.post(
        "V1/integration/admin/token", {"username": "apiuser", "password": "wrong"}, store=None
    )
    assert status == 401
    assert body["message"].startswith("The account sign-in was incorrect")

    clock.now += 4 * 3600  # the default 4 h lifetime has passed
    status, body = await api.get("V1/products/CAT-1", token=token)
    assert (status, body) == (
        401,
        {"message": UNAUTHORIZED, "parameters": {"resources": "Magento_Catalog::products"}},
    )


async def test_expire_admin_tokens_and_two_factor_switch(sim: MagentoSimulator, api: Api) -> None:
    sim.add_admin_user("apiuser", "secret123")
    login = {"username": "apiuser", "password": "secret123"}
    _, token = await api.post("V1/integration/admin/token", login, token=None)
    sim.expire_admin_tokens()
    assert (await api.get("V1/products/CAT-1", token=token))[0] == 401

    sim.configure(two_factor_auth=True)
    status, body = await api.post("V1/integration/admin/token", login, token=None)
    assert status == 401
    assert body == {
        "message": "Please use the 2fa provider-specific endpoints to obtain a token.",
        "parameters": {"active_providers": ["google"]},
    }
    # credentials are checked first
    status, body = await api.post(
        "V1/integration/admin/token", {**login, "password": "x"}, token=None
    )
    assert body["message"].startswith("The account sign-in was incorrect")


async def test_integration_bearer_is_gated_by_the_switch(sim: MagentoSimulator, api: Api) -> None:
    assert (await api.get("V1/products/CAT-1"))[0] == 200
    sim.configure(integration_bearer_enabled=False)
    status, body = await api.get("V1/products/CAT-1")
    assert status == 401 and body["message"] == UNAUTHORIZED
    status, body = await api.get("V1/products/attributes/flavor")
    assert body["parameters"] == {"resources": "Magento_Catalog::attributes_attributes"}
    for token in (None, "not-a-token"):
        assert (await api.get("V1/products/CAT-1", token=token))[0] == 401


def _pct(text: str) -> str:
    return urllib.parse.quote(text, safe="~-._")


def oauth_header(
    creds: IntegrationCredentials,
    method: str,
    url: str,
    *,
    nonce: str,
    algorithm: str = "HMAC-SHA256",
    secret: str | None = None,
) -> str:
    """An RFC 5849 signature written independently of the connector's signer."""
    parts = urllib.parse.urlsplit(url)
    oauth = {
        "oauth_consumer_key": creds.consumer_key,
        "oauth_nonce": nonce,
        "oauth_signature_method": algorithm,
        "oauth_timestamp": str(int(time.time())),
        "oauth_token": creds.access_token,
        "oauth_version": "1.0",
    }
    query = urllib.parse.parse_qsl(parts.query)
    normalized = "&".join(
        f"{k}={v}" for k, v in sorted((_pct(k), _pct(v)) for k, v in [*query, *oauth.items()])
    )
    base_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    base = "&".join(_pct(p) for p in (method, base_url, normalized))
    key = f"{creds.consumer_secret if secret is None else secret}&{creds.access_token_secret}"
    digest = hashlib.sha1 if algorithm == "HMAC-SHA1" else hashlib.sha256
    signature = base64.b64encode(hmac.new(key.encode(), base.encode(), digest).digest()).decode()
    oauth["oauth_signature"] = signature
    return "OAuth " + ",".join(f'{k}="{_pct(v)}"' for k, v in oauth.items())


async def test_oauth1_signed_requests(sim: MagentoSimulator, api: Api) -> None:
    sim.configure(integration_bearer_enabled=False)  # OAuth does not need the switch
    creds = sim.issue_integration()
    assert sim.issue_integration_token() == creds.access_token

    async def send(method: str, url: str, auth: str, body: Any = None) -> tuple[int, Any]:
        async with api.http.request(
            method, url, json=body, headers={"Authorization": auth}
        ) as response:
            return response.status, await response.json()

    search = (
        f"{sim.url}/rest/de/V1/products?searchCriteria%5BpageSize%5D=2"
        "&searchCriteria%5BfilterGroups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bfield%5D=name"
        "&searchCriteria%5BfilterGroups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bvalue%5D=Cat%25"
        "&searchCriteria%5BfilterGroups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5BconditionType%5D=like"
    )
    status, body = await send("GET", search, oauth_header(creds, "GET", search, nonce="n1"))
    assert status == 200 and body["total_count"] == 5 and len(body["items"]) == 2

    put = f"{sim.url}/rest/de/V1/products/CAT-1"
    header = oauth_header(creds, "PUT", put, nonce="n2", algorithm="HMAC-SHA1")
    status, body = await send("PUT", put, header, {"product": {"name": "Signiert"}})
    assert (status, body["name"]) == (200, "Signiert")
    status, body = await send("PUT", put, header, {"product": {"name": "Again"}})
    assert (status, body) == (
        401,
        {
            "message": "The nonce is already being used by the consumer with ID %1. "
            "Verify the nonce and try again.",
            "parameters": [1],
        },
    )
    status, body = await send(
        "GET", put, oauth_header(creds, "GET", put, nonce="n3", secret="wrong")
    )
    assert (status, body) == (401, {"message": "The signature is invalid. Verify and try again."})
    status, body = await send(
        "GET", put, oauth_header(creds, "GET", put, nonce="n4", algorithm="PLAINTEXT")
    )
    assert (status, body["message"]) == (400, "Signature method %1 is not supported")
    other = IntegrationCredentials("nobody", "x", creds.access_token, "y")
    status, body = await send("GET", put, oauth_header(other, "GET", put, nonce="n5"))
    assert (status, body["message"]) == (401, UNAUTHORIZED)
    assert [w.attributes for w in sim.writes] == [{"name": "Signiert"}]


# -- scopes --------------------------------------------------------------------------------


async def test_store_codes_scopes_and_fallback(sim: MagentoSimulator, api: Api) -> None:
    # no store code = the default store view (1), not the global scope
    status, _ = await api.put(
        "V1/products/CAT-1", {"product": {"name": "Default name"}}, store=None
    )
    assert status == 200
    assert sim.override("CAT-1", "default", "name") == "Default name"
    assert sim.value("CAT-1", "all", "name") == "Cat Food 1"
    assert (await api.get("V1/products/CAT-1", store="de"))[1]["name"] == "Cat Food 1"

    status, product = await api.put(
        "V1/products/CAT-1",
        {"product": {"sku": "CAT-1", "name": "Katzenfutter 1", "price": 99}},
        store="de",
    )
    assert product["name"] == "Katzenfutter 1"
    assert sim.override("CAT-1", "de", "name") == "Katzenfutter 1"
    # price is a global attribute: a store-view write lands at store 0
    assert sim.override("CAT-1", "de", "price") is None
    assert sim.value("CAT-1", "all", "price") == 99

    await api.put("V1/products/CAT-1", {"product": {"name": "Global name"}}, store="all")
    assert (await api.get("V1/products/CAT-1", store="all"))[1]["name"] == "Global name"
    assert (await api.get("V1/products/CAT-1", store="de"))[1]["name"] == "Katzenfutter 1"
    assert (await api.get("V1/products/CAT-1", store="default"))[1]["name"] == "Default name"

    # null on a store endpoint deletes the override; the global value shows again
    await api.put("V1/products/CAT-1", {"product": {"name": None}}, store="de")
    assert sim.override("CAT-1", "de", "name") is None
    assert (await api.get("V1/products/CAT-1", store="de"))[1]["name"] == "Global name"
    await api.put(
        "V1/products/CAT-1",
        {"product": {"custom_attributes": [{"attribute_code": "description", "value": None}]}},
        store="default",
    )
    assert sim.value("CAT-1", "default", "description") == "<p>Food 1</p>"

    sim.add_store("fr", 3)
    assert (await api.get("V1/products/CAT-1", store="fr"))[1]["name"] == "Global name"
    status, body = await api.get("V1/products/CAT-1", store="xx")
    assert (status, body["message"]) == (404, "Request does not match any route.")


@pytest.mark.parametrize("mode", ["clean", "legacy_copy"])
async def test_store_save_modes(sim: MagentoSimulator, api: Api, mode: str) -> None:
    sim.configure(store_save_mode=mode)
    await api.put("V1/products/CAT-2", {"product": {"name": "Katzenfutter 2"}}, store="de")
    sim.set_value("CAT-2", "all", "description", "<p>New global text</p>")
    de = (await api.get("V1/products/CAT-2", store="de"))[1]
    if mode == "clean":
        assert sim.override("CAT-2", "de", "description") is None
        assert custom(de, "description") == "<p>New global text</p>"
    else:  # the untouched store-scoped values were copied and stopped inheriting
        assert sim.override("CAT-2", "de", "description") == "<p>Food 2</p>"
        assert sim.override("CAT-2", "de", "url_key") == "cat-food-2"
        assert custom(de, "description") == "<p>Food 2</p>"
    assert sim.override("CAT-2", "de", "price") is None  # global: never copied
    # writes through `all` never copy
    await api.put("V1/products/CAT-3", {"product": {"name": "All 3"}}, store="all")
    assert sim.override("CAT-3", "de", "description") is None


# -- products: read, write -----------------------------------------------------------------


async def test_get_product_shape(sim: MagentoSimulator, api: Api) -> None:
    status, product = await api.get("V1/products/CAT-1", store="de")
    assert status == 200
    assert product["sku"] == "CAT-1" and product["price"] == 11 and product["status"] == 1
    assert product["created_at"] == "2026-01-01 00:00:00"
    assert custom(product, "flavor") == sim.option_id("flavor", "Salmon")
    assert custom(product, "category_ids") == ["3", "4"]
    assert product["extension_attributes"]["category_links"] == [
        {"position": 0, "category_id": "3"},
        {"position": 1, "category_id": "4"},
    ]
    assert all(
        isinstance(c["value"], str)
        for c in product["custom_attributes"]
        if c["attribute_code"] != "category_ids"
    )
    assert custom(product, "lifecycle") is None  # null values are left out
    status, body = await api.get("V1/products/NOPE-1")
    assert (status, body) == (404, {"message": NO_PRODUCT})


async def test_put_is_an_upsert_merge_with_string_values(
    sim: MagentoSimulator, api: Api, clock: Clock
) -> None:
    clock.now += 90
    salmon, tuna = sim.option_id("flavor", "Salmon"), sim.option_id("flavor", "Tuna")
    grain, vegan = sim.option_id("features", "Grain-free"), sim.option_id("features", "Vegan")
    status, product = await api.put(
        "V1/products/CAT-1",
        {
            "product": {
                "sku": "CAT-1",
                "custom_attributes": [
                    {"attribute_code": "flavor", "value": tuna},
                    {"attribute_code": "features", "value": f"{grain},{vegan}"},
                    {"attribute_code": "meta_title", "value": "Cat food | Brand"},
                    {"attribute_code": "not_an_attribute", "value": "ignored"},
                ],
            }
        },
        store="all",
    )
    assert status == 200
    assert custom(product, "flavor") == tuna != salmon
    assert custom(product, "features") == f"{grain},{vegan}"
    assert custom(product, "description") == "<p>Food 1</p>"  # untouched fields stay
    assert product["updated_at"] == "2026-01-01 00:01:30"
    assert sim.writes[-1].attributes == {
        "flavor": tuna,
        "features": f"{grain},{vegan}",
        "meta_title": "Cat food | Brand",
    }

    # POST on an existing SKU updates it (Adobe's own tutorial does this)
    status, product = await api.post("V1/products", {"product": {"sku": "CAT-1", "price": 7.5}})
    assert (status, product["price"], product["id"]) == (200, 7.5, 1)

    status, product = await api.post(
        "V1/products",
        {
            "product": {
                "sku": "DOG-1",
                "name": "Dog Treats",
                "price": 3,
                "extension_attributes": {"category_links": [{"position": 0, "category_id": "6"}]},
            }
        },
        store="all",
    )
    assert status == 200 and product["id"] == 6
    assert custom(product, "url_key") == "dog-treats"
    assert custom(product, "category_ids") == ["6"]
    assert [w.sku for w in sim.writes] == ["CAT-1", "CAT-1", "DOG-1"]


async def test_write_validation_errors(sim: MagentoSimulator, api: Api) -> None:
    status, body = await api.put("V1/products/CAT-1", {"sku": "CAT-1"})
    assert (status, body) == (
        400,
        {
            "message": '"%fieldName" is required. Enter and try again.',
            "parameters": {"fieldName": "product"},
        },
    )
    status, body = await api.post(
        "V1/products", {"product": {"sku": "X" * 65, "name": "n", "price": 1}}
    )
    assert (status, body) == (400, {"message": "SKU length should be 64 characters maximum."})
    status, body = await api.post("V1/products", {"product": {"sku": "NEW-1", "price": 1}})
    assert (status, body) == (
        400,
        {
            "message": 'The "%1" attribute value is empty. Set the attribute and try again.',
            "parameters": ["Product Name"],
        },
    )
    # a second product with the same name gets the same url_key: Magento does not suffix
    status, body = await api.post(
        "V1/products", {"product": {"sku": "NEW-2", "name": "Cat Food 1", "price": 1}}
    )
    assert (status, body) == (400, {"message": "URL key for specified store already exists."})
    status, body = await api.put(
        "V1/products/CAT-2",
        {"product": {"custom_attributes": [{"attribute_code": "url_key", "value": "cat-food-3"}]}},
        store="de",
    )
    assert (status, body["message"]) == (400, "URL key for specified store already exists.")
    status, body = await api.put(
        "V1/products/CAT-2",
        {"product": {"custom_attributes": [{"attribute_code": "flavor", "value": "999999"}]}},
    )
    assert (status, body) == (
        400,
        {
            "message": 'Invalid value of "%value" provided for the %fieldName field.',
            "parameters": {"fieldName": "flavor", "value": "999999"},
        },
    )
    status, body = await api.put(
        "V1/products/CAT-2",
        {"product": {"custom_attributes": [{"attribute_code": "features", "value": ["1", "2"]}]}},
    )
    assert status == 400 and body["parameters"]["attribute_code"] == "features"
    assert body["message"].startswith('Error occurred during "custom_attributes" processing.')
    status, body = await api.put(
        "V1/products/CAT-2", {"product": {"custom_attributes": [{"value": "x"}]}}
    )
    assert body["message"].startswith(
        "A custom attribute is specified with a missing attribute code"
    )
    status, body = await api.put(
        "V1/products/CAT-2",
        {"product": {"extension_attributes": {"category_links": [{"category_id": "x"}]}}},
    )
    assert status == 400 and body["parameters"]["fieldName"] == "category_ids"
    assert sim.writes == []
    assert sim.value("CAT-2", "de", "url_key") == "cat-food-2"  # nothing half-written

    sim.configure(developer_mode=True)
    status, body = await api.get("V1/products/NOPE")
    assert status == 404 and "trace" in body
    status, body = await api.get("V1/nothing/here")
    assert (status, body["message"]) == (404, "Request does not match any route.")


# -- search --------------------------------------------------------------------------------


def criteria(
    *groups: list[tuple[str, str, str]], camel: bool = False, **extra: Any
) -> dict[str, str]:
    fg, cond = ("filterGroups", "conditionType") if camel else ("filter_groups", "condition_type")
    params: dict[str, str] = {}
    for g, group in enumerate(groups):
        for f, (field, value, condition) in enumerate(group):
            key = f"searchCriteria[{fg}][{g}][filters][{f}]"
            params[f"{key}[field]"] = field
            params[f"{key}[value]"] = value
            params[f"{key}[{cond}]"] = condition
    for name, value in extra.items():
        params[f"searchCriteria[{name}]"] = str(value)
    return params


async def skus(api: Api, params: dict[str, str], store: str = "default") -> list[str]:
    status, body = await api.get("V1/products", params=params, store=store)
    assert status == 200, body
    return [item["sku"] for item in body["items"]]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (("sku", "cat-3", "eq"), ["CAT-3"]),
        (("sku", "CAT-3", "neq"), ["CAT-1", "CAT-2", "CAT-4", "CAT-5"]),
        (("name", "%Food 2", "like"), ["CAT-2"]),
        (("price", "13", "gt"), ["CAT-4", "CAT-5"]),
        (("price", "13", "gteq"), ["CAT-3", "CAT-4", "CAT-5"]),
        (("price", "12", "lt"), ["CAT-1"]),
        (("price", "12", "lteq"), ["CAT-1", "CAT-2"]),
        (("sku", "CAT-1,CAT-4", "in"), ["CAT-1", "CAT-4"]),
        (("sku", "CAT-1,CAT-4", "nin"), ["CAT-2", "CAT-3", "CAT-5"]),
        (("lifecycle", "", "null"), ["CAT-1", "CAT-2", "CAT-3", "CAT-4", "CAT-5"]),
        (("lifecycle", "", "notnull"), []),
        (("category_id", "5", "eq"), ["CAT-2", "CAT-4"]),
        (("updated_at", "2026-01-01 00:00:00", "gt"), []),
    ],
)
async def test_search_condition_types(
    api: Api, flt: tuple[str, str, str], expected: list[str]
) -> None:
    assert await skus(api, criteria([flt])) == expected


async def test_search_groups_paging_and_spellings(
    sim: MagentoSimulator, api: Api, clock: Clock
) -> None:
    # filters in a group are ORed, groups are ANDed
    params = criteria(
        [("sku", "CAT-1", "eq"), ("sku", "CAT-2", "eq"), ("sku", "CAT-3", "eq")],
        [("price", "11", "gt")],
    )
    assert await skus(api, params) == ["CAT-2", "CAT-3"]
    assert await skus(api, criteria([("price", "11", "gt")], camel=True)) == [
        "CAT-2",
        "CAT-3",
        "CAT-4",
        "CAT-5",
    ]
    # custom attributes filter on resolved store values
    sim.set_value("CAT-4", "all", "lifecycle", "Adult")
    adult = sim.option_id("lifecycle", "Adult") or ""
    assert await skus(api, criteria([("lifecycle", adult, "eq")])) == ["CAT-4"]
    await api.put("V1/products/CAT-5", {"product": {"name": "Katzenfutter"}}, store="de")
    assert await skus(api, criteria([("name", "Katzen%", "like")]), store="de") == ["CAT-5"]
    assert await skus(api, criteria([("name", "Katzen%", "like")]), store="default") == []

    clock.now += 60
    sim.set_value("CAT-2", "default", "meta_title", "edited in the admin")
    assert await skus(api, criteria([("updated_at", "2026-01-01 00:00:00", "gt")])) == ["CAT-2"]

    status, page = await api.get(
        "V1/products",
        params={
            "searchCriteria[sortOrders][0][field]": "price",
            "searchCriteria[sortOrders][0][direction]": "DESC",
            "searchCriteria[pageSize]": "2",
            "searchCriteria[currentPage]": "2",
        },
    )
    assert status == 200
    assert page["total_count"] == 5
    assert [i["sku"] for i in page["items"]] == ["CAT-3", "CAT-2"]
    assert page["search_criteria"]["page_size"] == 2
    assert page["search_criteria"]["current_page"] == 2

    # a page past the end: the last page again (the classic clamp), or empty
    past = criteria(page_size=2, current_page=9)
    assert await skus(api, past) == ["CAT-5"]
    sim.configure(clamp_past_last_page=False)
    assert await skus(api, past) == []

    status, body = await api.get("V1/products", params=criteria([("store_id", "1", "eq")]))
    assert (status, body) == (
        400,
        {"message": "Invalid attribute name: %1", "parameters": ["store_id"]},
    )


async def test_limit_mode(sim: MagentoSimulator, api: Api) -> None:
    sim.configure(limit_mode=True)
    for n in range(6, 31):
        sim.add_product(f"CAT-{n}", {"price": 1}, name=f"Cat Food {n}")
    status, body = await api.get("V1/products")
    assert status == 200 and len(body["items"]) == 20 and body["total_count"] == 30
    status, body = await api.get("V1/products", params=criteria(page_size=301))
    assert (status, body) == (
        400,
        {"message": "Maximum SearchCriteria pageSize is %max", "parameters": {"max": 300}},
    )
    many = [{"attribute_code": "meta_title", "value": str(i)} for i in range(21)]
    status, body = await api.put("V1/products/CAT-1", {"product": {"custom_attributes": many}})
    assert status == 400 and body["message"] == 'Maximum items of type "%type" is %max'
    assert body["parameters"]["max"] == 20


# -- attributes and options ----------------------------------------------------------------


async def test_attribute_metadata_and_options(sim: MagentoSimulator, api: Api) -> None:
    status, meta = await api.get("V1/products/attributes/flavor")
    assert status == 200
    assert (meta["attribute_code"], meta["frontend_input"], meta["scope"]) == (
        "flavor",
        "select",
        "global",
    )
    assert meta["is_required"] is False and meta["backend_type"] == "int"
    assert meta["options"][0] == {"label": " ", "value": ""}
    status, body = await api.get("V1/products/attributes/nope")
    assert (status, body["parameters"]) == (404, ["nope"])

    salmon = sim.option_id("flavor", "Salmon")
    status, options = await api.get("V1/products/attributes/flavor/options", store="de")
    assert options[0] == {"label": " ", "value": ""}
    assert {"label": "Lachs", "value": salmon} in options
    assert {"label": "Tuna", "value": sim.option_id("flavor", "Tuna")} in options
    _, options = await api.get("V1/products/attributes/flavor/options", store="all")
    assert {"label": "Salmon", "value": salmon} in options

    status, new_id = await api.post(
        "V1/products/attributes/flavor/options",
        {
            "option": {
                "label": "Duck",
                "sort_order": 10,
                "store_labels": [
                    {"store_id": 0, "label": "Duck"},
                    {"store_id": 2, "label": "Ente"},
                ],
            }
        },
        store="all",
    )
    assert status == 200 and isinstance(new_id, str) and new_id.isdigit()
    assert sim.option_id("flavor", "duck") == new_id
    _, options = await api.get("V1/products/attributes/flavor/options", store="de")
    # listed by sort_order, then creation: the seeded options have sort_order 0
    assert [o["label"] for o in options] == [" ", "Huhn", "Lachs", "Tuna", "Ente"]
    assert options[-1] == {"label": "Ente", "value": new_id}

    status, body = await api.post(
        "V1/products/attributes/flavor/options", {"option": {"label": "SALMON"}}, store="all"
    )
    assert (status, body) == (
        400,
        {
            "message": 'Admin store attribute option label "%1" already exists.',
            "parameters": ["SALMON"],
        },
    )
    status, body = await api.post(
        "V1/products/attributes/flavor/options", {"option": {"label": ""}}, store="all"
    )
    assert (status, body["message"]) == (
        400,
        "The attribute option label is empty. Enter the value and try again.",
    )
    status, body = await api.post(
        "V1/products/attributes/flavor/options",
        {"option": {"label": "Goose", "sort_order": "first"}},
        store="all",
    )
    assert status == 400 and sim.option_id("flavor", "Goose") is None
    status, body = await api.get("V1/products/attributes/description/options")
    assert (status, body) == (
        400,
        {
            "message": 'The "%1" attribute doesn\'t work with options.',
            "parameters": ["description"],
        },
    )
    assert sim.writes == []  # option changes are not product writes


# -- faults --------------------------------------------------------------------------------


async def test_injected_faults(sim: MagentoSimulator, api: Api) -> None:
    sim.inject("429", 2, seconds=3)
    for _ in range(2):
        status, body = await api.get("V1/products/CAT-1")
        assert (status, body["message"]) == (429, "Too Many Requests")
    assert (await api.get("V1/products/CAT-1"))[0] == 200

    sim.inject("500")
    status, body = await api.get("V1/products/CAT-1")
    assert status == 500 and set(body) == {"message"}
    assert body["message"].startswith(
        "Internal Error. Details are available in Magento log file. Report ID: webapi-"
    )

    # deadlocks are taken by saves only, and only by matching paths
    sim.inject("deadlock", path_contains="CAT-2")
    assert (await api.get("V1/products/CAT-2"))[0] == 200
    assert (await api.put("V1/products/CAT-1", {"product": {"name": "a"}}))[0] == 200
    status, body = await api.put("V1/products/CAT-2", {"product": {"name": "b"}})
    assert (status, body) == (400, {"message": "Database deadlock found when trying to get lock"})
    sim.inject("lock_wait")
    status, body = await api.put("V1/products/CAT-2", {"product": {"name": "b"}})
    assert (status, body) == (400, {"message": "Database lock wait timeout exceeded"})
    assert (await api.put("V1/products/CAT-2", {"product": {"name": "b"}}))[0] == 200
    assert [w.sku for w in sim.writes] == ["CAT-1", "CAT-2"]

    sim.inject("latency", seconds=0.3)
    started = time.monotonic()
    assert (await api.get("V1/products/CAT-1"))[0] == 200
    assert time.monotonic() - started >= 0.3

    # latency makes concurrent calls overlap: max_in_flight shows a client's concurrency
    sim.reset_stats()
    sim.configure(latency_s=0.2)
    await asyncio.gather(*(api.get(f"V1/products/CAT-{n}") for n in (1, 2, 3)))
    assert sim.stats == {"requests": 3, "errors": 0, "in_flight": 0, "max_in_flight": 3}
    with pytest.raises(MagentoSimulatorError):
        sim.inject("explode")  # type: ignore[arg-type]


async def test_429_carries_retry_after(sim: MagentoSimulator, api: Api) -> None:
    sim.inject("429", seconds=2)
    async with api.http.get(f"{sim.url}/rest/V1/products/CAT-1") as response:
        assert response.status == 429 and response.headers["Retry-After"] == "2"


# -- write log and admin edits -------------------------------------------------------------


async def test_write_log_and_admin_edits(sim: MagentoSimulator, api: Api, clock: Clock) -> None:
    before = (await api.get("V1/products/CAT-1"))[1]["updated_at"]
    clock.now += 5
    sim.set_value("CAT-1", "de", "name", "Von Hand")
    sim.set_value("CAT-1", "all", "flavor", "Tuna")
    assert sim.writes == []
    after = (await api.get("V1/products/CAT-1", store="de"))[1]
    assert after["updated_at"] > before and after["name"] == "Von Hand"
    assert custom(after, "flavor") == sim.option_id("flavor", "Tuna")

    for n in (1, 2, 3):
        await api.put(
            f"V1/products/CAT-{n}", {"product": {"sku": f"CAT-{n}", "price": n}}, store="all"
        )
    await api.put("V1/products/CAT-1", {"product": {"name": "Katze"}}, store="de")
    assert len(sim.writes) == 4
    assert sim.writes[-1] == WriteLogEntry(
        "PUT", "/rest/de/V1/products/CAT-1", "de", "CAT-1", {"name": "Katze"}
    )
    assert sim.writes[0].store == "all" and sim.writes[0].attributes == {"price": 1}
    sim.reset_writes()
    assert sim.writes == []
    with pytest.raises(MagentoSimulatorError):
        sim.set_value("NOPE", "all", "name", "x")


# -- async and bulk ------------------------------------------------------------------------


async def test_async_put_is_queued_until_the_consumer_ticks(
    sim: MagentoSimulator, api: Api
) -> None:
    status, accepted = await api.put(
        "async/V1/products/CAT-1", {"product": {"sku": "CAT-1", "name": "Katzenfutter"}}, store="de"
    )
    assert status == 202
    assert accepted["errors"] is False
    assert [(i["id"], i["status"]) for i in accepted["request_items"]] == [(0, "accepted")]
    assert len(accepted["request_items"][0]["data_hash"]) == 64
    uuid = accepted["bulk_uuid"]

    status, state = await api.get(f"V1/bulk/{uuid}/status", store=None)
    assert status == 200
    assert [op["status"] for op in state["operations_list"]] == [4]
    assert state["operation_count"] == 1 and state["user_type"] == 1
    assert sim.value("CAT-1", "de", "name") == "Cat Food 1" and sim.writes == []

    assert sim.tick_consumers() == 1
    assert sim.tick_consumers() == 0
    assert sim.value("CAT-1", "de", "name") == "Katzenfutter"
    assert sim.override("CAT-1", "de", "name") == "Katzenfutter"
    assert sim.writes == [
        WriteLogEntry(
            "PUT", "/rest/de/async/V1/products/CAT-1", "de", "CAT-1", {"name": "Katzenfutter"}
        )
    ]
    _, state = await api.get(f"V1/bulk/{uuid}/detailed-status")
    op = state["operations_list"][0]
    assert op["status"] == 1 and op["bulk_uuid"] == uuid
    assert op["topic_name"] == "async.magento.catalog.api.productrepositoryinterface.save.put"
    assert op["result_message"].startswith("Service execution success")
    assert json.loads(op["result_serialized_data"])["name"] == "Katzenfutter"
    assert "meta_information" in json.loads(op["serialized_data"])
    assert (await api.get("V1/products/CAT-1", store="async"))[0] == 404

    status, body = await api.get("V1/bulk/00000000-0000-0000-0000-000000000000/status")
    assert (status, body["message"]) == (404, "Bulk uuid %bulkUuid not exist")


async def test_bulk_by_sku_with_failures(sim: MagentoSimulator, api: Api) -> None:
    items = [
        {"sku": "CAT-1", "product": {"sku": "CAT-1", "name": "Eins"}},
        {
            "sku": "CAT-2",
            "product": {"custom_attributes": [{"attribute_code": "flavor", "value": "9999"}]},
        },
        {"sku": "CAT-3", "product": {"sku": "CAT-3", "name": "Drei"}},
    ]
    sim.inject("deadlock", path_contains="bySku")
    status, accepted = await api.put("async/bulk/V1/products/bySku", items, store="de")
    assert status == 202 and len(accepted["request_items"]) == 3
    assert sim.tick_consumers() == 3
    uuid = accepted["bulk_uuid"]
    _, state = await api.get(f"V1/bulk/{uuid}/status")
    assert [op["status"] for op in state["operations_list"]] == [2, 3, 1]
    assert state["operations_list"][0]["result_message"] == (
        "Database deadlock found when trying to get lock"
    )
    assert state["operations_list"][1]["result_message"] == (
        'Invalid value of "9999" provided for the flavor field.'
    )
    for code, count in ((1, 1), (2, 1), (3, 1), (4, 0)):
        assert (await api.get(f"V1/bulk/{uuid}/operation-status/{code}"))[1] == count
    assert [w.sku for w in sim.writes] == ["CAT-3"]

    status, accepted = await api.post(
        "async/bulk/V1/products",
        [
            {"product": {"sku": "NEW-1", "name": "New one", "price": 5}},
            {"product": {"sku": "CAT-4", "price": 1}},
        ],
        store="all",
    )
    assert status == 202
    assert sim.tick_consumers() == 2
    assert sim.value("NEW-1", "all", "name") == "New one"
    assert [w.method for w in sim.writes] == ["PUT", "POST", "POST"]

    status, body = await api.put("async/bulk/V1/products/bySku", [{"sku": "CAT-1"}])
    assert status == 400 and body["parameters"] == {"fieldName": "product"}
    status, body = await api.get("async/V1/products/CAT-1")
    assert status == 404


# -- the thread and the command ------------------------------------------------------------


def test_simulator_thread_serves_a_sync_client() -> None:
    with MagentoSimulatorThread(MagentoSimConfig(integration_bearer_enabled=False)) as thread:
        sim = thread.simulator
        sim.add_product("SKU-1", {"price": 9.5}, name="Cat food")
        sim.add_admin_user("apiuser", "secret123")
        request = urllib.request.Request(
            f"{thread.url}/rest/V1/integration/admin/token",
            data=json.dumps({"username": "apiuser", "password": "secret123"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            token = json.loads(response.read())
        put = urllib.request.Request(
            f"{thread.url}/rest/de/V1/products/SKU-1",
            data=json.dumps({"product": {"name": "Katzenfutter"}}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="PUT",
        )
        with urllib.request.urlopen(put) as response:
            assert json.loads(response.read())["name"] == "Katzenfutter"
        assert sim.override("SKU-1", "de", "name") == "Katzenfutter"
        assert len(sim.writes) == 1
        integration = urllib.request.Request(
            f"{thread.url}/rest/V1/products/SKU-1",
            headers={"Authorization": f"Bearer {sim.issue_integration_token()}"},
        )
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(integration)
        assert failed.value.code == 401
    with pytest.raises(MagentoSimulatorError):
        _ = thread.url


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(MagentoSimulatorError):
        MagentoSimulator(MagentoSimConfig(store_save_mode="copy"))  # type: ignore[arg-type]
    sim = MagentoSimulator()
    with pytest.raises(MagentoSimulatorError):
        sim.configure(no_such_setting=True)
    with pytest.raises(MagentoSimulatorError):
        sim.add_product("X", {}, store="nowhere")


def test_command_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "catalogflow",
            "simulator",
            "magento",
            "--port",
            "0",
            "--seed-sample",
            "7",
            "--store-save-mode",
            "legacy_copy",
            "--bearer-disabled",
            "--admin-user",
            "apiuser:secret123",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split()[3]
        token = line.split("integration token ")[1].split(";")[0]
        request = urllib.request.Request(
            f"{url}/rest/V1/products?searchCriteria[pageSize]=5",
            headers={"Authorization": f"Bearer {token}"},
        )
        with pytest.raises(urllib.error.HTTPError) as failed:  # --bearer-disabled
            urllib.request.urlopen(request)
        assert failed.value.code == 401
        login = urllib.request.Request(
            f"{url}/rest/V1/integration/admin/token",
            data=json.dumps({"username": "apiuser", "password": "secret123"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login) as response:
            admin = json.loads(response.read())
        request.add_header("Authorization", f"Bearer {admin}")
        with urllib.request.urlopen(request) as response:
            body = json.loads(response.read())
        assert body["total_count"] == 7 and len(body["items"]) == 5
        assert body["items"][0]["sku"] == "PF-000000"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_command_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "catalogflow", "simulator", "magento", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--store-save-mode" in result.stdout and "--seed-sample" in result.stdout
