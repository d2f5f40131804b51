"""The simulated shop's catalog: store views, attributes, products, saves and seeding.

Scopes follow Magento's EAV model: store 0 (``all``, the admin/global scope) holds the
default values; each store view (``default`` = 1, ``de`` = 2, ...) may hold overrides of
store-scoped attributes, and a read through a store view resolves override -> store 0.
Store views do not fall back to each other (``de`` never sees a ``default`` override).
"""

from __future__ import annotations

import copy
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from catalogflow.testbench.magento.attributes import (
    BACKEND_TYPES,
    TOP_LEVEL,
    Attribute,
    Option,
    attribute_json,
    options_json,
)
from catalogflow.testbench.magento.config import MagentoSimConfig
from catalogflow.testbench.magento.errors import (
    MSG_INVALID_FIELD_VALUE,
    MSG_TYPE,
    MagentoSimulatorError,
    WebapiError,
    int_or_none,
    required_field,
)
from catalogflow.testbench.magento.faults import Faults
from catalogflow.testbench.magento.writelog import WriteLog, WriteLogEntry

ARRAY_LIMIT = 20  # webapi/validation/complex_array_limit (sync requests)
SKU_MAX_LENGTH = 64

MSG_NO_PRODUCT = "The product that was requested doesn't exist. Verify the product and try again."
MSG_ATTRIBUTE_EMPTY = 'The "%1" attribute value is empty. Set the attribute and try again.'
MSG_SKU_LENGTH = "SKU length should be 64 characters maximum."
MSG_URL_KEY = "URL key for specified store already exists."
MSG_ARRAY_LIMIT = 'Maximum items of type "%type" is %max'
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
    """Store views, attributes and products; saves go through faults to the write log."""

    def __init__(
        self,
        lock: threading.RLock,
        config: Callable[[], MagentoSimConfig],
        clock: Callable[[], float],
        faults: Faults,
        write_log: WriteLog,
    ) -> None:
        self.lock = lock
        self._config, self._clock = config, clock
        self._faults, self._write_log = faults, write_log
        self.stores: dict[str, int] = {"all": 0, "default": 1, "de": 2}
        self.attributes: dict[str, Attribute] = {}
        self.products: dict[str, Product] = {}  # casefolded SKU -> product
        self._next_entity = 1
        self._next_attribute = 73
        self._next_option = 200
        self._install_system_attributes()

    @property
    def config(self) -> MagentoSimConfig:
        return self._config()

    # -- time --------------------------------------------------------------------------

    def timestamp(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d %H:%M:%S")

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
            if frontend_input not in BACKEND_TYPES:
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
            raise WebapiError(404, MSG_NO_ATTRIBUTE, [code])
        return attribute

    def option_id(self, attribute: str, label: str) -> str | None:
        with self.lock:
            found = self.attributes.get(attribute)
            option = found.option_by_label(label) if found else None
            return option.id if option else None

    def attribute_json(self, code: str, store_id: int) -> dict[str, Any]:
        with self.lock:
            return attribute_json(self.attribute(code), store_id)

    def options_json(self, code: str, store_id: int) -> list[dict[str, str]]:
        with self.lock:
            a = self.attribute(code)
            if not a.uses_options:
                raise WebapiError(400, MSG_NO_OPTIONS, [code])
            return options_json(a, store_id)

    def add_option(self, code: str, body: Any) -> str:
        with self.lock:
            a = self.attribute(code)
            if not isinstance(body, dict) or not isinstance(body.get("option"), dict):
                raise required_field("option")
            if not a.uses_options:
                raise WebapiError(400, MSG_NO_OPTIONS, [code])
            option = body["option"]
            labels: dict[int, str] = {}
            for item in option.get("store_labels") or []:
                if isinstance(item, dict) and item.get("label") not in (None, ""):
                    store_id = int_or_none(item.get("store_id", 0), "store_id") or 0
                    labels[store_id] = str(item["label"])
            label = str(option.get("label") or labels.pop(0, "") or "").strip()
            labels.pop(0, None)
            if not label:
                raise WebapiError(400, MSG_OPTION_EMPTY)
            if a.option_by_label(label) is not None:
                raise WebapiError(400, MSG_OPTION_EXISTS, [label])
            # listed by (sort_order, option id): equal orders keep creation order
            sort_order = int_or_none(option.get("sort_order"), "sort_order") or 0
            new = self._new_option(a, label, sort_order, bool(option.get("is_default")), labels)
            return new.id

    # -- products ----------------------------------------------------------------------

    def find(self, sku: str) -> Product | None:
        return self.products.get(sku.casefold())

    def get_product(self, sku: str) -> Product:
        product = self.find(sku)
        if product is None:
            raise WebapiError(404, MSG_NO_PRODUCT)
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
                    raise WebapiError(400, MSG_TYPE, {"value": _json_type(raw), "type": "float"})
                try:
                    number = float(raw)
                except ValueError:
                    raise WebapiError(400, MSG_TYPE, {"value": raw, "type": "float"}) from None
                if not math.isfinite(number):
                    raise WebapiError(400, MSG_TYPE, {"value": raw, "type": "float"})
                return int(number) if number.is_integer() else number
            if code in ("status", "visibility"):
                try:
                    number = int(raw)
                except (TypeError, ValueError):
                    raise WebapiError(400, MSG_TYPE, {"value": raw, "type": "int"}) from None
                if attribute.option(str(number)) is None:
                    raise WebapiError(
                        400, MSG_INVALID_FIELD_VALUE, {"fieldName": code, "value": raw}
                    )
                return number
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise WebapiError(400, MSG_TYPE, {"value": _json_type(raw), "type": "string"})
            return str(raw)
        if isinstance(raw, list | dict):
            details = (
                f'The "{_json_type(raw)}" value\'s type is invalid. The "string" type was '
                "expected. Verify and try again."
            )
            raise WebapiError(400, MSG_CUSTOM_INVALID, {"attribute_code": code, "details": details})
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
                raise WebapiError(400, MSG_INVALID_FIELD_VALUE, {"fieldName": code, "value": raw})
            return ",".join(ids)
        if attribute.frontend_input == "boolean" and text not in ("0", "1"):
            raise WebapiError(400, MSG_INVALID_FIELD_VALUE, {"fieldName": code, "value": raw})
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
                raise WebapiError(
                    400, MSG_TYPE, {"value": _json_type(custom), "type": "AttributeInterface[]"}
                )
            if limit is not None and len(custom) > limit:
                raise WebapiError(
                    400,
                    MSG_ARRAY_LIMIT,
                    {"type": "Magento\\Framework\\Api\\AttributeInterface", "max": limit},
                )
            for item in custom:
                if not isinstance(item, dict):
                    raise WebapiError(400, MSG_CUSTOM_EMPTY)
                code = item.get("attribute_code", item.get("attributeCode"))
                if not code and item.get("value") is None:
                    raise WebapiError(400, MSG_CUSTOM_EMPTY)
                if not code:
                    raise WebapiError(400, MSG_CUSTOM_NO_CODE)
                if "value" not in item:
                    raise WebapiError(
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
            raise WebapiError(
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
                raise WebapiError(400, MSG_TYPE, {"value": _json_type(data), "type": "object"})
            sku = path_sku if path_sku is not None else data.get("sku")
            if sku is None or str(sku) == "":
                raise required_field("sku")
            sku = str(sku)
            if len(sku) > SKU_MAX_LENGTH:
                raise WebapiError(400, MSG_SKU_LENGTH)
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
                        raise WebapiError(400, MSG_ATTRIBUTE_EMPTY, [attribute.label])
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
            if existing is None or self._url_keys(product) != self._url_keys(existing):
                self._check_url_keys(product)  # a save that keeps its URL keys adds no clash
            self._faults.take({"deadlock", "lock_wait"}, path, method=method, raise_it=True)
            if existing is None:
                self._next_entity += 1
            product.updated_at = self.timestamp()
            self.products[sku.casefold()] = product
            self._write_log.append(WriteLogEntry(method, path, store, product.sku, sent))
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

    def _url_keys(self, product: Product) -> list[Any]:
        """The product's URL key in each store view (what its rewrites are made of)."""
        return [
            self.resolve(product, store_id, "url_key")
            for store_id in sorted(set(self.stores.values()) - {0})
        ]

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
                    raise WebapiError(400, MSG_URL_KEY)

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
            product = self.seeded(sku)
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

    def seeded(self, sku: str) -> Product:
        product = self.find(sku)
        if product is None:
            raise MagentoSimulatorError(f"no product with SKU {sku!r}")
        return product

    def value(self, sku: str, store: str, attribute: str) -> Any:
        with self.lock:
            product = self.seeded(sku)
            if attribute == "category_ids":
                return list(product.category_ids)
            return self.resolve(product, self.store_id(store), attribute)

    def override(self, sku: str, store: str, attribute: str) -> Any | None:
        with self.lock:
            product = self.seeded(sku)
            return product.values.get(self.store_id(store), {}).get(attribute)
