"""The Magento 2 REST client: authentication, store scopes, paging, retries, errors.

URLs are ``<base>/rest/<store>/V1/<endpoint>``: ``all`` is the global (admin) scope,
a store view code (``de``) one store view. ``/rest/V1`` (no code) would be the default
store view, not the global scope, so the client always names the scope.

Auth (``MagentoConfig.auth``):

* ``integration``: the integration access token as ``Authorization: Bearer``. Since
  Magento 2.4.4 this works only when the shop allows it (Stores > Configuration >
  Services > OAuth > Consumer Settings); otherwise every call is a 401 that looks like a
  missing ACL grant, and the :class:`MagentoError` says which setting to change;
* ``admin``: an admin token from ``POST /rest/V1/integration/admin/token``, fetched on
  first use and fetched again (once per call) when Magento answers 401, as it does for
  an expired token;
* ``oauth1``: every request signed with OAuth 1.0a HMAC-SHA256 with the integration's
  four credentials.

Retries follow the shared :class:`~catalogflow.connectors.retry.RetryPolicy`, built
from the config's ``max_attempts``, ``backoff``, ``backoff_cap`` and ``max_retry_after``:
5xx, 429 (waiting out ``Retry-After`` up to ``max_retry_after``), the deadlock /
lock-wait 400s of ``ProductRepository::save`` and connection errors are tried again up
to ``max_attempts`` in all, with exponential backoff and jitter. Every failure leaves as
:class:`MagentoError` with a category; no aiohttp exception escapes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import aiohttp
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.errors import ErrorCategory, MagentoError, render_message
from catalogflow.connectors.retry import Decision, Outcome, RetryPolicy
from catalogflow.streams.clock import Clock, SystemClock
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.sync import MAGENTO_REQUEST_SECONDS
from catalogflow.streams.settings import Secret
from catalogflow.streams.sync import GLOBAL_SCOPE
from yarl import URL

log = logging.getLogger(__name__)

#: Product fields that are top-level keys of the product JSON; everything else is a
#: ``custom_attributes`` entry.
TOP_LEVEL_FIELDS: Final = frozenset({"name", "price", "status", "visibility", "weight"})
#: Statuses besides 5xx worth another attempt: Magento sends no 408 or 409 a retry cures.
RETRY_STATUSES: Final = frozenset({429})
#: Messages of ``ProductRepository::save`` that a later attempt can get past.
RETRYABLE_400: Final = (
    "database deadlock found",
    "database lock wait timeout exceeded",
    "database connection error",
)
URL_KEY_TAKEN: Final = "url key for specified store already exists"
MISSING_REQUIRED: Final = (
    "attribute value is empty",
    "is required. enter and try again",
    "doesn't have a value set",
)
OPTION_PROBLEMS: Final = ("doesn't work with options", "attribute option label")
OPTION_EXISTS: Final = "already exists"
MAX_PAGE_SIZE: Final = 300  # Magento's limit when input limits are on
MAX_CUSTOM_ATTRIBUTES: Final = 20  # per request, with input limits on
BEARER_SETTING: Final = (
    "Stores > Configuration > Services > OAuth > Consumer Settings > Allow OAuth Access "
    "Tokens to be used as standalone Bearer tokens"
)

Json = Any
#: How a request that got no answer (connection error, timeout) failed.
_NO_ANSWER: Final = Outcome()


def retry_policy(config: MagentoConfig) -> RetryPolicy:
    """The retry policy of every call to this Magento, from the config's knobs."""
    return RetryPolicy(
        max_attempts=config.max_attempts,
        backoff_s=config.backoff,
        backoff_cap_s=config.backoff_cap,
        max_retry_after_s=config.max_retry_after,
        retry_statuses=RETRY_STATUSES,
    )


