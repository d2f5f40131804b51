"""Every TypedDict in ``streams.records`` matches its Avro schema: the same fields, all
required, with the same types (nullable unions, enums, nested records)."""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from importlib import resources
from typing import Any, Literal, get_args, get_origin

import pytest
from catalogflow.streams import records

#: A type reduced to something both sides can be compared by: a primitive's name,
#: ("list", item), ("map", value), ("enum", symbols), ("record", name) or ("union", members).
Shape = str | tuple[Any, ...]

_PRIMITIVES = {
    "string": "str",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "boolean": "bool",
    "bytes": "bytes",
    "null": "null",
}
_PYTHON = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes"}
_PYTHON[type(None)] = "null"
_PYTHON[datetime] = "timestamp"


def _schemas() -> dict[str, dict[str, Any]]:
    folder = resources.files("catalogflow.schemas")
    found = [entry for entry in folder.iterdir() if entry.name.endswith(".avsc")]
    return {entry.name: json.loads(entry.read_text(encoding="utf-8")) for entry in found}


def _avro_shape(avro: Any, named: dict[str, dict[str, Any]]) -> Shape:
    """The shape of an Avro type; every named type met is added to ``named``."""
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro]
        return _avro_shape(named[avro], named)  # a named type used again
    if isinstance(avro, list):
        return ("union", frozenset(_avro_shape(member, named) for member in avro))
    kind = avro["type"]
    if avro.get("logicalType") == "timestamp-millis":
        return "timestamp"
    if kind == "record":
        named[avro["name"]] = avro
        for field in avro["fields"]:
            _avro_shape(field["type"], named)
        return ("record", avro["name"])
    if kind == "enum":
        named[avro["name"]] = avro
        return ("enum", frozenset(avro["symbols"]))
    if kind == "array":
        return ("list", _avro_shape(avro["items"], named))
    if kind == "map":
        return ("map", _avro_shape(avro["values"], named))
    return _avro_shape(kind, named)


def _python_shape(annotation: Any) -> Shape:
    origin = get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return ("union", frozenset(_python_shape(member) for member in get_args(annotation)))
    if origin is Literal:
        return ("enum", frozenset(get_args(annotation)))
    if origin is list:
        return ("list", _python_shape(get_args(annotation)[0]))
    if origin is dict:
        key, value = get_args(annotation)
        assert key is str, "an Avro map is keyed by strings"
        return ("map", _python_shape(value))
    if typing.is_typeddict(annotation):
        return ("record", annotation.__name__)
    return _PYTHON[annotation]


def _named(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every named type (records and enums) a schema file defines, by name."""
    named: dict[str, dict[str, Any]] = {}
    _avro_shape(schema, named)
    return named


def _records_of(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [avro for avro in _named(schema).values() if avro["type"] == "record"]


def _mismatches(avro: dict[str, Any], typed: Any, named: dict[str, dict[str, Any]]) -> list[str]:
    """How the TypedDict ``typed`` differs from the Avro record ``avro``; ``named`` are
    the named types of its file."""
    name = avro["name"]
    hints = typing.get_type_hints(typed)
    fields = [field["name"] for field in avro["fields"]]
    found = []
    if list(hints) != fields:
        found.append(f"{name} fields {list(hints)}, the schema has {fields}")
    if typed.__required_keys__ != frozenset(hints):
        found.append(f"{name} has optional keys; a decoded record carries every field")
    for field in avro["fields"]:
        if field["name"] in hints:
            expected = _avro_shape(field["type"], named)
            actual = _python_shape(hints[field["name"]])
            if actual != expected:
                found.append(f"{name}.{field['name']} is {actual}, the schema has {expected}")
    return found


SCHEMAS = _schemas()
CASES = sorted(
    {(file, avro["name"]) for file, schema in SCHEMAS.items() for avro in _records_of(schema)}
)


def test_every_typed_record_is_a_schema_record_and_every_schema_is_checked() -> None:
    typed = {name for name, value in vars(records).items() if typing.is_typeddict(value)}
    assert typed == {name for _, name in CASES}  # no type without a schema, and back
    assert {name.removesuffix(".avsc") for name in SCHEMAS} <= typed
    assert len(SCHEMAS) >= 19  # the shipped schemas were found at all


@pytest.mark.parametrize(("file", "name"), CASES, ids=[f"{f}:{n}" for f, n in CASES])
def test_the_typed_record_has_the_schemas_fields_and_types(file: str, name: str) -> None:
    avro = next(r for r in _records_of(SCHEMAS[file]) if r["name"] == name)
    typed = getattr(records, name, None)
    assert typed is not None and typing.is_typeddict(typed), f"records.{name} is missing"
    assert _mismatches(avro, typed, _named(SCHEMAS[file])) == []


def test_the_check_sees_a_schema_that_moved_on_without_its_type() -> None:
    named = _named(SCHEMAS["Task.avsc"])
    origin = named["Origin"]
    added = {**origin, "fields": [*origin["fields"], {"name": "added", "type": "string"}]}
    nullable = {
        **origin,
        "fields": [{**origin["fields"][0], "type": ["null", "string"]}, *origin["fields"][1:]],
    }
    assert _mismatches(origin, records.Origin, named) == []
    assert len(_mismatches(added, records.Origin, named)) == 1
    assert len(_mismatches(nullable, records.Origin, named)) == 1
