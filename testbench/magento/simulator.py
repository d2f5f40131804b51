"""A Magento 2.4 REST API simulator: test and demo infrastructure only.

``MagentoSimulator`` serves the REST subset catalogflow's Magento connector uses, on an
aiohttp server on loopback, with Magento's URL anatomy, status codes, body shapes and
message strings (see the reference notes on Magento REST, section 10)::

    sim = MagentoSimulator()
    base = await sim.start()                 # http://127.0.0.1:PORT
    token = sim.issue_integration_token()    # Authorization: Bearer <token>
    # GET  {base}/rest/de/V1/products/SKU    (store codes all=0, default=1, de=2; none = default)

Served routes (``/rest[/<store>]`` in front of each):

* ``POST V1/integration/admin/token`` -> a JSON string; 401 on bad credentials, 401
  "Please use the 2fa provider-specific endpoints..." with ``two_factor_auth``.
* ``GET V1/products/{sku}``, ``GET V1/products?searchCriteria...`` (both spellings,
  filter groups ANDed, filters in a group ORed, all condition types, sort orders,
  ``total_count``, a ``currentPage`` past the end clamped or empty per config),
  ``POST V1/products`` and ``PUT V1/products/{sku}`` (upsert-merge), ``DELETE``.
* ``GET V1/products/attributes/{code}``, ``GET|POST V1/products/attributes/{code}/options``.
* ``POST async/V1/products``, ``PUT async/V1/products/{sku}``, ``POST async/bulk/V1/products``,
  ``PUT async/bulk/V1/products/bySku``: 202 ``{bulk_uuid, request_items, errors: false}``;
  the operations stay open (status 4) until ``tick_consumers()``, or until the consumer
  runs by itself every ``consumer_tick_s`` seconds (off by default: no consumer running).
* ``GET V1/bulk/{uuid}/status``, ``.../detailed-status``, ``.../operation-status/{status}``.

Auth: a Bearer admin token (expires after ``admin_token_ttl_s``), a Bearer integration
token (accepted only with ``integration_bearer_enabled``), or an OAuth 1.0a request signed
with the integration's four credentials (HMAC-SHA1 or HMAC-SHA256 over the method, URL and
query, never the JSON body; nonces are single-use; accepted whatever the Bearer switch
says). Anything else gets Magento's 401 ``The consumer isn't authorized to access
%resources.``; a bad signature gets 401 ``The signature is invalid. Verify and try again.``

Scopes: see ``catalog``. A save through a store view writes store-scoped
attributes as that view's overrides (global/website ones at store 0); ``null`` deletes the
override; ``store_save_mode="legacy_copy"`` first copies every store-scoped value into the
view, as magento/magento2#8897 and #9186 describe. A create writes every value at store 0.

Faults (``inject``): ``429`` ({"message":"Too Many Requests"}), ``500`` (Magento's masked
"Internal Error ... Report ID: webapi-..."), ``latency`` (``seconds`` of delay), all taken
by the next matching requests (by path, and by HTTP method when one is named, so a
fault can hit only the global saves); ``deadlock`` and ``lock_wait`` (Magento's retryable
400s) are taken by the next matching product saves, including async operations when
consumed. ``clear_faults`` drops the faults not yet served.

``request_log`` lists every ``/rest`` request served (method and path), so a test can tell
bulk submissions from single saves.

Control routes for the command-line simulator: ``GET /_sim/writes``, ``POST /_sim/tick``,
``POST /_sim/config``, ``POST /_sim/fault``, ``POST /_sim/token``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web
from catalogflow.testbench.magento.auth import (
    ATTRIBUTES_ACL,
    BULK_ACL,
    PRODUCTS_ACL,
    Caller,
    IntegrationCredentials,
)
from catalogflow.testbench.magento.bulk import Operation
from catalogflow.testbench.magento.config import MagentoSimConfig
from catalogflow.testbench.magento.errors import (
    MSG_INTERNAL,
    MSG_NO_ROUTE,
    MSG_TOO_MANY,
    MagentoSimulatorError,
    WebapiError,
)
from catalogflow.testbench.magento.search import search
from catalogflow.testbench.magento.store import Store
from catalogflow.testbench.magento.writelog import WriteLogEntry
from catalogflow.testbench.serverthread import ServerThread, listen

__all__ = [
    "IntegrationCredentials",
    "MagentoSimConfig",
    "MagentoSimulator",
    "MagentoSimulatorError",
    "MagentoSimulatorThread",
    "Operation",
    "WebapiError",
    "WriteLogEntry",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8089
#: How often an idle consumer loop looks whether ``consumer_tick_s`` was switched on.
CONSUMER_IDLE_S = 0.1
_JSON = "application/json; charset=utf-8"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class MagentoSimulator:
    """The simulated shop on an aiohttp server in the running event loop.

    Seeding and inspection methods are thread-safe (one lock guards the state), so a
    test may call them from another thread while the server runs."""

    def __init__(
        self, config: MagentoSimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        config = config or MagentoSimConfig()
        config.check()
        self._store = Store(config, clock)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stats = {"requests": 0, "errors": 0, "in_flight": 0, "max_in_flight": 0}
        self._request_log: list[tuple[str, str]] = []
        self._consumer: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without ``/rest``, e.g. ``http://127.0.0.1:40123``."""
        if self._url is None:
            raise MagentoSimulatorError("the Magento simulator is not running")
        return self._url

    @property
    def config(self) -> MagentoSimConfig:
        return self._store.config

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = any free port); return the base URL."""
        if self._runner is not None:
            return self.url
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/rest/{tail:.*}", self._rest)
        app.router.add_get("/_sim/writes", self._sim_writes)
        app.router.add_post("/_sim/tick", self._sim_tick)
        app.router.add_post("/_sim/config", self._sim_config)
        app.router.add_post("/_sim/fault", self._sim_fault)
        app.router.add_post("/_sim/token", self._sim_token)
        try:
            self._runner, self._url = await listen(app, host, port)
        except OSError as exc:
            raise MagentoSimulatorError(f"cannot listen on {host}:{port}: {exc}") from exc
        log.info("Magento simulator listening at %s", self._url)
        self._consumer = asyncio.get_running_loop().create_task(self._consume())
        return self._url

    async def _consume(self) -> None:
        """The ``async.operations.all`` consumer, when ``consumer_tick_s`` asks for one;
        the setting is read each turn, so ``configure`` starts or stops it at runtime."""
        while True:
            interval = self.config.consumer_tick_s
            await asyncio.sleep(interval if interval > 0 else CONSUMER_IDLE_S)
            if self.config.consumer_tick_s > 0:
                self.tick_consumers()

    async def stop(self) -> None:
        """Stop listening; requests still sleeping (latency) are cancelled."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        for task in list(self._handlers):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner, self._url = None, None

    async def __aenter__(self) -> MagentoSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- seeding and inspection (thread-safe) -------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Apply setting changes now (unknown names or bad values raise)."""
        with self._store.lock:
            self._store.config = self._store.config.changed(**changes)

    def add_store(self, code: str, store_id: int) -> None:
        """Add a store view (``all`` = 0, ``default`` = 1 and ``de`` = 2 always exist)."""
        self._store.catalog.add_store(code, store_id)

    def add_attribute(
        self,
        code: str,
        frontend_input: str = "text",
        options: Sequence[str] = (),
        *,
        scope: str = "store",
        is_required: bool = False,
        store_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Add (or update) a product attribute; select/multiselect options get ids.
        ``store_labels`` localizes option labels, either ``{"de": {"Salmon": "Lachs"}}`` or
        ``{"Salmon": {"de": "Lachs"}}``."""
        self._store.catalog.add_attribute(
            code,
            frontend_input,
            options,
            scope=scope,
            is_required=is_required,
            store_labels=store_labels,
        )

    def add_product(
        self,
        sku: str,
        values: Mapping[str, Any],
        *,
        name: str | None = None,
        category_ids: Sequence[int] = (),
        store: str = "all",
    ) -> None:
        """Seed a product, or more values of one (at ``store``); not logged as a write.
        Select values may be labels; unknown codes become text attributes; a url_key is
        made from the name (suffixed with the SKU if taken)."""
        self._store.catalog.add_product(
            sku, values, name=name, category_ids=category_ids, store=store
        )

    def set_value(self, sku: str, store: str, attribute: str, value: Any) -> None:
        """An admin edit: store the value (``None`` restores inheritance) and bump
        ``updated_at``; not in the API write log."""
        self._store.catalog.set_value(sku, store, attribute, value)

    def value(self, sku: str, store: str, attribute: str) -> Any:
        """The value a read through ``store`` sees: its override, else the store-0 value."""
        return self._store.catalog.value(sku, store, attribute)

    def override(self, sku: str, store: str, attribute: str) -> Any | None:
        """Only ``store``'s own stored value; None when the value is inherited."""
        return self._store.catalog.override(sku, store, attribute)

    def option_id(self, attribute: str, label: str) -> str | None:
        """The option id of an admin label (case-insensitive), or None."""
        return self._store.catalog.option_id(attribute, label)

    def updated_at(self, sku: str) -> str:
        with self._store.lock:
            return self._store.catalog.seeded(sku).updated_at

    @property
    def writes(self) -> list[WriteLogEntry]:
        """Every product save made through the API, in order (a copy)."""
        return self._store.write_log.entries()

    def reset_writes(self) -> None:
        self._store.write_log.clear()

    def issue_integration(self, name: str = "catalogflow") -> IntegrationCredentials:
        """Activate integration ``name`` (once; later calls return the same credentials):
        its consumer key/secret and access token/secret, for OAuth 1.0a signing."""
        return self._store.auth.issue_integration(name)

    def issue_integration_token(self, name: str = "catalogflow") -> str:
        """The access token of integration ``name`` (activated on first use; it never
        expires). As a Bearer token it works only with ``integration_bearer_enabled``."""
        return self._store.auth.issue_integration(name).access_token

    def add_admin_user(self, username: str, password: str) -> None:
        self._store.auth.add_admin_user(username, password)

    def expire_admin_tokens(self) -> None:
        """Make every admin token issued so far expired (the 4 h passed)."""
        self._store.auth.expire_admin_tokens()

    def inject(
        self,
        fault: Literal["429", "500", "deadlock", "lock_wait", "latency"],
        count: int = 1,
        *,
        path_contains: str = "",
        seconds: float = 0.0,
        method: str = "",
    ) -> None:
        """Serve ``fault`` to the next ``count`` matching requests (saves, for deadlock and
        lock_wait). ``seconds``: the delay of ``latency``, the Retry-After of ``429``.
        ``method`` (``PUT``) limits it to one HTTP method: with ``path_contains=
        "/rest/all/"`` only global saves fail, while reads and store-view saves go on."""
        self._store.faults.inject(str(fault), count, path_contains, seconds, method)

    def clear_faults(self) -> None:
        """Drop every injected fault not yet served."""
        self._store.faults.clear()

    @property
    def stats(self) -> dict[str, int]:
        """``/rest`` requests served: ``requests``, ``errors`` (non-2xx answers),
        ``in_flight`` and ``max_in_flight`` (the most at once: a client's concurrency)."""
        return dict(self._stats)

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """Every ``/rest`` request served so far as (method, path), in order (a copy)."""
        with self._store.lock:
            return list(self._request_log)

    def reset_stats(self) -> None:
        """Count from zero again; the request log starts empty too."""
        self._stats.update(requests=0, errors=0, max_in_flight=self._stats["in_flight"])
        with self._store.lock:
            self._request_log.clear()

    @property
    def bulk_operations(self) -> list[Operation]:
        """Every async/bulk operation accepted so far, oldest first, with its status."""
        return self._store.bulks.operations()

    def tick_consumers(self) -> int:
        """Process every open async/bulk operation; return how many were processed."""
        return self._store.bulks.tick()

    # -- the REST handler ----------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        stats = self._stats
        stats["requests"] += 1
        with self._store.lock:
            self._request_log.append((request.method, request.path))
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            return await self._serve(request)
        except WebapiError as exc:
            stats["errors"] += 1
            return self._error(exc)
        except (asyncio.CancelledError, web.HTTPException):
            raise
        except Exception as exc:  # Magento masks what it did not expect
            stats["errors"] += 1
            report = f"webapi-{uuid.uuid4().hex[:13]}"
            log.exception("Magento simulator: unexpected error (report %s)", report)
            if self._store.config.developer_mode:
                return self._error(WebapiError(500, str(exc) or type(exc).__name__))
            return self._error(WebapiError(500, MSG_INTERNAL.replace("%1", report)))
        finally:
            stats["in_flight"] -= 1
            if task is not None:
                self._handlers.discard(task)

    def _error(self, exc: WebapiError) -> web.Response:
        body = exc.body(self._store.config.developer_mode)
        return web.json_response(body, status=exc.status, headers=exc.headers, dumps=_dumps)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        shop = self._store
        catalog = shop.catalog
        path = request.path
        delay = shop.config.latency_s
        fault = shop.faults.take({"429", "500", "latency"}, path, method=request.method)
        if fault is not None and fault.kind == "latency":
            delay += fault.seconds
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind == "429":
            headers = {"Retry-After": str(max(1, round(fault.seconds)))} if fault.seconds else {}
            raise WebapiError(
                429,
                MSG_TOO_MANY,
                headers=headers,
                raw_body={"message": MSG_TOO_MANY, "trace": None},
            )
        if fault is not None and fault.kind == "500":
            report = f"webapi-{uuid.uuid4().hex[:13]}"
            if shop.config.developer_mode:
                raise WebapiError(500, "Simulated internal error (report %1)", [report])
            raise WebapiError(500, MSG_INTERNAL.replace("%1", report))

        raw = request.rel_url.raw_path.split("/")[2:]  # after "", "rest"
        segments = [unquote(s) for s in raw]
        store = "default"
        if segments and segments[0] in catalog.stores:
            store = segments.pop(0)
        mode = "sync"
        if segments[:2] == ["async", "bulk"]:
            mode, segments = "bulk", segments[2:]
        elif segments[:1] == ["async"]:
            mode, segments = "async", segments[1:]
        if segments[:1] != ["V1"]:
            raise WebapiError(404, MSG_NO_ROUTE)
        route = segments[1:]
        method = request.method
        store_id = catalog.stores[store]

        if mode != "sync":
            return await self._async(request, method, route, store, mode)
        if method == "POST" and route == ["integration", "admin", "token"]:
            token = shop.auth.admin_token(await self._body(request))
            return web.json_response(token, content_type="application/json", dumps=_dumps)
        if route[:1] == ["products"]:
            if len(route) >= 3 and route[1] == "attributes":
                self._auth(request, ATTRIBUTES_ACL)
                code = route[2]
                if len(route) == 3 and method == "GET":
                    return self._json(catalog.attribute_json(code, store_id))
                if route[3:] == ["options"] and method == "GET":
                    return self._json(catalog.options_json(code, store_id))
                if route[3:] == ["options"] and method == "POST":
                    return self._json(catalog.add_option(code, await self._body(request)))
                raise WebapiError(404, MSG_NO_ROUTE)
            if len(route) > 2:
                raise WebapiError(404, MSG_NO_ROUTE)
            self._auth(request, PRODUCTS_ACL)
            sku = route[1] if len(route) == 2 else None
            if method == "GET" and sku is None:
                return self._json(search(catalog, store_id, request.query.items()))
            if method == "GET" and sku is not None:
                return self._json(catalog.get_json(sku, store_id))
            if (method == "POST" and sku is None) or (method == "PUT" and sku is not None):
                body = await self._body(request)
                return self._json(
                    catalog.save(method=method, path=path, store=store, path_sku=sku, body=body)
                )
            if method == "DELETE" and sku is not None:
                catalog.delete(sku)
                return self._json(True)
            raise WebapiError(404, MSG_NO_ROUTE)
        if route[:1] == ["bulk"] and method == "GET" and len(route) >= 3:
            self._auth(request, BULK_ACL)
            if route[2:] == ["status"]:
                return self._json(shop.bulks.bulk_status(route[1], detailed=False))
            if route[2:] == ["detailed-status"]:
                return self._json(shop.bulks.bulk_status(route[1], detailed=True))
            if len(route) == 4 and route[2] == "operation-status" and route[3].isdigit():
                return self._json(shop.bulks.operation_count(route[1], int(route[3])))
        raise WebapiError(404, MSG_NO_ROUTE)

    async def _async(
        self, request: web.Request, method: str, route: list[str], store: str, mode: str
    ) -> web.Response:
        if route[:1] != ["products"] or len(route) > 2:
            raise WebapiError(404, MSG_NO_ROUTE)
        sku = route[1] if len(route) == 2 else None
        items: list[tuple[str | None, Any]]
        if mode == "async":
            if not ((method == "POST" and sku is None) or (method == "PUT" and sku is not None)):
                raise WebapiError(404, MSG_NO_ROUTE)
            caller = self._auth(request, PRODUCTS_ACL)
            items = [(sku, await self._body(request))]
        else:
            if not ((method == "POST" and sku is None) or (method == "PUT" and sku == "bySku")):
                raise WebapiError(404, MSG_NO_ROUTE)
            caller = self._auth(request, PRODUCTS_ACL)
            body = await self._body(request)
            if not isinstance(body, list):
                raise WebapiError(400, "Request body is expected to be an array of entities.")
            items = []
            for item in body:
                if method == "PUT":
                    if not isinstance(item, dict) or not item.get("sku"):
                        raise WebapiError(
                            400,
                            '"%fieldName" is required. Enter and try again.',
                            {"fieldName": "sku"},
                        )
                    rest = {k: v for k, v in item.items() if k != "sku"}
                    items.append((str(item["sku"]), rest))
                else:
                    items.append((None, item))
        result = self._store.bulks.enqueue(
            method=method, path=request.path, store=store, items=items, caller=caller
        )
        return web.json_response(result, status=202, dumps=_dumps)

    def _auth(self, request: web.Request, resource: str) -> Caller:
        raw = request.rel_url.raw_path
        base_url = f"{request.scheme}://{request.host.lower()}{raw}"
        return self._store.auth.authenticate(
            request.headers.get("Authorization"),
            resource,
            method=request.method,
            base_url=base_url,
            query=list(request.query.items()),
        )

    @staticmethod
    def _json(value: Any) -> web.Response:
        return web.json_response(value, content_type="application/json", dumps=_dumps)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        text = await request.text()
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise WebapiError(400, "Decoding error: \nSyntax error") from None

    # -- control routes --------------------------------------------------------------------

    async def _sim_writes(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(w) for w in self.writes], dumps=_dumps)

    async def _sim_tick(self, request: web.Request) -> web.Response:
        return web.json_response({"processed": self.tick_consumers()})

    async def _sim_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise MagentoSimulatorError("the body must be a JSON object of settings")
            self.configure(**changes)
        except (ValueError, TypeError, MagentoSimulatorError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response(asdict(self.config))

    async def _sim_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.inject(
                body["fault"],
                int(body.get("count", 1)),
                path_contains=str(body.get("path_contains", "")),
                seconds=float(body.get("seconds", 0.0)),
                method=str(body.get("method", "")),
            )
        except (ValueError, TypeError, KeyError, MagentoSimulatorError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response(True)

    async def _sim_token(self, request: web.Request) -> web.Response:
        return web.json_response(self.issue_integration_token())


# -- running it in a thread ---------------------------------------------------------------


class MagentoSimulatorThread(ServerThread):
    """Runs a ``MagentoSimulator`` on its own event loop in a background thread::

    with MagentoSimulatorThread() as thread:
        thread.simulator.add_product("SKU-1", {"price": 9.5}, name="Cat food")
        token = thread.simulator.issue_integration_token()
        requests_against(thread.url, token)
        assert thread.simulator.writes == [...]
    """

    not_running = MagentoSimulatorError

    def __init__(
        self,
        config: MagentoSimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.simulator = MagentoSimulator(config, clock=clock)
        super().__init__(self.simulator, host, port, "magento-simulator")


# -- the command line ---------------------------------------------------------------------


def seed_sample(simulator: MagentoSimulator, count: int, seed: int = 7) -> None:
    """Load ``count`` products of the sample pet-food catalog, plus the flavor and
    lifecycle select attributes (empty on every product, with German option labels)."""
    from catalogflow.connectors.sample_catalog import CATEGORIES, sample_changes

    simulator.add_attribute("brand", "text", scope="global")
    simulator.add_attribute(
        "flavor",
        "select",
        ("Chicken", "Salmon", "Tuna", "Beef", "Turkey", "Lamb"),
        scope="global",
        store_labels={
            "de": {
                "Chicken": "Huhn",
                "Salmon": "Lachs",
                "Tuna": "Thunfisch",
                "Beef": "Rind",
                "Turkey": "Truthahn",
                "Lamb": "Lamm",
            }
        },
    )
    simulator.add_attribute(
        "lifecycle",
        "select",
        ("Kitten", "Adult", "Senior"),
        scope="global",
        store_labels={"de": {"Kitten": "Kätzchen", "Adult": "Erwachsen", "Senior": "Senior"}},
    )
    for change in sample_changes(count, seed=seed):
        values = {v["attribute"]: v["value"] for v in change["values"]}
        weight = values.pop("weight_kg", None)
        if weight is not None:
            values["weight"] = weight
        paths = change["categories"] or []
        categories = [CATEGORIES.index(c) + 3 for c in paths if c in CATEGORIES]
        simulator.add_product(change["sku"], values, category_ids=categories)


def run_magento_simulator(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM, consuming async operations every
    ``--consumer-tick`` seconds; exit 0."""
    config = MagentoSimConfig(
        consumer_tick_s=args.consumer_tick,
        integration_bearer_enabled=not args.bearer_disabled,
        store_save_mode=args.store_save_mode,
        latency_s=args.latency,
        two_factor_auth=args.two_factor_auth,
        limit_mode=args.limit_mode,
        developer_mode=args.developer_mode,
    )

    async def serve() -> None:
        simulator = MagentoSimulator(config)
        if args.seed_sample:
            seed_sample(simulator, args.seed_sample)
        if args.admin_user:
            username, _, password = args.admin_user.partition(":")
            simulator.add_admin_user(username, password)
        credentials = simulator.issue_integration()
        token = credentials.access_token
        url = await simulator.start(args.host, args.port)
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(
            f"Magento simulator at {url} (REST base {url}/rest/<store>/V1); "
            f"integration token {token}; Ctrl-C stops",
            flush=True,
        )
        print(
            f"OAuth 1.0a: consumer key {credentials.consumer_key}, consumer secret "
            f"{credentials.consumer_secret}, access token secret "
            f"{credentials.access_token_secret}",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await simulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def add_magento_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``catalogflow simulator magento``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--bearer-disabled",
        action="store_true",
        help="refuse integration tokens as Bearer (Magento 2.4.4+ default): 401",
    )
    parser.add_argument(
        "--store-save-mode",
        choices=("clean", "legacy_copy"),
        default="clean",
        help="legacy_copy: a store-view save copies every store-scoped value into the view",
    )
    parser.add_argument(
        "--seed-sample", type=int, default=0, metavar="N", help="load N sample products"
    )
    parser.add_argument(
        "--admin-user",
        metavar="USER:PASSWORD",
        help="an admin login for /V1/integration/admin/token",
    )
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="per request")
    parser.add_argument("--two-factor-auth", action="store_true", help="admin tokens need 2FA")
    parser.add_argument(
        "--limit-mode", action="store_true", help="input limits on (pageSize <= 300, 20 items)"
    )
    parser.add_argument("--developer-mode", action="store_true", help="error bodies carry a trace")
    parser.add_argument(
        "--consumer-tick",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="run the async.operations.all consumer this often (default 1; 0: never, so "
        "bulk operations stay open)",
    )
    parser.set_defaults(run=run_magento_simulator)
