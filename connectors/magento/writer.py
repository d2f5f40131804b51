"""Writes one SyncRequest to Magento and answers with its SyncResult.

The conflict guard: just before writing, the product is read again in the request's
store scope, and each field's current value is compared with the value the AI read
(``read_value``). A field a person changed since is a CONFLICT and is not written (the
person's value stays); a field that already holds the new value is UNCHANGED; the rest
go out in one PUT of only those fields. Values are compared normalised: strings
stripped, option ids as their labels (case-insensitively), numbers as numbers.

On a store view, a value inherited from the global scope counts as "no store value",
the same way :mod:`~catalogflow.connectors.magento.pull` leaves out locale values equal
to the global ones: a ``read_value`` of None matches an inherited value.

One read of the product per write: a store-view write needs the global values too (to
tell an inherited value from a store value), and takes them from the global write of
the same product that just ran (its read, or the product its save returned; or the
global read of another store view's write) when that is at most
:data:`GLOBAL_VALUES_FRESH_S` old, as fresh as a second read would be under load;
otherwise it reads them. The sink writes one product's requests one after the
other, the global scope first, so a task's store-view writes find them.

Select and multiselect values arrive as labels and are written as option ids; a missing
label fails the field (INVALID_OPTION_VALUE) or is created (``missing_option=create``).
A translated ``name`` on a store view takes a ``url_key`` derived from it, with the SKU
appended if Magento says the key is taken.

A store-view value for an attribute Magento keeps globally (or per website) is refused:
the save would change it for every store view.

A field that cannot be mapped (unknown attribute, missing option) is an ERROR on its own;
the other fields are still written, so the ledger records what Magento holds.

How a save goes out is the one thing the writer is handed (``save``): a PUT through the
client by default, or an async/bulk operation awaited to its end
(:class:`~catalogflow.connectors.magento.bulk.BulkSaver`). Everything before it (the read,
the guard, the body) and after it (url key retry, inheritance, the field results) is
the same for both.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from catalogflow.connectors.magento.client import TOP_LEVEL_FIELDS, MagentoClient
from catalogflow.connectors.magento.config import MagentoConfig
from catalogflow.connectors.magento.errors import ErrorCategory, MagentoError
from catalogflow.streams.clock import Clock, SystemClock
from catalogflow.streams.records import (
    SyncFieldResult,
    SyncRequest,
    SyncResult,
    SyncStatus,
    Value,
)
from catalogflow.streams.records import sync_result as result_record
from catalogflow.streams.sync import GLOBAL_SCOPE

OPTION_INPUTS: Final = frozenset({"select", "multiselect"})
#: Kinds of the top-level fields, which need no metadata call.
TOP_LEVEL_INPUTS: Final = {
    "name": "text",
    "price": "price",
    "weight": "weight",
    "status": "status",
    "visibility": "visibility",
}
STATUS_IDS: Final = {"enabled": 1, "disabled": 2}
VISIBILITY_IDS: Final = {
    "not visible individually": 1,
    "catalog": 2,
    "search": 3,
    "catalog, search": 4,
}
NOT_STORE_SCOPED: Final = frozenset({"global", "website"})
SHOWN_CHARS: Final = 60
#: How long the global values a global-scope write read (or saved) stand in for a
#: store-view write's second read of the same product.
GLOBAL_VALUES_FRESH_S: Final = 1.0
#: Saves values (Magento's form) on a SKU at a store scope; answers the saved product,
#: or ``{}`` when the way of saving does not return it. Raises MagentoError.
Save = Callable[[str, str, Mapping[str, Any]], Awaitable[dict[str, Any]]]
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "œ": "oe", "þ": "th"})


def url_key_for(text: str) -> str:
    """A Magento URL key: ASCII-folded, lower case, words joined by hyphens."""
    folded = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    ascii_text = folded.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


@dataclass
class _Field:
    """One requested field on its way through the guard."""

    attribute: str
    value: Value
    read_value: Value
    status: SyncStatus | None = None
    message: str | None = None
    category: ErrorCategory | None = None


class MagentoWriter:
    """Writes SyncRequests for ``target="magento"`` through a :class:`MagentoClient`."""

    def __init__(
        self,
        client: MagentoClient,
        config: MagentoConfig,
        *,
        clock: Clock | None = None,
        save: Save | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._save: Save = save or client.save_fields
        #: SKU → (monotonic time taken, global values), oldest first.
        self._global_values: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    async def write(self, request: SyncRequest) -> SyncResult:
        """The request's fields written (or not, and why) as a SyncResult record.

        Never raises for Magento's answers: a failure is an ERROR result with the
        category and Magento's message."""
        fields = [_Field(f["attribute"], f["value"], f["read_value"]) for f in request["fields"]]
        extra: list[SyncFieldResult] = []
        failure: MagentoError | None = None
        try:
            extra = await self._write(request, fields)
        except MagentoError as exc:
            failure = exc
            for f in fields:
                if f.status is None:
                    f.status, f.message, f.category = "ERROR", exc.message, exc.category
        return self._result(request, fields, extra, failure)

    async def _write(self, request: SyncRequest, fields: list[_Field]) -> list[SyncFieldResult]:
        sku, store = request["sku"], request["store_scope"]
        current = _values(await self.client.get_product(sku, store))
        base = current if store == GLOBAL_SCOPE else await self._base_values(sku)
        if store == GLOBAL_SCOPE:
            self._remember_global(sku, current)
        payload: dict[str, Any] = {}
        for f in fields:
            try:
                kind = await self._kind(f.attribute, store)
                await self._guard(f, kind, store, current, base)
                if f.status is None:
                    payload[f.attribute] = await self._magento_value(f, kind, store)
            except MagentoError as exc:
                if exc.category in ("AUTH", "CONNECTION"):
                    raise  # the whole request fails, not this field
                f.status, f.message, f.category = "ERROR", exc.message, exc.category
        if not payload:
            return []
        derived = None
        asked = {f.attribute for f in fields}
        if store != GLOBAL_SCOPE and "name" in payload and "url_key" not in asked:
            derived = url_key_for(str(payload["name"] or ""))
            if derived and derived != str(current.get("url_key") or ""):
                payload["url_key"] = derived
            else:
                derived = None
        if store == GLOBAL_SCOPE:
            self._global_values.pop(sku, None)  # what the save leaves is not known yet
        try:
            saved = await self._save(sku, store, payload)
        except MagentoError as exc:
            if exc.category != "DUPLICATE_URL_KEY" or derived is None:
                raise
            payload["url_key"] = f"{derived}-{url_key_for(sku)}"
            saved = await self._save(sku, store, payload)
        if store == GLOBAL_SCOPE and saved:
            self._remember_global(sku, _values(saved))
        if store != GLOBAL_SCOPE:
            await self._restore_inheritance(sku, store, current, base, set(payload))
        for f in fields:
            if f.status is None:
                f.status = "SYNCED"
        if derived is None:
            return []
        return [
            {
                "attribute": "url_key",
                "status": "SYNCED",
                "message": f"{payload['url_key']}, derived from the translated name",
            }
        ]

    async def _base_values(self, sku: str) -> dict[str, Any]:
        """The product's global values for a store-view write: those a write of the
        product saw in the last :data:`GLOBAL_VALUES_FRESH_S`, else read."""
        remembered = self._global_values.get(sku)
        if remembered is not None:
            taken_at, values = remembered
            if self._clock.monotonic() - taken_at <= GLOBAL_VALUES_FRESH_S:
                return values
        read = _values(await self.client.get_product(sku))
        self._remember_global(sku, read)  # for the product's next store view
        return read

    def _remember_global(self, sku: str, values: dict[str, Any]) -> None:
        """Keep the global values a write saw, dropping those too old to use."""
        now = self._clock.monotonic()
        self._global_values[sku] = (now, values)
        self._global_values.move_to_end(sku)
        while (
            self._global_values
            and now - next(iter(self._global_values.values()))[0] > GLOBAL_VALUES_FRESH_S
        ):
            self._global_values.popitem(last=False)

    async def _restore_inheritance(
        self,
        sku: str,
        store: str,
        current: Mapping[str, Any],
        base: Mapping[str, Any],
        written: set[str],
    ) -> None:
        """Undo Magento's store-view save bug (magento/magento2#8897, #9186): a save
        through a store view may copy every store-scoped value into the view, so later
        global edits stop showing there. Sending ``null`` for a value restores "Use
        Default Value"; it is sent for the store-scoped values that were inherited
        before our save (a no-op on a Magento without the bug)."""
        restore: dict[str, Any] = {}
        for code, value in current.items():
            if code in written or code in _IDENTITY or value is None or base.get(code) != value:
                continue
            try:
                metadata = await self.client.attribute(code)
            except MagentoError:
                continue  # not an EAV attribute (category_ids, …): nothing to restore
            if metadata.get("scope") == "store":
                restore[code] = None
        if restore:
            await self._save(sku, store, restore)

    async def _kind(self, attribute: str, store: str) -> str:
        """The attribute's input type; refuses a store-view value for an attribute that
        is not store-scoped (Magento would write it for every store view)."""
        metadata = await self.client.attribute(attribute)
        scope = metadata.get("scope")
        if store != GLOBAL_SCOPE and scope in NOT_STORE_SCOPED:
            raise MagentoError(
                "OTHER",
                f"attribute {attribute} has scope {scope} in Magento: a value for store view "
                f"{store} would change it for every store view, so it is not written",
            )
        if attribute in TOP_LEVEL_INPUTS:
            return TOP_LEVEL_INPUTS[attribute]
        return str(metadata.get("frontend_input") or "text")

    async def _guard(
        self,
        f: _Field,
        kind: str,
        store: str,
        current: Mapping[str, Any],
        base: Mapping[str, Any],
    ) -> None:
        """Mark the field CONFLICT or UNCHANGED, or leave it to be written."""
        now = await self._comparable(f.attribute, kind, current.get(f.attribute), raw=True)
        inherited = store != GLOBAL_SCOPE and now == await self._comparable(
            f.attribute, kind, base.get(f.attribute), raw=True
        )
        new = await self._comparable(f.attribute, kind, f.value, raw=False)
        if new == now or (new is None and inherited):
            f.status, f.message = "UNCHANGED", "Magento already holds this value"
            return
        read = await self._comparable(f.attribute, kind, f.read_value, raw=False)
        if read == now or (read is None and inherited):
            return
        f.status = "CONFLICT"
        f.message = (
            f"changed in Magento since the AI read it: now {_shown(current.get(f.attribute))}, "
            f"read {_shown(f.read_value)}; the value in Magento stays"
        )

    async def _comparable(self, attribute: str, kind: str, value: Any, *, raw: bool) -> Any:
        """A value in a form where equal means "the same to a person": labels for
        options (casefolded, as a set), numbers as floats, strings stripped; None for
        nothing (None, "", [])."""
        if value is None or value == "" or value == []:
            return None
        if kind == "status":
            number = _status_id(value)
            return number if number is not None else _scalar(value)
        if kind == "visibility":
            number = _visibility_id(value)
            return number if number is not None else _scalar(value)
        if kind == "boolean":
            flag = _flag(value)
            return flag if flag is not None else _scalar(value)
        if kind in OPTION_INPUTS:
            items = _items(value, split=raw and kind == "multiselect")
            options = await self.client.options(attribute)
            by_id = {o["value"]: o["label"] for o in options}
            labels = []
            for item in items:
                if raw or not any(
                    o["label"].strip().casefold() == item.casefold() for o in options
                ):
                    item = by_id.get(item, item)
                labels.append(item.strip().casefold())
            return frozenset(labels) or None
        if isinstance(value, list):
            return tuple(_scalar(v) for v in value)
        return _scalar(value)

    async def _magento_value(self, f: _Field, kind: str, store: str) -> Any:
        """The value as Magento takes it: option ids, typed top-level fields, strings."""
        value = f.value
        if value is None:
            return None  # on a store view: back to the inherited value
        if kind == "status":
            number = _status_id(value)
            if number is None:
                raise MagentoError("OTHER", f"status {value!r} is not enabled or disabled")
            return number
        if kind == "visibility":
            number = _visibility_id(value)
            if number is None:
                raise MagentoError("OTHER", f"visibility {value!r} is not a visibility")
            return number
        if kind in ("price", "weight") and f.attribute in TOP_LEVEL_FIELDS:
            amount = _number(value)
            if amount is None:
                raise MagentoError("OTHER", f"{f.attribute} {value!r} is not a number")
            return int(amount) if amount.is_integer() else amount
        if f.attribute in TOP_LEVEL_FIELDS:
            return _text(value)
        if kind in OPTION_INPUTS:
            labels = _items(value, split=False)
            ids = [await self._option_id(f.attribute, label, store) for label in labels]
            return ",".join(ids) if kind == "multiselect" else ids[0]
        if kind == "boolean":
            flag = _flag(value)
            if flag is None:
                raise MagentoError("OTHER", f"{f.attribute} {value!r} is not yes or no")
            return "1" if flag else "0"
        if isinstance(value, list):
            return ",".join(_text(v) for v in value)
        return _text(value)

    async def _option_id(self, attribute: str, label: str, store: str) -> str:
        """The option id for a label (admin label, else the store view's, else an id).
        Options are cached by the client; a label they lack is looked up once more in
        Magento's current options (a person may have added it since)."""
        found = await self._known_option_id(attribute, label, store)
        if found is None:
            self.client.forget_options(attribute)
            found = await self._known_option_id(attribute, label, store)
        if found is not None:
            return found
        if self.config.missing_option == "create":
            return await self.client.create_option(attribute, label.strip())
        raise MagentoError(
            "INVALID_OPTION_VALUE",
            f"attribute {attribute} has no option {label!r} in Magento (with "
            "magento_missing_option=create catalogflow would add it)",
        )

    async def _known_option_id(self, attribute: str, label: str, store: str) -> str | None:
        scopes = [GLOBAL_SCOPE] if store == GLOBAL_SCOPE else [GLOBAL_SCOPE, store]
        wanted = label.strip().casefold()
        for scope in scopes:
            for option in await self.client.options(attribute, scope):
                if option["label"].strip().casefold() == wanted:
                    return option["value"]
        if any(o["value"] == label.strip() for o in await self.client.options(attribute)):
            return label.strip()
        return None

    def _result(
        self,
        request: SyncRequest,
        fields: Sequence[_Field],
        extra: list[SyncFieldResult],
        failure: MagentoError | None,
    ) -> SyncResult:
        statuses = {f.status for f in fields}
        errors = [f for f in fields if f.status == "ERROR"]
        conflicts = [f.attribute for f in fields if f.status == "CONFLICT"]
        status: SyncStatus
        category: ErrorCategory | None = None
        message: str | None = None
        if failure is not None or errors:
            status = "ERROR"
            category = failure.category if failure is not None else errors[0].category
            message = failure.message if failure is not None else errors[0].message
        elif conflicts:
            status = "CONFLICT"
            message = f"changed in Magento since the AI read them: {', '.join(conflicts)}"
        elif "SYNCED" in statuses:
            status = "SYNCED"
        else:
            status = "UNCHANGED"
        answers: list[SyncFieldResult] = [
            {"attribute": f.attribute, "status": f.status or "ERROR", "message": f.message}
            for f in fields
        ]
        return result_record(
            request,
            status,
            at=self._clock.now(),
            fields=answers + extra,
            error_category=category,
            message=message,
        )


