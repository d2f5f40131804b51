"""How the keys of an exported catalog row become catalogflow field names.

Exports nest (``{"attributes": {"brand": "Acme"}}``); ProductChanged is flat. A nested
object becomes dotted names (``attributes.brand``), unless a field map (``import --map
FILE``, YAML or JSON) names them otherwise::

    attributes.brand: brand          # a source key or dotted path → a catalogflow field
    attributes.name_de: name@de_DE   # a target may carry a locale
    attributes.name: title           # no locale: attributes.name@fr_FR → title@fr_FR too
    specs: ""                        # "" lifts what is under it: specs.color → color
    variants: null                   # null drops the key and everything under it

An entry naming an object applies to everything under it (the longest entry wins).
CSV headers are the same dotted names, so the map renames columns too. A key with a
segment starting with ``_`` (``_id``, ``attributes._source``) is ignored unless the map
names it; the import reports such keys once. Pure Python: no Kafka here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalogflow.streams.errors import CatalogflowError

SEPARATOR = "."
LOCALE_MARK = "@"
PRIVATE_MARK = "_"
#: Top-level keys kept as they are: the ProductChanged-like list of values.
KEPT_AS_IS = frozenset({"values"})
#: Avro ``long``: a JSON integer outside it cannot be written.
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
SCALARS = (str, bool, int, float)


class FieldMapError(CatalogflowError):
    """The map file cannot be used; the message names the file and the entry."""


class UnusableKey(CatalogflowError):
    """One key of a row cannot become a field; the message starts with the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f'key "{key}": {problem}')
        self.key = key


@dataclass(frozen=True)
class Flattened:
    """A row as flat catalogflow keys, and the ``_`` keys left out of it."""

    fields: dict[str, Any]
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldMap:
    """Source key or dotted path → catalogflow field (``""`` lifts, ``None`` drops)."""

    entries: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, check_target: Callable[[str], None] = lambda _: None) -> FieldMap:
        """Read a YAML or JSON map; ``check_target`` raises :class:`CatalogflowError` for
        a target that is no catalogflow field. Every problem names the file and entry."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FieldMapError(f"cannot read the field map {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise FieldMapError(f"the field map {path} is not UTF-8 text") from exc
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FieldMapError(f"the field map {path} is not valid {kind}: {first}") from exc
        if not isinstance(data, dict):
            raise FieldMapError(
                f"the field map {path} must be a mapping of source key: catalogflow field "
                "(e.g. attributes.brand: brand)"
            )
        entries: dict[str, str | None] = {}
        for source, target in data.items():
            where = f"the field map {path}, entry {source!r}"
            if not isinstance(source, str) or not source or "" in source.split(SEPARATOR):
                raise FieldMapError(f"{where}: a source is a key or dotted path (a.b)")
            if target is not None and not isinstance(target, str):
                raise FieldMapError(
                    f'{where}: the target must be a field name, "" or null, not {target!r}'
                )
            if target:
                try:
                    check_target(target)
                except CatalogflowError as exc:
                    raise FieldMapError(f"{where}: {exc}") from None
            entries[source] = target
        return cls(entries)

    def resolve(self, key: str) -> str | None:
        """The field ``key`` becomes: renamed by the longest matching entry, ``None`` if
        the map drops it; a key no entry names keeps its name."""
        return self.match(key)[1]

    def match(self, key: str) -> tuple[str | None, str | None]:
        """(the entry that applies to ``key`` or ``None``, the field ``key`` becomes)."""
        if key in self.entries:
            return key, self.entries[key]
        base, mark, locale = key.rpartition(LOCALE_MARK) if LOCALE_MARK in key else (key, "", "")
        parts = base.split(SEPARATOR)
        for end in range(len(parts), 0, -1):
            prefix = SEPARATOR.join(parts[:end])
            if prefix not in self.entries:
                continue
            target = self.entries[prefix]
            if target is None:
                return prefix, None
            name = SEPARATOR.join(p for p in (target, *parts[end:]) if p)
            if mark and LOCALE_MARK not in target:
                name = f"{name}{mark}{locale}"
            return prefix, name
        return None, key


def private_part(key: str) -> str | None:
    """``attributes._source.x`` → ``attributes._source``: the key up to its first
    segment starting with ``_``, or ``None`` when no segment does."""
    parts = key.split(SEPARATOR)
    for end, part in enumerate(parts, start=1):
        if part.startswith(PRIVATE_MARK):
            return SEPARATOR.join(parts[:end])
    return None


def flatten(fields: Mapping[str, Any], field_map: FieldMap | None = None) -> Flattened:
    """The row as flat catalogflow keys with values ProductChanged can hold; raises
    :class:`UnusableKey` naming the first key whose value cannot become an attribute."""
    field_map = field_map or FieldMap()
    out: dict[str, Any] = {}
    came_from: dict[str, str] = {}
    ignored: dict[str, None] = {}
    for key, value in _leaves(fields):
        entry, target = field_map.match(key)
        if target is None:
            continue
        private = private_part(key)
        if private is not None and (entry is None or len(entry) < len(private)):
            ignored[private] = None  # the map does not name it: left out, reported once
            continue
        if not target:
            raise UnusableKey(key, 'the map lifts it with "", but it is not an object')
        if target in came_from:
            raise UnusableKey(key, f'it becomes "{target}", and so does key "{came_from[target]}"')
        came_from[target] = key
        out[target] = value if target in KEPT_AS_IS else attribute_value(key, value)
    return Flattened(out, tuple(ignored))


def attribute_value(key: str, value: Any, *, mappable: bool = True) -> Any:
    """``value`` as ProductChanged holds it: a scalar, or a list of scalars as a list of
    text (the schema's lists are strings: multiselect option codes). ``mappable``: the
    key is one a ``--map`` entry can drop, so the message says how."""
    if value is None or isinstance(value, SCALARS):
        _check_number(key, value)
        return value
    if isinstance(value, list):
        _check_list(key, value, f' (drop it with a --map entry "{key}: null")' if mappable else "")
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    if isinstance(value, dict):
        raise UnusableKey(key, "an object cannot become an attribute; give its fields as keys")
    raise UnusableKey(key, f"a {type(value).__name__} cannot become an attribute")


def _check_list(key: str, items: list[Any], drop: str) -> None:
    if items and all(isinstance(item, dict) for item in items):
        raise UnusableKey(key, f"a list of objects cannot become an attribute{drop}")
    for position, item in enumerate(items, start=1):
        if isinstance(item, dict):
            raise UnusableKey(key, f"an object inside a list cannot become an attribute{drop}")
        if isinstance(item, list):
            raise UnusableKey(key, f"a list inside a list cannot become an attribute{drop}")
        if item is None:
            raise UnusableKey(key, f"item {position} of the list is null; a list holds values")
        _check_number(key, item)


def _check_number(key: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and not LONG_MIN <= value <= LONG_MAX:
        raise UnusableKey(key, f"the number {value} does not fit a 64-bit integer")


def _leaves(fields: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Every (dotted key, value) of a row; an object becomes its leaves."""
    for name, value in fields.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and not (not prefix and key in KEPT_AS_IS):
            yield from _leaves(value, f"{key}{SEPARATOR}")  # an empty object: no leaves
        else:
            yield key, value
