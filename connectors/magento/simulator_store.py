"""The Magento simulator's state: stores, EAV attributes, products, tokens, bulk operations.

Everything here is synchronous and guarded by one re-entrant lock, so the aiohttp handlers
(on the simulator's loop) and the seeding/inspection calls of a test (on another thread)
can both use it. ``MagentoError`` is a Magento webapi error: the raw phrase with its
``%1``/``%name`` placeholders, plus ``parameters`` (a list for positional placeholders, an
object for named ones), rendered by ``MagentoError.body`` as Magento's ErrorProcessor does.

Scopes follow Magento's EAV model: store 0 (``all``, the admin/global scope) holds the
default values; each store view (``default`` = 1, ``de`` = 2, ...) may hold overrides of
store-scoped attributes, and a read through a store view resolves override -> store 0.
Store views do not fall back to each other (``de`` never sees a ``default`` override).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from urllib.parse import quote, unquote

from catalogflow.streams.errors import CatalogflowError

StoreSaveMode = Literal["clean", "legacy_copy"]
FaultName = Literal["429", "500", "deadlock", "lock_wait", "latency"]
FAULT_NAMES: frozenset[str] = frozenset(get_args(FaultName))

PRODUCTS_ACL = "Magento_Catalog::products"
ATTRIBUTES_ACL = "Magento_Catalog::attributes_attributes"
BULK_ACL = "Magento_Logging::system_magento_logging_bulk_operations"

MAX_PAGE_SIZE = 300  # webapi/validation/maximum_page_size, with input limits on
LIMITED_DEFAULT_PAGE_SIZE = 20  # webapi/validation/default_page_size
ARRAY_LIMIT = 20  # webapi/validation/complex_array_limit (sync requests)
ASYNC_ARRAY_LIMIT = 5000
SKU_MAX_LENGTH = 64

STATUS_COMPLETE, STATUS_RETRIABLY_FAILED, STATUS_NOT_RETRIABLY_FAILED = 1, 2, 3
STATUS_OPEN, STATUS_REJECTED = 4, 5
SUCCESS_MESSAGE = (
    "Service execution success Magento\\Catalog\\Model\\ProductRepository\\Interceptor::save"
)

MSG_UNAUTHORIZED = "The consumer isn't authorized to access %resources."
MSG_SIGN_IN = (
    "The account sign-in was incorrect or your account is disabled temporarily. "
    "Please wait and try again later."
)
MSG_2FA = "Please use the 2fa provider-specific endpoints to obtain a token."
MSG_NO_PRODUCT = "The product that was requested doesn't exist. Verify the product and try again."
MSG_REQUIRED_FIELD = '"%fieldName" is required. Enter and try again.'
MSG_INVALID_FIELD_VALUE = 'Invalid value of "%value" provided for the %fieldName field.'
MSG_ATTRIBUTE_EMPTY = 'The "%1" attribute value is empty. Set the attribute and try again.'
MSG_SKU_LENGTH = "SKU length should be 64 characters maximum."
MSG_URL_KEY = "URL key for specified store already exists."
MSG_INVALID_ATTRIBUTE = "Invalid attribute name: %1"
MSG_PAGE_SIZE = "Maximum SearchCriteria pageSize is %max"
MSG_ARRAY_LIMIT = 'Maximum items of type "%type" is %max'
MSG_TYPE = (
    'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and try again.'
)
MSG_CUSTOM_INVALID = (
    'Error occurred during "custom_attributes" processing. '
    'Attribute "%attribute_code" has invalid value. %details'
)
MSG_CUSTOM_NO_CODE = (
    "A custom attribute is specified with a missing attribute code. Verify the code and try again."
)
MSG_CUSTOM_EMPTY = "An empty custom attribute is specified. Enter the attribute and try again."
MSG_NO_ATTRIBUTE = (
    'The attribute with a "%1" attributeCode doesn\'t exist. Verify the attribute and try again.'
)
MSG_NO_OPTIONS = 'The "%1" attribute doesn\'t work with options.'
MSG_OPTION_EMPTY = "The attribute option label is empty. Enter the value and try again."
MSG_OPTION_EXISTS = 'Admin store attribute option label "%1" already exists.'
MSG_DEADLOCK = "Database deadlock found when trying to get lock"
MSG_LOCK_WAIT = "Database lock wait timeout exceeded"
MSG_NO_BULK = "Bulk uuid %bulkUuid not exist"
MSG_NO_ROUTE = "Request does not match any route."
MSG_INTERNAL = "Internal Error. Details are available in Magento log file. Report ID: %1"
MSG_TOO_MANY = "Too Many Requests"
MSG_OAUTH_SIGNATURE = "The signature is invalid. Verify and try again."
MSG_OAUTH_METHOD = "Signature method %1 is not supported"
MSG_OAUTH_VERSION = 'The "%1" Oauth version isn\'t supported.'
MSG_OAUTH_TIMESTAMP = "Incorrect timestamp value in the oauth_timestamp parameter"
MSG_OAUTH_NONCE = (
    "The nonce is already being used by the consumer with ID %1. Verify the nonce and try again."
)
OAUTH_TIME_DEVIATION_S = 600


class MagentoSimulatorError(CatalogflowError):
    """The simulator was misused (bad setting, unknown SKU or store in a seeding call)."""


class MagentoError(Exception):
    """A webapi error response, as Magento's ErrorProcessor renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        retryable: bool = False,
        headers: Mapping[str, str] | None = None,
        raw_body: dict[str, Any] | None = None,
    ) -> None:
        self.status, self.message = status, message
        self.parameters = parameters
        self.retryable = retryable
        self.headers = dict(headers or {})
        self.raw_body = raw_body
        super().__init__(self.rendered())

    def rendered(self) -> str:
        """The phrase with its placeholders filled in (what a bulk operation reports)."""
        text, params = self.message, self.parameters
        if isinstance(params, Mapping):
            for key in sorted(params, key=len, reverse=True):
                text = text.replace(f"%{key}", str(params[key]))
        elif params:
            for i in range(len(params), 0, -1):
                text = text.replace(f"%{i}", str(params[i - 1]))
        return text

    def body(self, developer_mode: bool) -> dict[str, Any]:
        if self.raw_body is not None:
            return dict(self.raw_body)
        data: dict[str, Any] = {"message": self.message}
        if self.parameters:
            data["parameters"] = (
                dict(self.parameters)
                if isinstance(self.parameters, Mapping)
                else list(self.parameters)
            )
        if developer_mode:
            data["trace"] = (
                "#0 vendor/magento/framework/Webapi/ServiceInputProcessor.php(187): "
                "catalogflow simulator\n#1 {main}"
            )
        return data