#: Never sent back as null: they identify the product or are not store values.
_IDENTITY = frozenset({"sku", "id", "type_id", "attribute_set_id", "created_at", "updated_at"})


def _values(product: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute code → raw value: top-level fields and ``custom_attributes``."""
    values = {k: product[k] for k in TOP_LEVEL_FIELDS if k in product}
    for item in product.get("custom_attributes") or []:
        if isinstance(item, Mapping) and "attribute_code" in item:
            values[str(item["attribute_code"])] = item.get("value")
    return values


def _items(value: Any, *, split: bool) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = _text(value).strip()
    if split:
        return [part.strip() for part in text.split(",") if part.strip()]
    return [text] if text else []


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    number = _number(value)
    if number is not None:
        return number
    return _text(value).strip()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    numeric = isinstance(value, int | float)
    if not (numeric or (isinstance(value, str) and _NUMBER.fullmatch(value.strip()))):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().casefold()
    if text in ("1", "yes", "true"):
        return True
    if text in ("0", "no", "false"):
        return False
    return None


def _status_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return 1 if value else 2
    text = _text(value).strip().casefold()
    if text in STATUS_IDS:
        return STATUS_IDS[text]
    return int(text) if text in ("1", "2") else None


def _visibility_id(value: Any) -> int | None:
    text = _text(value).strip().casefold()
    if text in VISIBILITY_IDS:
        return VISIBILITY_IDS[text]
    return int(text) if text in ("1", "2", "3", "4") else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