class MagentoClient:
    """One Magento instance over REST. Use as ``async with MagentoClient(config) as c``.

    At most ``config.concurrency`` requests are in flight at once (retries' waits do not
    hold a slot). ``clock`` (where retries wait) and ``rng`` (their jitter) make backoff
    observable in tests.
    """

    def __init__(
        self,
        config: MagentoConfig,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._policy = retry_policy(config)
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(config.concurrency)
        self._admin_token: Secret | None = None
        self._login_lock = asyncio.Lock()
        self._option_locks: dict[str, asyncio.Lock] = {}
        #: One load at a time per cached thing, so writes that miss it together (a bulk
        #: run starts many) ask Magento once.
        self._load_locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self._attributes: dict[str, dict[str, Any]] = {}
        self._no_attributes: dict[str, str] = {}  # code → Magento's 404 message
        self._options: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.requests = 0  # HTTP requests sent, retries included
        self.retries = 0

    async def __aenter__(self) -> MagentoClient:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=self.config.timeout, connect=self.config.connect_timeout
            )
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._session

    # -- products ------------------------------------------------------------------------

    async def get_product(self, sku: str, store: str = GLOBAL_SCOPE) -> dict[str, Any]:
        """The product as Magento resolves it in ``store`` (store value or fallback)."""
        product = await self.call("GET", store, f"products/{_segment(sku)}")
        if not isinstance(product, dict):
            raise MagentoError("OTHER", f"GET product {sku}: Magento answered {type(product)}")
        return product

    async def iter_products(
        self,
        store: str = GLOBAL_SCOPE,
        updated_since: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every product (changed at or after ``updated_since``), oldest change first.

        Stops when ``current_page * page_size >= total_count``, never on an empty page:
        older Magento versions clamp a page past the end to the last one.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise MagentoError("OTHER", f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        criteria: list[tuple[str, str]] = []
        if updated_since is not None:
            stamp = updated_since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            group = "searchCriteria[filter_groups][0][filters][0]"
            criteria += [
                (f"{group}[field]", "updated_at"),
                (f"{group}[value]", stamp),
                (f"{group}[condition_type]", "gteq"),
            ]
        criteria += [
            ("searchCriteria[sortOrders][0][field]", "updated_at"),
            ("searchCriteria[sortOrders][0][direction]", "ASC"),
            ("searchCriteria[sortOrders][1][field]", "entity_id"),
            ("searchCriteria[sortOrders][1][direction]", "ASC"),
            ("searchCriteria[pageSize]", str(page_size)),
        ]
        page = 1
        while True:
            answer = await self.call(
                "GET",
                store,
                "products",
                params=[*criteria, ("searchCriteria[currentPage]", str(page))],
            )
            if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
                raise MagentoError("OTHER", "GET products: the answer has no items list")
            for item in answer["items"]:
                yield item
            total = int(answer.get("total_count") or 0)
            if page * page_size >= total or not answer["items"]:
                return
            page += 1

    async def save_fields(self, sku: str, store: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """PUT only ``values`` (already in Magento's form: option ids, strings) to
        ``store``. Never a read-modify-write of the whole product: a store-view save of
        untouched fields would make them store values (Magento issues #8897, #9186).

        One PUT, unless there are more than 20 custom attributes: Magento's input limits
        refuse more in one request, so they go in further PUTs. Returns the saved product.
        """
        saved: Json = None
        for product in product_bodies(sku, values):
            saved = await self.call(
                "PUT", store, f"products/{_segment(sku)}", body={"product": product}
            )
        return saved if isinstance(saved, dict) else {}

    # -- attributes and options ----------------------------------------------------------

    async def attribute(self, code: str) -> dict[str, Any]:
        """Attribute metadata (``frontend_input``, ``scope``…), cached for the client's life,
        and so is a 404 (a product field that is no EAV attribute, such as
        ``category_ids`` on some versions, is asked about on every store-view write)."""
        if code not in self._attributes:
            async with self._load_locks.setdefault(("attribute", code), asyncio.Lock()):
                await self._load_attribute(code)
        return self._attributes[code]

    async def _load_attribute(self, code: str) -> None:
        if code in self._no_attributes:
            raise MagentoError("OTHER", self._no_attributes[code], status=404)
        if code in self._attributes:
            return  # loaded while this call waited for the lock
        try:
            data = await self.call("GET", GLOBAL_SCOPE, f"products/attributes/{_segment(code)}")
        except MagentoError as exc:
            if exc.status == 404:
                self._no_attributes[code] = exc.message
            raise
        if not isinstance(data, dict):
            raise MagentoError("OTHER", f"GET attribute {code}: unexpected answer")
        self._attributes[code] = data

    async def options(self, code: str, store: str = GLOBAL_SCOPE) -> list[dict[str, str]]:
        """``[{label, value}]`` of a select/multiselect attribute, labels as ``store``
        shows them, without Magento's leading empty option. Cached until an option is
        created through this client."""
        key = (code, store)
        if key in self._options:
            return self._options[key]
        async with self._load_locks.setdefault(("options", code, store), asyncio.Lock()):
            if key not in self._options:  # else loaded while this call waited
                data = await self.call(
                    "GET", store, f"products/attributes/{_segment(code)}/options"
                )
                if not isinstance(data, list):
                    raise MagentoError("OTHER", f"GET options of {code}: unexpected answer")
                self._options[key] = [
                    {"label": str(o.get("label", "")), "value": str(o.get("value", ""))}
                    for o in data
                    if isinstance(o, dict) and str(o.get("value", "")) != ""
                ]
            return self._options[key]

    async def create_option(self, code: str, label: str) -> str:
        """Add ``label`` to a select/multiselect attribute; return its option id.

        Serialised per attribute (two workers adding the same label would race), and an
        "already exists" answer counts as success: the id is looked up by label.
        """
        lock = self._option_locks.setdefault(code, asyncio.Lock())
        async with lock:
            self.forget_options(code)
            existing = _find_label(await self.options(code), label)
            if existing is not None:
                return existing
            try:
                answer = await self.call(
                    "POST",
                    GLOBAL_SCOPE,
                    f"products/attributes/{_segment(code)}/options",
                    body={"option": {"label": label, "is_default": False}},
                )
            except MagentoError as exc:
                if OPTION_EXISTS not in exc.message.lower():
                    raise
                answer = None
            self.forget_options(code)
            if isinstance(answer, str) and answer.isdigit():
                return answer
            # Older versions answer true or "id_new_option": look the label up.
            found = _find_label(await self.options(code), label)
            if found is None:
                raise MagentoError(
                    "INVALID_OPTION_VALUE",
                    f"option {label!r} of attribute {code} was created but cannot be found",
                )
            return found

    def forget_options(self, code: str) -> None:
        """Drop the cached options of ``code``: the next :meth:`options` reads them again."""
        for key in [k for k in self._options if k[0] == code]:
            del self._options[key]

    # -- HTTP ------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        store: str | None,
        endpoint: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Json = None,
        api: str = "V1",
        resend_unanswered: bool = True,
    ) -> Json:
        """One REST call with auth, retries and error wrapping; the decoded JSON answer.

        ``store`` None leaves the code out of the URL (the token endpoint only); ``api``
        is what comes before the endpoint (``async/bulk/V1`` for bulk operations).
        ``resend_unanswered=False``: a request that may have reached Magento but got no
        answer (a timeout, a dropped connection) is not sent again, for a call Magento
        would carry out twice (a bulk submission); one that never connected still is."""
        what = f"{method} {_scope_path(store, endpoint, api)}"
        url = self._url(store, endpoint, params, api)
        data = None if body is None else json.dumps(body).encode()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            token_used = await self._authorize(headers, method, url, store)
            try:
                status, answer_headers, text = await self._send(method, url, headers, data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = _connection_reason(exc)
                if not resend_unanswered and not isinstance(exc, aiohttp.ClientConnectorError):
                    raise MagentoError(
                        "CONNECTION",
                        f"{what}: no answer from Magento at {self.config.base_url} ({reason}); "
                        "not sent again, since Magento may have taken it",
                        retryable=True,
                    ) from exc
                decision = self._decide(attempt, _NO_ANSWER)
                if decision.retry:
                    await self._wait(decision, f"{what}: {reason}")
                    continue
                raise MagentoError(
                    "CONNECTION",
                    f"{what}: cannot reach Magento at {self.config.base_url} ({reason}) "
                    f"after {attempt} attempts",
                    retryable=True,
                ) from exc
            if status < 300:
                return _decode(text, what)
            message = self._message(text, status)
            if (
                status == 401
                and self.config.auth == "admin"
                and not refreshed
                and store is not None
            ):
                refreshed = True  # an admin token expires after 4 h: log in again, once
                await self._refresh_admin_token(token_used)
                attempt -= 1
                continue
            outcome = Outcome(status, answer_headers, transient=_is_lock_error(status, message))
            decision = self._decide(attempt, outcome)
            if decision.why == "wait_too_long":
                raise MagentoError(
                    "CONNECTION",
                    f"{what}: Magento answered {status} and asks to wait "
                    f"{decision.wait_s:.0f} s (Retry-After) before the next attempt",
                    status=status,
                    retryable=True,
                )
            if decision.retry:
                await self._wait(decision, f"{what}: {status} {message}")
                continue
            raise self._error(what, status, message, attempts=attempt)

    def _url(
        self, store: str | None, endpoint: str, params: Sequence[tuple[str, str]], api: str
    ) -> URL:
        path = f"{self.config.base_url}{_scope_path(store, endpoint, api)}"
        if params:
            path += "?" + urllib.parse.urlencode(list(params), quote_via=urllib.parse.quote)
        return URL(path, encoded=True)

    async def _send(
        self, method: str, url: URL, headers: dict[str, str], data: bytes | None
    ) -> tuple[int, Mapping[str, str], str]:
        session = self._open()
        async with self._slots:
            self.requests += 1
            sent = self._clock.monotonic()
            try:
                async with session.request(method, url, headers=headers, data=data) as response:
                    return response.status, response.headers, await response.text()
            finally:  # every request, answered or not: a slow or failing shop shows
                seconds = self._clock.monotonic() - sent
                metrics().observe(MAGENTO_REQUEST_SECONDS, seconds, method=method)

    def _decide(self, attempt: int, outcome: Outcome) -> Decision:
        return self._policy.decide(attempt, outcome, self._rng, self._clock.now())

    async def _wait(self, decision: Decision, why: str) -> None:
        """Wait before the next attempt, as long as the retry policy decided."""
        self.retries += 1
        asked = " as Retry-After asks" if decision.asked_s is not None else ""
        log.info("%s; retrying in %.2f s%s", why, decision.wait_s, asked)
        await self._clock.sleep(decision.wait_s)

    def _message(self, text: str, status: int) -> str:
        """Magento's error phrase rendered with its parameters, secrets scrubbed."""
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = render_message(body["message"], body.get("parameters"))
            errors = body.get("errors")
            if isinstance(errors, list):
                details = [
                    render_message(e["message"], e.get("parameters"))
                    for e in errors
                    if isinstance(e, dict) and isinstance(e.get("message"), str)
                ]
                if details:
                    message += " (" + "; ".join(details) + ")"
        else:
            message = " ".join(text.split())[:200] or f"HTTP {status}"
        return self.scrub(message)

    def scrub(self, text: str) -> str:
        """``text`` from Magento with every secret of the config replaced by ``***``."""
        for secret in self.config.secrets():
            text = text.replace(secret, "***")
        return text

    def _error(self, what: str, status: int, message: str, *, attempts: int) -> MagentoError:
        if status in (401, 403):
            return MagentoError("AUTH", self._auth_problem(what, status, message), status=status)
        category, retryable = error_category(status, message)
        if retryable:
            message = f"{message} (after {attempts} attempts)"
        return MagentoError(
            category,
            f"{what}: Magento answered {status}: {message}",
            status=status,
            retryable=retryable,
        )

    def _auth_problem(self, what: str, status: int, message: str) -> str:
        text = f"{what}: Magento refused the credentials ({status}: {message})"
        auth = self.config.auth
        if auth == "integration":
            return (
                f"{text}. An integration access token is accepted as a Bearer token only when "
                f"{BEARER_SETTING} = Yes (bin/magento config:set "
                "oauth/consumer/enable_integration_as_bearer 1), off by default since Magento "
                "2.4.4; also check the integration's API resources and the token in "
                f"${self.config.token_env}. Or let catalogflow log in as an admin user "
                "instead: magento_auth=admin with magento_username and "
                f"${self.config.password_env}"
            )
        if auth == "admin":
            return (
                f"{text}; check magento_username={self.config.username!r}, the password in "
                f"${self.config.password_env} and the user's role resources"
            )
        return f"{text}; check the integration's four OAuth credentials and its API resources"

    # -- auth ------------------------------------------------------------------------------

    async def _authorize(
        self, headers: dict[str, str], method: str, url: URL, store: str | None
    ) -> Secret | None:
        """Add the Authorization header; return the admin token used (for refresh)."""
        config = self.config
        if store is None:  # the token endpoint itself
            return None
        if config.auth == "integration":
            headers["Authorization"] = f"Bearer {config.token.reveal()}"
            return None
        if config.auth == "oauth1":
            headers["Authorization"] = oauth1_header(
                method,
                url,
                consumer_key=config.consumer_key.reveal(),
                consumer_secret=config.consumer_secret.reveal(),
                token=config.token.reveal(),
                token_secret=config.token_secret.reveal(),
            )
            return None
        token = self._admin_token
        if token is None:
            token = await self._refresh_admin_token(None)
        headers["Authorization"] = f"Bearer {token.reveal()}"
        return token

    async def _refresh_admin_token(self, stale: Secret | None) -> Secret:
        """A fresh admin token, unless another call already replaced ``stale``."""
        async with self._login_lock:
            current = self._admin_token
            if current is not None and current is not stale:
                return current
            self._admin_token = None
            answer = await self.call(
                "POST",
                None,
                "integration/admin/token",
                body={"username": self.config.username, "password": self.config.password.reveal()},
            )
            if not isinstance(answer, str) or not answer:
                raise MagentoError("AUTH", "admin token endpoint did not answer with a token")
            self._admin_token = Secret(answer)
            return self._admin_token


def product_bodies(sku: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``product`` bodies that save ``values`` (Magento's form) on ``sku``: one,
    unless there are more than :data:`MAX_CUSTOM_ATTRIBUTES` custom attributes, which
    Magento's input limits refuse in one request; saved one after the other."""
    top = {code: value for code, value in values.items() if code in TOP_LEVEL_FIELDS}
    custom = [
        {"attribute_code": code, "value": value}
        for code, value in values.items()
        if code not in TOP_LEVEL_FIELDS
    ]
    chunks = [
        custom[i : i + MAX_CUSTOM_ATTRIBUTES] for i in range(0, len(custom), MAX_CUSTOM_ATTRIBUTES)
    ] or [[]]
    bodies: list[dict[str, Any]] = []
    for number, chunk in enumerate(chunks):
        product: dict[str, Any] = {"sku": sku, **(top if number == 0 else {})}
        if chunk:
            product["custom_attributes"] = chunk
        bodies.append(product)
    return bodies


def error_category(status: int, message: str) -> tuple[ErrorCategory, bool]:
    """The category of a refused save (not 401/403) and whether a later try may pass,
    from Magento's status and message; the bulk operations' failures use it too, so a
    value refused in a bulk is reported as a single save's refusal would be."""
    lowered = message.lower()
    if status == 429 or status >= 500 or any(m in lowered for m in RETRYABLE_400):
        return "CONNECTION", True
    if URL_KEY_TAKEN in lowered:
        return "DUPLICATE_URL_KEY", False
    if any(m in lowered for m in MISSING_REQUIRED):
        return "MISSING_REQUIRED_ATTRIBUTE", False
    if any(m in lowered for m in OPTION_PROBLEMS):
        return "INVALID_OPTION_VALUE", False
    return "OTHER", False


def oauth1_header(
    method: str,
    url: URL,
    *,
    consumer_key: str,
    consumer_secret: str,
    token: str,
    token_secret: str,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    """``Authorization: OAuth …`` for one request, signed with HMAC-SHA256 (RFC 5849
    §3.4; the JSON body is not part of the signature base string)."""
    oauth = {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "oauth_token": token,
        "oauth_version": "1.0",
    }
    query = [(k, v) for k, v in url.query.items()]
    pairs = sorted((_pct(k), _pct(v)) for k, v in [*query, *oauth.items()])
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base_url = str(url.with_query(None).with_fragment(None))
    base = "&".join(_pct(part) for part in (method.upper(), base_url, normalized))
    key = f"{_pct(consumer_secret)}&{_pct(token_secret)}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
    oauth["oauth_signature"] = base64.b64encode(digest).decode()
    return "OAuth " + ",".join(f'{k}="{_pct(v)}"' for k, v in oauth.items())


def _pct(text: str) -> str:
    return urllib.parse.quote(text, safe="~-._")


def _segment(value: str) -> str:
    """A path segment: SKUs may hold slashes and spaces."""
    return urllib.parse.quote(value, safe="")


def _scope_path(store: str | None, endpoint: str, api: str = "V1") -> str:
    return f"/rest/{api}/{endpoint}" if store is None else f"/rest/{store}/{api}/{endpoint}"


def _decode(text: str, what: str) -> Json:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MagentoError("OTHER", f"{what}: the answer is not JSON: {text[:80]!r}") from exc


def _is_lock_error(status: int, message: str) -> bool:
    """A deadlock or lock-wait 400 of ``ProductRepository::save``: the next save may pass."""
    return status == 400 and any(m in message.lower() for m in RETRYABLE_400)


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:200]


def _find_label(options: Sequence[Mapping[str, str]], label: str) -> str | None:
    """Option id by label; Magento compares admin labels case-insensitively."""
    wanted = label.strip().casefold()
    for option in options:
        if option["label"].strip().casefold() == wanted:
            return option["value"]
    return None