def unauthorized(resource: str) -> MagentoError:
    return MagentoError(401, MSG_UNAUTHORIZED, {"resources": resource})


def required_field(name: str) -> MagentoError:
    return MagentoError(400, MSG_REQUIRED_FIELD, {"fieldName": name})


@dataclass
class MagentoSimConfig:
    """How the simulated shop behaves; change at runtime with ``MagentoSimulator.configure``."""

    #: 2.4.4+ ``oauth/consumer/enable_integration_as_bearer``.
    integration_bearer_enabled: bool = True
    admin_token_ttl_s: float = 4 * 3600
    #: ``legacy_copy``: a store-view save copies every store-scoped value into the view.
    store_save_mode: StoreSaveMode = "clean"
    developer_mode: bool = False
    latency_s: float = 0.0
    two_factor_auth: bool = False
    #: Input limits on: default pageSize 20, max 300; at most 20 custom_attributes.
    limit_mode: bool = False
    #: A ``currentPage`` past the end returns the last page again (the classic collection
    #: clamp, magento/magento2#26986); False returns an empty page.
    clamp_past_last_page: bool = True
    #: Reject select/multiselect values that are not option ids of the attribute.
    validate_options: bool = True

    def changed(self, **changes: Any) -> MagentoSimConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise MagentoSimulatorError(f"unknown simulator setting(s): {', '.join(unknown)}")
        config = replace(self, **changes)
        config.check()
        return config

    def check(self) -> None:
        if self.store_save_mode not in get_args(StoreSaveMode):
            raise MagentoSimulatorError(
                f"store_save_mode must be clean or legacy_copy, not {self.store_save_mode!r}"
            )
        for name in ("admin_token_ttl_s", "latency_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise MagentoSimulatorError(f"{name} must be a number >= 0, not {value!r}")
        for name in (
            "integration_bearer_enabled",
            "developer_mode",
            "two_factor_auth",
            "limit_mode",
            "clamp_past_last_page",
            "validate_options",
        ):
            if not isinstance(getattr(self, name), bool):
                raise MagentoSimulatorError(f"{name} must be true or false")


@dataclass(frozen=True)
class WriteLogEntry:
    """One product save made through the API (sync, or an async operation when consumed).

    ``attributes`` holds the attribute codes the request sent (top-level ``name``,
    ``price``, ``status``, ``visibility``, ``weight`` and ``custom_attributes``, plus
    ``category_ids`` when links were sent) with their values as sent; unknown codes,
    which Magento ignores, are left out."""

    method: str
    path: str
    store: str
    sku: str
    attributes: dict[str, Any]


# -- attributes ----------------------------------------------------------------------------

_BACKEND = {
    "text": "varchar",
    "textarea": "text",
    "texteditor": "text",
    "select": "int",
    "multiselect": "varchar",
    "boolean": "int",
    "price": "decimal",
    "weight": "decimal",
    "date": "datetime",
}
TOP_LEVEL = ("name", "price", "status", "visibility", "weight")


@dataclass
class Option:
    id: str
    label: str
    sort_order: int = 0
    is_default: bool = False
    store_labels: dict[int, str] = field(default_factory=dict)

    def label_for(self, store_id: int) -> str:
        return self.store_labels.get(store_id) or self.label


@dataclass
class Attribute:
    attribute_id: int
    code: str
    frontend_input: str
    scope: str
    is_required: bool
    label: str
    is_user_defined: bool
    options: list[Option] = field(default_factory=list)
    frontend_labels: dict[int, str] = field(default_factory=dict)

    @property
    def uses_options(self) -> bool:
        return self.frontend_input in ("select", "multiselect")

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def option_by_label(self, label: str) -> Option | None:
        folded = label.casefold()
        return next((o for o in self.options if o.label.casefold() == folded), None)


@dataclass
class Product:
    entity_id: int
    sku: str
    created_at: str
    updated_at: str
    type_id: str = "simple"
    attribute_set_id: int = 4
    values: dict[int, dict[str, Any]] = field(default_factory=lambda: {0: {}})
    category_ids: list[int] = field(default_factory=list)
    website_ids: list[int] = field(default_factory=lambda: [1])


@dataclass
class Token:
    kind: Literal["admin", "integration"]
    user_id: int
    expires_at: float | None  # clock seconds; None = never


@dataclass(frozen=True)
class IntegrationCredentials:
    """What activating an integration shows: all four are needed to sign OAuth 1.0a
    requests; ``access_token`` alone is the Bearer token (when the switch allows it)."""

    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str


@dataclass
class Operation:
    id: int
    bulk_uuid: str
    topic: str
    method: str
    path: str
    store: str
    sku: str | None
    body: dict[str, Any]
    status: int = STATUS_OPEN
    result_message: str | None = None
    error_code: int | None = None
    result_serialized_data: str | None = None


@dataclass
class Bulk:
    uuid: str
    user_type: int
    user_id: int
    description: str
    start_time: str
    operations: list[Operation]


@dataclass
class Fault:
    kind: str
    remaining: int
    path_contains: str
    seconds: float
    method: str = ""  # only requests with this HTTP method (e.g. PUT: saves, not reads)


@dataclass(frozen=True)
class Caller:
    user_type: int  # 1 integration, 2 admin
    user_id: int


def _pct(text: str) -> str:
    """RFC 3986 percent-encoding, as OAuth 1.0a and PHP's rawurlencode use it."""
    return quote(text, safe="~-._")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Catalog:
    """All simulator state, guarded by ``lock``."""

    def __init__(self, config: MagentoSimConfig, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.clock = clock
        self.stores: dict[str, int] = {"all": 0, "default": 1, "de": 2}
        self.attributes: dict[str, Attribute] = {}
        self.products: dict[str, Product] = {}  # casefolded SKU -> product
        self.tokens: dict[str, Token] = {}
        self.admin_users: dict[str, tuple[int, str]] = {}
        self.integrations: dict[str, tuple[int, IntegrationCredentials]] = {}
        self.nonces: set[tuple[int, str]] = set()
        self.bulks: dict[str, Bulk] = {}
        self.faults: list[Fault] = []
        self.write_log: list[WriteLogEntry] = []
        self._next_entity = 1
        self._next_attribute = 73
        self._next_option = 200
        self._next_operation = 1
        self._install_system_attributes()

    # -- time --------------------------------------------------------------------------

    def timestamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d %H:%M:%S")

    # -- stores ------------------------------------------------------------------------

    def add_store(self, code: str, store_id: int) -> None:
        with self.lock:
            if code in ("all", "V1", "async") or not re.fullmatch(r"[a-z][a-z0-9_]*", code):
                raise MagentoSimulatorError(f"bad store code {code!r}")
            if store_id < 1 or (
                store_id in self.stores.values() and self.stores.get(code) != store_id
            ):
                raise MagentoSimulatorError(f"store id {store_id} is taken or not a store view id")
            self.stores[code] = store_id

    def store_id(self, code: str) -> int:
        try:
            return self.stores[code]
        except KeyError:
            raise MagentoSimulatorError(f"unknown store code {code!r}") from None

    # -- attributes --------------------------------------------------------------------

    def _install_system_attributes(self) -> None:
        system = [
            ("name", "text", "store", True, "Product Name", ()),
            ("sku", "text", "global", True, "SKU", ()),
            ("price", "price", "global", True, "Price", ()),
            ("status", "select", "website", False, "Enable Product", ()),
            ("visibility", "select", "store", False, "Visibility", ()),
            ("weight", "weight", "global", False, "Weight", ()),
            ("description", "textarea", "store", False, "Description", ()),
            ("short_description", "textarea", "store", False, "Short Description", ()),
            ("meta_title", "text", "store", False, "Meta Title", ()),
            ("meta_keyword", "textarea", "store", False, "Meta Keywords", ()),
            ("meta_description", "textarea", "store", False, "Meta Description", ()),
            ("url_key", "text", "store", False, "URL Key", ()),
            ("tax_class_id", "select", "website", False, "Tax Class", ()),
        ]
        for code, frontend_input, scope, required, label, _ in system:
            self.attributes[code] = Attribute(
                self._next_attribute, code, frontend_input, scope, required, label, False
            )
            self._next_attribute += 1
        self.attributes["status"].options = [Option("1", "Enabled"), Option("2", "Disabled")]
        self.attributes["visibility"].options = [
            Option("1", "Not Visible Individually"),
            Option("2", "Catalog"),
            Option("3", "Search"),
            Option("4", "Catalog, Search"),
        ]
        self.attributes["tax_class_id"].options = [
            Option("0", "None"),
            Option("2", "Taxable Goods"),
        ]
        self._next_attribute = 180

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
        with self.lock:
            if frontend_input not in _BACKEND:
                raise MagentoSimulatorError(f"unknown frontend_input {frontend_input!r}")
            if scope not in ("global", "website", "store"):
                raise MagentoSimulatorError(f"scope must be global, website or store: {scope!r}")
            attribute = self.attributes.get(code)
            if attribute is None:
                attribute = Attribute(
                    self._next_attribute,
                    code,
                    frontend_input,
                    scope,
                    is_required,
                    code.replace("_", " ").title(),
                    True,
                )
                self._next_attribute += 1
                self.attributes[code] = attribute
            else:
                attribute.frontend_input, attribute.scope = frontend_input, scope
                attribute.is_required = is_required
            for label in options:
                if attribute.option_by_label(label) is None:
                    self._new_option(attribute, label, 0, False, {})
            for outer, inner in (store_labels or {}).items():
                # {store code: {admin label: label}} or {admin label: {store code: label}}
                if outer in self.stores:
                    pairs = [(outer, admin, text) for admin, text in inner.items()]
                else:
                    pairs = [(store, outer, text) for store, text in inner.items()]
                for store, admin, text in pairs:
                    option = attribute.option_by_label(admin)
                    if option is None:
                        raise MagentoSimulatorError(f"{code} has no option {admin!r}")
                    option.store_labels[self.store_id(store)] = text

    def _new_option(
        self,
        attribute: Attribute,
        label: str,
        sort_order: int,
        is_default: bool,
        labels: dict[int, str],
    ) -> Option:
        option = Option(str(self._next_option), label, sort_order, is_default, labels)
        self._next_option += 1
        attribute.options.append(option)
        return option

    def attribute(self, code: str) -> Attribute:
        attribute = self.attributes.get(code)
        if attribute is None:
            raise MagentoError(404, MSG_NO_ATTRIBUTE, [code])
        return attribute

    def option_id(self, attribute: str, label: str) -> str | None:
        with self.lock:
            found = self.attributes.get(attribute)
            option = found.option_by_label(label) if found else None
            return option.id if option else None

    def attribute_json(self, code: str, store_id: int) -> dict[str, Any]:
        with self.lock:
            a = self.attribute(code)
            data: dict[str, Any] = {
                "attribute_id": a.attribute_id,
                "attribute_code": a.code,
                "frontend_input": a.frontend_input,
                "entity_type_id": "4",
                "is_required": a.is_required,
                "scope": a.scope,
                "is_user_defined": a.is_user_defined,
                "default_frontend_label": a.label,
                "frontend_labels": [
                    {"store_id": s, "label": text} for s, text in sorted(a.frontend_labels.items())
                ],
                "backend_type": _BACKEND[a.frontend_input],
                "default_value": "",
                "is_unique": "0",
                "validation_rules": [],
                "is_html_allowed_on_front": a.frontend_input in ("textarea", "texteditor"),
                "is_wysiwyg_enabled": False,
                "is_filterable": a.uses_options,
                "is_searchable": "1",
                "apply_to": [],
            }
            if a.uses_options:
                data["source_model"] = "Magento\\Eav\\Model\\Entity\\Attribute\\Source\\Table"
                data["options"] = [{"label": " ", "value": ""}] + [
                    {
                        "label": o.label_for(store_id),
                        "value": o.id,
                        "sort_order": o.sort_order,
                        "is_default": o.is_default,
                        "store_labels": [
                            {"store_id": s, "label": t} for s, t in sorted(o.store_labels.items())
                        ],
                    }
                    for o in a.options
                ]
            else:
                data["options"] = []
            return data

    def options_json(self, code: str, store_id: int) -> list[dict[str, str]]:
        with self.lock:
            a = self.attribute(code)
            if not a.uses_options:
                raise MagentoError(400, MSG_NO_OPTIONS, [code])
            ordered = sorted(a.options, key=lambda o: (o.sort_order, int(o.id)))
            return [{"label": " ", "value": ""}] + [
                {"label": o.label_for(store_id), "value": o.id} for o in ordered
            ]

    def add_option(self, code: str, body: Any) -> str:
        with self.lock:
            a = self.attribute(code)
            if not isinstance(body, dict) or not isinstance(body.get("option"), dict):
                raise required_field("option")
            if not a.uses_options:
                raise MagentoError(400, MSG_NO_OPTIONS, [code])
            option = body["option"]
            labels: dict[int, str] = {}
            for item in option.get("store_labels") or []:
                if isinstance(item, dict) and item.get("label") not in (None, ""):
                    store_id = _int_or_none(item.get("store_id", 0), "store_id") or 0
                    labels[store_id] = str(item["label"])
            label = str(option.get("label") or labels.pop(0, "") or "").strip()
            labels.pop(0, None)
            if not label:
                raise MagentoError(400, MSG_OPTION_EMPTY)
            if a.option_by_label(label) is not None:
                raise MagentoError(400, MSG_OPTION_EXISTS, [label])
            # listed by (sort_order, option id): equal orders keep creation order
            sort_order = _int_or_none(option.get("sort_order"), "sort_order") or 0
            new = self._new_option(a, label, sort_order, bool(option.get("is_default")), labels)
            return new.id

    # -- products ----------------------------------------------------------------------

    def find(self, sku: str) -> Product | None:
        return self.products.get(sku.casefold())

    def get_product(self, sku: str) -> Product:
        product = self.find(sku)
        if product is None:
            raise MagentoError(404, MSG_NO_PRODUCT)
        return product

    def resolve(self, product: Product, store_id: int, code: str) -> Any:
        if store_id != 0:
            own = product.values.get(store_id, {})
            if code in own:
                return own[code]
        return product.values[0].get(code)

    def product_json(self, product: Product, store_id: int) -> dict[str, Any]:
        data: dict[str, Any] = {"id": product.entity_id, "sku": product.sku}
        name = self.resolve(product, store_id, "name")
        if name is not None:
            data["name"] = name
        data["attribute_set_id"] = product.attribute_set_id
        for code in ("price", "status", "visibility"):
            value = self.resolve(product, store_id, code)
            if value is not None:
                data[code] = value
        data["type_id"] = product.type_id
        data["created_at"], data["updated_at"] = product.created_at, product.updated_at
        weight = self.resolve(product, store_id, "weight")
        if weight is not None:
            data["weight"] = weight
        data["extension_attributes"] = {
            "website_ids": list(product.website_ids),
            "category_links": [
                {"position": i, "category_id": str(c)} for i, c in enumerate(product.category_ids)
            ],
            "stock_item": {
                "item_id": product.entity_id,
                "product_id": product.entity_id,
                "stock_id": 1,
                "qty": 100,
                "is_in_stock": True,
            },
        }
        data.update(product_links=[], options=[], media_gallery_entries=[], tier_prices=[])
        custom: list[dict[str, Any]] = []
        for code, attribute in self.attributes.items():
            if code in TOP_LEVEL or code == "sku":
                continue
            value = self.resolve(product, store_id, code)
            if value is not None:
                custom.append({"attribute_code": attribute.code, "value": value})
        if product.category_ids:
            custom.append(
                {"attribute_code": "category_ids", "value": [str(c) for c in product.category_ids]}
            )
        data["custom_attributes"] = custom
        return data

    def get_json(self, sku: str, store_id: int) -> dict[str, Any]:
        with self.lock:
            return self.product_json(self.get_product(sku), store_id)

    # -- writes ------------------------------------------------------------------------

    def _canonical(self, attribute: Attribute, raw: Any, top_level: bool) -> Any:
        """The stored form of an API value: typed top-level fields, strings otherwise;
        None deletes the value (or the store override)."""
        if raw is None:
            return None
        code = attribute.code
        if top_level:
            if code in ("price", "weight"):
                if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                    raise MagentoError(400, MSG_TYPE, {"value": _json_type(raw), "type": "float"})
                try:
                    number = float(raw)
                except ValueError:
                    raise MagentoError(400, MSG_TYPE, {"value": raw, "type": "float"}) from None
                if not math.isfinite(number):
                    raise MagentoError(400, MSG_TYPE, {"value": raw, "type": "float"})
                return int(number) if number.is_integer() else number
            if code in ("status", "visibility"):
                try:
                    number = int(raw)
                except (TypeError, ValueError):
                    raise MagentoError(400, MSG_TYPE, {"value": raw, "type": "int"}) from None
                if attribute.option(str(number)) is None:
                    raise MagentoError(
                        400, MSG_INVALID_FIELD_VALUE, {"fieldName": code, "value": raw}
                    )
                return number
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise MagentoError(400, MSG_TYPE, {"value": _json_type(raw), "type": "string"})
            return str(raw)
        if isinstance(raw, list | dict):
            details = (
                f'The "{_json_type(raw)}" value\'s type is invalid. The "string" type was '
                "expected. Verify and try again."
            )
            raise MagentoError(
                400, MSG_CUSTOM_INVALID, {"attribute_code": code, "details": details}
            )
        text = _scalar_text(raw)
        if attribute.uses_options:
            if text == "":
                return None
            ids = (
                [p.strip() for p in text.split(",")]
                if attribute.frontend_input == "multiselect"
                else [text]
            )
            if self.config.validate_options and any(attribute.option(i) is None for i in ids):
                raise MagentoError(400, MSG_INVALID_FIELD_VALUE, {"fieldName": code, "value": raw})
            return ",".join(ids)
        if attribute.frontend_input == "boolean" and text not in ("0", "1"):
            raise MagentoError(400, MSG_INVALID_FIELD_VALUE, {"fieldName": code, "value": raw})
        return text

    def _parse_product(
        self, data: Mapping[str, Any], limit: int | None
    ) -> tuple[dict[str, Any], dict[str, Any], list[int] | None]:
        """(canonical changes, values as sent, category ids or None) of a product body."""
        changes: dict[str, Any] = {}
        sent: dict[str, Any] = {}
        categories: list[int] | None = None
        for top in TOP_LEVEL:
            if top in data:
                sent[top] = data[top]
                changes[top] = self._canonical(self.attributes[top], data[top], True)
        custom = data.get("custom_attributes")
        if custom is not None:
            if isinstance(custom, dict):  # the map form {code: value}
                custom = [{"attribute_code": k, "value": v} for k, v in custom.items()]
            if not isinstance(custom, list):
                raise MagentoError(
                    400, MSG_TYPE, {"value": _json_type(custom), "type": "AttributeInterface[]"}
                )
            if limit is not None and len(custom) > limit:
                raise MagentoError(
                    400,
                    MSG_ARRAY_LIMIT,
                    {"type": "Magento\\Framework\\Api\\AttributeInterface", "max": limit},
                )
            for item in custom:
                if not isinstance(item, dict):
                    raise MagentoError(400, MSG_CUSTOM_EMPTY)
                code = item.get("attribute_code", item.get("attributeCode"))
                if not code and item.get("value") is None:
                    raise MagentoError(400, MSG_CUSTOM_EMPTY)
                if not code:
                    raise MagentoError(400, MSG_CUSTOM_NO_CODE)
                if "value" not in item:
                    raise MagentoError(
                        400,
                        f'The "{code}" attribute code doesn\'t have a value set. '
                        "Enter the value and try again.",
                    )
                value = item["value"]
                if code == "category_ids":
                    categories = self._category_list(value)
                    sent[code] = value
                elif code in self.attributes and code != "sku" and code not in TOP_LEVEL:
                    changes[code] = self._canonical(self.attributes[code], value, False)
                    sent[code] = value
                elif code in TOP_LEVEL:
                    changes[code] = self._canonical(self.attributes[code], value, True)
                    sent[code] = value
        extension = data.get("extension_attributes")
        if isinstance(extension, dict) and isinstance(extension.get("category_links"), list):
            links = extension["category_links"]
            categories = self._category_list(
                [link.get("category_id") for link in links if isinstance(link, dict)]
            )
            sent["category_ids"] = [str(c) for c in categories]
        return changes, sent, categories

    @staticmethod
    def _category_list(value: Any) -> list[int]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            items = [items]
        try:
            return [int(str(v).strip()) for v in items if str(v).strip()]
        except ValueError:
            raise MagentoError(
                400, MSG_INVALID_FIELD_VALUE, {"fieldName": "category_ids", "value": value}
            ) from None

    def save(
        self,
        *,
        method: str,
        path: str,
        store: str,
        path_sku: str | None,
        body: Any,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """``ProductRepository::save`` for a POST or PUT: upsert-merge, logged on success."""
        with self.lock:
            if not isinstance(body, dict) or "product" not in body:
                raise required_field("product")
            data = body["product"]
            if not isinstance(data, dict):
                raise MagentoError(400, MSG_TYPE, {"value": _json_type(data), "type": "object"})
            sku = path_sku if path_sku is not None else data.get("sku")
            if sku is None or str(sku) == "":
                raise required_field("sku")
            sku = str(sku)
            if len(sku) > SKU_MAX_LENGTH:
                raise MagentoError(400, MSG_SKU_LENGTH)
            store_id = self.stores[store]
            if limit is None and self.config.limit_mode:
                limit = ARRAY_LIMIT
            changes, sent, categories = self._parse_product(data, limit)
            existing = self.find(sku)
            product = copy.deepcopy(existing) if existing is not None else None
            if product is None:
                product = Product(self._next_entity, sku, self.timestamp(), self.timestamp())
                for attribute in self.attributes.values():
                    if (
                        attribute.is_required
                        and attribute.code != "sku"
                        and changes.get(attribute.code) in (None, "")
                    ):
                        raise MagentoError(400, MSG_ATTRIBUTE_EMPTY, [attribute.label])
                # A create sets every value globally (Adobe's scope rules).
                product.values[0].update({k: v for k, v in changes.items() if v is not None})
                if not product.values[0].get("url_key") and product.values[0].get("name"):
                    product.values[0]["url_key"] = _slug(str(product.values[0]["name"]))
                product.values[0].setdefault("status", 1)
                product.values[0].setdefault("visibility", 4)
                product.values[0].setdefault("tax_class_id", "2")
                if isinstance(data.get("type_id"), str):
                    product.type_id = data["type_id"]
                if isinstance(data.get("attribute_set_id"), int):
                    product.attribute_set_id = data["attribute_set_id"]
            else:
                self._apply(product, store_id, changes)
            if categories is not None:
                product.category_ids = categories
            self._check_url_keys(product)
            self.take_fault({"deadlock", "lock_wait"}, path, method=method, raise_it=True)
            if existing is None:
                self._next_entity += 1
            product.updated_at = self.timestamp()
            self.products[sku.casefold()] = product
            self.write_log.append(WriteLogEntry(method, path, store, product.sku, sent))
            return self.product_json(product, store_id)

    def _apply(self, product: Product, store_id: int, changes: Mapping[str, Any]) -> None:
        if store_id != 0 and self.config.store_save_mode == "legacy_copy":
            own = product.values.setdefault(store_id, {})
            for code, attribute in self.attributes.items():
                if attribute.scope == "store" and code not in own:
                    value = product.values[0].get(code)
                    if value is not None:
                        own[code] = value
        for code, value in changes.items():
            target = store_id if self.attributes[code].scope == "store" else 0
            scope = product.values.setdefault(target, {})
            if value is None:
                scope.pop(code, None)
            else:
                scope[code] = value

    def _check_url_keys(self, product: Product) -> None:
        for store_id in sorted(set(self.stores.values()) - {0}):
            key = self.resolve(product, store_id, "url_key")
            if not key:
                continue
            for other in self.products.values():
                if (
                    other.entity_id != product.entity_id
                    and self.resolve(other, store_id, "url_key") == key
                ):
                    raise MagentoError(400, MSG_URL_KEY)

    def delete(self, sku: str) -> None:
        with self.lock:
            product = self.get_product(sku)
            del self.products[product.sku.casefold()]

    # -- seeding (a person in the admin, not the API) -----------------------------------

    def admin_value(self, attribute: Attribute, value: Any) -> Any:
        """Stored form of a seeded value: labels of select/multiselect become option ids."""
        if value is None:
            return None
        if attribute.code in TOP_LEVEL:
            if attribute.code in ("status", "visibility") and isinstance(value, str):
                option = attribute.option_by_label(value)
                if option is not None:
                    return int(option.id)
            return self._canonical(attribute, value, True)
        if attribute.uses_options:
            parts = value if isinstance(value, list | tuple) else str(value).split(",")
            ids = []
            for part in (str(p).strip() for p in parts):
                option = attribute.option(part) or attribute.option_by_label(part)
                if option is None:
                    raise MagentoSimulatorError(f"{attribute.code} has no option {part!r}")
                ids.append(option.id)
            return ",".join(ids) or None
        return _scalar_text(value)

    def add_product(
        self,
        sku: str,
        values: Mapping[str, Any],
        *,
        name: str | None = None,
        category_ids: Sequence[int] = (),
        store: str = "all",
    ) -> None:
        with self.lock:
            store_id = self.store_id(store)
            product = self.find(sku)
            if product is None:
                now = self.timestamp()
                product = Product(self._next_entity, sku, now, now)
                self._next_entity += 1
                product.values[0].update(status=1, visibility=4, tax_class_id="2")
                self.products[sku.casefold()] = product
            all_values = dict(values)
            if name is not None:
                all_values["name"] = name
            for code, value in all_values.items():
                if code == "category_ids":
                    product.category_ids = self._category_list(list(value))
                    continue
                if code not in self.attributes:
                    self.add_attribute(code)
                attribute = self.attributes[code]
                target = store_id if attribute.scope == "store" else 0
                stored = self.admin_value(attribute, value)
                scope = product.values.setdefault(target, {})
                if stored is None:
                    scope.pop(code, None)
                else:
                    scope[code] = stored
            if category_ids:
                product.category_ids = [int(c) for c in category_ids]
            if not product.values[0].get("url_key") and product.values[0].get("name"):
                key = _slug(str(product.values[0]["name"]))
                taken = {self.resolve(p, 0, "url_key") for p in self.products.values()}
                product.values[0]["url_key"] = key if key not in taken else f"{key}-{_slug(sku)}"
            product.updated_at = self.timestamp()

    def set_value(self, sku: str, store: str, attribute: str, value: Any) -> None:
        with self.lock:
            product = self._seeded(sku)
            if attribute not in self.attributes:
                raise MagentoSimulatorError(f"unknown attribute {attribute!r}")
            found = self.attributes[attribute]
            store_id = self.store_id(store)
            target = store_id if found.scope == "store" else 0
            stored = self.admin_value(found, value)
            scope = product.values.setdefault(target, {})
            if stored is None:
                scope.pop(attribute, None)
            else:
                scope[attribute] = stored
            product.updated_at = self.timestamp()

    def _seeded(self, sku: str) -> Product:
        product = self.find(sku)
        if product is None:
            raise MagentoSimulatorError(f"no product with SKU {sku!r}")
        return product

    def value(self, sku: str, store: str, attribute: str) -> Any:
        with self.lock:
            product = self._seeded(sku)
            if attribute == "category_ids":
                return list(product.category_ids)
            return self.resolve(product, self.store_id(store), attribute)

    def override(self, sku: str, store: str, attribute: str) -> Any | None:
        with self.lock:
            product = self._seeded(sku)
            return product.values.get(self.store_id(store), {}).get(attribute)

    # -- search ------------------------------------------------------------------------

    def search(self, store_id: int, query: Iterable[tuple[str, str]]) -> dict[str, Any]:
        with self.lock:
            criteria = parse_search_criteria(query)
            page_size = _int_or_none(criteria.get("page_size"), "pageSize")
            current = _int_or_none(criteria.get("current_page"), "currentPage") or 1
            if self.config.limit_mode:
                if page_size is None:
                    page_size = LIMITED_DEFAULT_PAGE_SIZE
                if page_size > MAX_PAGE_SIZE:
                    raise MagentoError(400, MSG_PAGE_SIZE, {"max": MAX_PAGE_SIZE})
            groups = []
            for group in _as_list(criteria.get("filter_groups")):
                filters = []
                for raw in _as_list(group.get("filters") if isinstance(group, dict) else None):
                    if not isinstance(raw, dict) or not raw.get("field"):
                        continue
                    condition = str(raw.get("condition_type") or "eq").lower()
                    if condition not in _CONDITIONS:
                        raise MagentoError(
                            400,
                            MSG_INVALID_FIELD_VALUE,
                            {"fieldName": "condition_type", "value": condition},
                        )
                    field_name = str(raw["field"])
                    self._check_field(field_name)
                    filters.append((field_name, str(raw.get("value", "")), condition))
                if filters:
                    groups.append(filters)
            items = [
                p
                for p in sorted(self.products.values(), key=lambda p: p.entity_id)
                if all(any(self._matches(p, store_id, f) for f in group) for group in groups)
            ]
            sort_orders = [o for o in _as_list(criteria.get("sort_orders")) if isinstance(o, dict)]
            for order in reversed(sort_orders):
                field_name = str(order.get("field") or "entity_id")
                self._check_field(field_name)
                descending = str(order.get("direction", "ASC")).upper() == "DESC"
                items.sort(
                    key=lambda p: _sort_key(self._field(p, store_id, field_name)),
                    reverse=descending,
                )
            total = len(items)
            page_items = items
            if page_size:
                last = max(1, math.ceil(total / page_size))
                page = min(current, last) if self.config.clamp_past_last_page else current
                start = (max(page, 1) - 1) * page_size
                page_items = items[start : start + page_size]
            echo: dict[str, Any] = {
                "filter_groups": [
                    {"filters": [{"field": f, "value": v, "condition_type": c} for f, v, c in g]}
                    for g in groups
                ]
            }
            if sort_orders:
                echo["sort_orders"] = [
                    {"field": o.get("field"), "direction": str(o.get("direction", "ASC")).upper()}
                    for o in sort_orders
                ]
            if page_size is not None:
                echo["page_size"] = page_size
            echo["current_page"] = current
            return {
                "items": [self.product_json(p, store_id) for p in page_items],
                "search_criteria": echo,
                "total_count": total,
            }

    def _check_field(self, name: str) -> None:
        if name not in _ENTITY_FIELDS and name not in self.attributes:
            raise MagentoError(400, MSG_INVALID_ATTRIBUTE, [name])

    def _field(self, product: Product, store_id: int, name: str) -> Any:
        if name == "sku":
            return product.sku
        if name in ("entity_id", "id"):
            return product.entity_id
        if name in ("created_at", "updated_at", "type_id", "attribute_set_id"):
            return getattr(product, name)
        if name in ("category_id", "category_ids"):
            return [str(c) for c in product.category_ids]
        return self.resolve(product, store_id, name)

    def _matches(self, product: Product, store_id: int, flt: tuple[str, str, str]) -> bool:
        name, wanted, condition = flt
        value = self._field(product, store_id, name)
        values = value if isinstance(value, list) else None
        if condition == "null":
            return value is None or value == []
        if condition == "notnull":
            return not (value is None or value == [])
        if value is None or value == []:
            return False
        if values is not None:  # category ids: any of them
            if condition in ("neq", "nin", "nlike", "nfinset"):
                positive = {"neq": "eq", "nin": "in", "nlike": "like", "nfinset": "finset"}
                return not any(_compare(v, wanted, positive[condition]) for v in values)
            return any(_compare(v, wanted, condition) for v in values)
        return _compare(value, wanted, condition)

    # -- auth --------------------------------------------------------------------------

    def add_admin_user(self, username: str, password: str) -> None:
        with self.lock:
            user_id = self.admin_users.get(username, (len(self.admin_users) + 1, ""))[0]
            self.admin_users[username] = (user_id, password)

    def issue_integration(self, name: str) -> IntegrationCredentials:
        with self.lock:
            if name not in self.integrations:
                credentials = IntegrationCredentials(*(secrets.token_hex(16) for _ in range(4)))
                integration_id = len(self.integrations) + 1
                self.integrations[name] = (integration_id, credentials)
                self.tokens[credentials.access_token] = Token("integration", integration_id, None)
            return self.integrations[name][1]

    def admin_token(self, body: Any) -> str:
        with self.lock:
            if not isinstance(body, dict):
                raise required_field("username")
            for key in ("username", "password"):
                if not isinstance(body.get(key), str) or not body[key]:
                    raise required_field(key)
            user = self.admin_users.get(body["username"])
            if user is None or not secrets.compare_digest(user[1], body["password"]):
                raise MagentoError(401, MSG_SIGN_IN)
            if self.config.two_factor_auth:
                raise MagentoError(401, MSG_2FA, {"active_providers": ["google"]})
            token = secrets.token_hex(16)
            self.tokens[token] = Token(
                "admin", user[0], self.clock() + self.config.admin_token_ttl_s
            )
            return token

    def expire_admin_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                if token.kind == "admin":
                    token.expires_at = -math.inf

    def authenticate(
        self,
        header: str | None,
        resource: str,
        *,
        method: str = "GET",
        base_url: str = "",
        query: Iterable[tuple[str, str]] = (),
    ) -> Caller:
        """The caller of a request, or Magento's 401. ``method``, ``base_url`` (scheme,
        host and encoded path) and the decoded ``query`` are what OAuth 1.0a signs."""
        with self.lock:
            if header and header[:6].lower() == "oauth ":
                return self._oauth(header, resource, method, base_url, query)
            if not header or not header.startswith("Bearer "):
                raise unauthorized(resource)
            token = self.tokens.get(header[len("Bearer ") :].strip())
            if token is None:
                raise unauthorized(resource)
            if token.kind == "admin":
                if token.expires_at is not None and token.expires_at <= self.clock():
                    raise unauthorized(resource)
                return Caller(2, token.user_id)
            if not self.config.integration_bearer_enabled:
                raise unauthorized(resource)
            return Caller(1, token.user_id)

    def _oauth(
        self,
        header: str,
        resource: str,
        method: str,
        base_url: str,
        query: Iterable[tuple[str, str]],
    ) -> Caller:
        """Magento's ``Oauth::validateAccessTokenRequest`` (HMAC-SHA1 or HMAC-SHA256)."""
        params: dict[str, str] = {}
        for part in header[6:].split(","):
            name, sep, value = part.strip().partition("=")
            if sep and name.startswith("oauth_"):
                params[unquote(name)] = unquote(value.strip().strip('"'))
        if "oauth_version" in params and params["oauth_version"] != "1.0":
            raise MagentoError(400, MSG_OAUTH_VERSION, [params["oauth_version"]])
        for name in (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_nonce",
            "oauth_timestamp",
            "oauth_token",
        ):
            if name not in params:
                raise required_field(name)
        digests = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
        digest = digests.get(params["oauth_signature_method"])
        if digest is None:
            raise MagentoError(400, MSG_OAUTH_METHOD, [params["oauth_signature_method"]])
        found = next(
            (
                (number, c)
                for number, c in self.integrations.values()
                if c.consumer_key == params["oauth_consumer_key"]
            ),
            None,
        )
        if found is None or found[1].access_token != params["oauth_token"]:
            raise unauthorized(resource)
        consumer_id, credentials = found
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            timestamp = 0
        # wall time, not self.clock: clients sign with the real time
        if timestamp <= 0 or timestamp > time.time() + OAUTH_TIME_DEVIATION_S:
            raise MagentoError(401, MSG_OAUTH_TIMESTAMP)
        if (consumer_id, params["oauth_nonce"]) in self.nonces:
            raise MagentoError(401, MSG_OAUTH_NONCE, [consumer_id])
        self.nonces.add((consumer_id, params["oauth_nonce"]))
        signed = [(k, v) for k, v in params.items() if k != "oauth_signature"]
        pairs = sorted((_pct(k), _pct(v)) for k, v in [*query, *signed])
        normalized = "&".join(f"{k}={v}" for k, v in pairs)
        base = "&".join(_pct(p) for p in (method.upper(), base_url, normalized))
        key = f"{_pct(credentials.consumer_secret)}&{_pct(credentials.access_token_secret)}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), digest).digest())
        if not hmac.compare_digest(expected.decode(), params["oauth_signature"]):
            raise MagentoError(401, MSG_OAUTH_SIGNATURE)
        return Caller(1, consumer_id)

    # -- faults ------------------------------------------------------------------------

    def inject(
        self, kind: str, count: int, path_contains: str, seconds: float, method: str = ""
    ) -> None:
        if kind not in FAULT_NAMES:
            raise MagentoSimulatorError(
                f"unknown fault {kind!r} (known: {', '.join(sorted(FAULT_NAMES))})"
            )
        if count < 1 or seconds < 0:
            raise MagentoSimulatorError("a fault needs count >= 1 and seconds >= 0")
        with self.lock:
            self.faults.append(Fault(kind, count, path_contains, seconds, method.upper()))

    def clear_faults(self) -> None:
        """Drop every fault not yet taken: the shop is healthy again."""
        with self.lock:
            self.faults.clear()

    def take_fault(
        self, kinds: set[str], path: str, *, method: str = "", raise_it: bool = False
    ) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.kind in kinds
                    and fault.path_contains in path
                    and fault.method in ("", method.upper())
                ):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    if raise_it:
                        message = MSG_DEADLOCK if fault.kind == "deadlock" else MSG_LOCK_WAIT
                        raise MagentoError(400, message, retryable=True)
                    return fault
            return None

    # -- async and bulk ----------------------------------------------------------------

    def enqueue(
        self,
        *,
        method: str,
        path: str,
        store: str,
        items: list[tuple[str | None, Any]],
        caller: Caller,
    ) -> dict[str, Any]:
        with self.lock:
            if self.config.limit_mode and len(items) > ASYNC_ARRAY_LIMIT:
                raise MagentoError(
                    400, MSG_ARRAY_LIMIT, {"type": "ProductInterface", "max": ASYNC_ARRAY_LIMIT}
                )
            for _, body in items:
                if not isinstance(body, dict) or not isinstance(body.get("product"), dict):
                    raise required_field("product")
            topic = f"async.magento.catalog.api.productrepositoryinterface.save.{method.lower()}"
            bulk_uuid = str(uuid.uuid4())
            operations, request_items = [], []
            for number, (sku, body) in enumerate(items):
                operations.append(
                    Operation(
                        self._next_operation, bulk_uuid, topic, method, path, store, sku, body
                    )
                )
                self._next_operation += 1
                serialized = json.dumps(body, separators=(",", ":"), sort_keys=True)
                request_items.append(
                    {
                        "id": number,
                        "data_hash": hashlib.sha256(serialized.encode()).hexdigest(),
                        "status": "accepted",
                    }
                )
            self.bulks[bulk_uuid] = Bulk(
                bulk_uuid,
                caller.user_type,
                caller.user_id,
                f"Topic {topic}",
                self.timestamp(),
                operations,
            )
            return {"bulk_uuid": bulk_uuid, "request_items": request_items, "errors": False}

    def tick(self) -> int:
        """Run the ``async.operations.all`` consumer over every open operation."""
        done = 0
        with self.lock:
            for bulk in self.bulks.values():
                for op in bulk.operations:
                    if op.status != STATUS_OPEN:
                        continue
                    done += 1
                    try:
                        result = self.save(
                            method=op.method,
                            path=op.path,
                            store=op.store,
                            path_sku=op.sku,
                            body=op.body,
                            limit=None,
                        )
                    except MagentoError as exc:
                        op.status = (
                            STATUS_RETRIABLY_FAILED
                            if exc.retryable
                            else STATUS_NOT_RETRIABLY_FAILED
                        )
                        op.result_message, op.error_code = exc.rendered(), 0
                    else:
                        op.status, op.result_message = STATUS_COMPLETE, SUCCESS_MESSAGE
                        op.result_serialized_data = json.dumps(result)
        return done

    def bulk(self, bulk_uuid: str) -> Bulk:
        found = self.bulks.get(bulk_uuid)
        if found is None:
            raise MagentoError(404, MSG_NO_BULK, {"bulkUuid": bulk_uuid})
        return found

    def bulk_status(self, bulk_uuid: str, detailed: bool) -> dict[str, Any]:
        with self.lock:
            bulk = self.bulk(bulk_uuid)
            operations = []
            for op in bulk.operations:
                item: dict[str, Any] = {"id": op.id}
                if detailed:
                    meta = json.dumps(op.body if op.sku is None else {"sku": op.sku, **op.body})
                    item.update(
                        bulk_uuid=op.bulk_uuid,
                        topic_name=op.topic,
                        serialized_data=json.dumps(
                            {"entity_id": None, "entity_link": "", "meta_information": meta}
                        ),
                        result_serialized_data=op.result_serialized_data,
                    )
                item.update(
                    status=op.status, result_message=op.result_message, error_code=op.error_code
                )
                operations.append(item)
            return {
                "operations_list": operations,
                "user_type": bulk.user_type,
                "bulk_id": bulk.uuid,
                "description": bulk.description,
                "start_time": bulk.start_time,
                "user_id": bulk.user_id,
                "operation_count": len(bulk.operations),
            }

    def operation_count(self, bulk_uuid: str, status: int) -> int:
        with self.lock:
            return sum(1 for op in self.bulk(bulk_uuid).operations if op.status == status)


# -- searchCriteria ------------------------------------------------------------------------

_ENTITY_FIELDS = frozenset(
    {
        "sku",
        "entity_id",
        "id",
        "created_at",
        "updated_at",
        "type_id",
        "attribute_set_id",
        "category_id",
        "category_ids",
    }
)
_CONDITIONS = frozenset(
    {
        "eq",
        "finset",
        "from",
        "gt",
        "gteq",
        "in",
        "like",
        "lt",
        "lteq",
        "moreq",
        "neq",
        "nfinset",
        "nin",
        "nlike",
        "notnull",
        "null",
        "to",
    }
)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def parse_search_criteria(query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``searchCriteria[filter_groups][0][filters][0][field]=x`` (or the camelCase
    spelling) as nested dicts and lists, keys in snake_case."""
    root: dict[str, Any] = {}
    for key, value in query:
        match = re.fullmatch(r"searchCriteria((?:\[[^\]]*\])+)", key)
        if not match:
            continue
        parts = [_snake(p) for p in re.findall(r"\[([^\]]*)\]", match.group(1))]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


def _as_list(node: Any) -> list[Any]:
    if isinstance(node, list):
        return node
    if isinstance(node, dict):

        def order(key: str) -> tuple[int, str]:
            return (int(key), "") if key.isdigit() else (1 << 30, key)

        return [node[k] for k in sorted(node, key=order)]
    return []


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MagentoError(400, MSG_TYPE, {"value": value, "type": "int"}) from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return (0, 0.0, "")
    number = _number(value)
    if number is not None:
        return (1, number, "")
    return (2, 0.0, str(value).casefold())


def _ordered(value: Any, wanted: str) -> int:
    """-1, 0 or 1 comparing a stored value with a filter value (numbers when both are)."""
    a, b = _number(value), _number(wanted)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    x, y = str(value).casefold(), wanted.casefold()
    return (x > y) - (x < y)


def _like(value: Any, pattern: str) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def _compare(value: Any, wanted: str, condition: str) -> bool:
    if condition == "eq":
        return _ordered(value, wanted) == 0
    if condition == "neq":
        return _ordered(value, wanted) != 0
    if condition == "gt":
        return _ordered(value, wanted) > 0
    if condition in ("gteq", "from", "moreq"):
        return _ordered(value, wanted) >= 0
    if condition == "lt":
        return _ordered(value, wanted) < 0
    if condition in ("lteq", "to"):
        return _ordered(value, wanted) <= 0
    if condition == "like":
        return _like(value, wanted)
    if condition == "nlike":
        return not _like(value, wanted)
    if condition in ("in", "nin"):
        found = any(_ordered(value, w.strip()) == 0 for w in wanted.split(","))
        return found if condition == "in" else not found
    if condition in ("finset", "nfinset"):
        found = wanted.strip() in [v.strip() for v in str(value).split(",")]
        return found if condition == "finset" else not found
    return False
