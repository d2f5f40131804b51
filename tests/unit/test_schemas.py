"""The shipped .avsc files are valid for both Avro implementations and evolve safely."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import avro.schema
import fastavro
import fastavro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from catalogflow.streams.codec import SchemaStore

from tests.unit.test_codec import SAMPLES

ROOT = resources.files("catalogflow.schemas")
CURRENT = sorted((p for p in ROOT.iterdir() if p.name.endswith(".avsc")), key=lambda p: p.name)
HISTORY = sorted(
    (p for p in ROOT.joinpath("history").iterdir() if p.name.endswith(".avsc")),
    key=lambda p: p.name,
)
ALL = CURRENT + HISTORY
EXPECTED_NAMES = {
    "ProductChanged",
    "ProductSnapshot",
    "WorkflowCommand",
    "Task",
    "TaskEvent",
    "ModerationItem",
    "ModerationDecision",
    "SyncRequest",
    "SyncResult",
    "DeadLetter",
    "TaskState",
    "WorkflowVersion",
    "RunProgress",
    "RunState",
    "SourceHash",
    "LlmResult",
    "SyncLedgerEntry",
    "SyncTaskState",
    "RememberedDecision",
}


def _load(path: Traversable) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _records(schema: Any) -> list[dict[str, Any]]:
    """Every record definition nested anywhere in a schema JSON document."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            found += _records(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            found.append(schema)
            for field in schema["fields"]:
                found += _records(field["type"])
        elif schema.get("type") == "array":
            found += _records(schema["items"])
        elif schema.get("type") == "map":
            found += _records(schema["values"])
    return found


def test_every_contract_schema_is_shipped() -> None:
    assert {p.name.removesuffix(".avsc") for p in CURRENT} == EXPECTED_NAMES
    assert SchemaStore.shipped().names() == sorted(EXPECTED_NAMES)
    assert [p.name for p in HISTORY] == [
        "LlmResult.v1.avsc",
        "ModerationDecision.v1.avsc",
        "ModerationItem.v1.avsc",
        "ModerationItem.v2.avsc",
        "ProductChanged.v1.avsc",
        "RememberedDecision.v1.avsc",
        "RunProgress.v1.avsc",
        "RunProgress.v2.avsc",
        "RunState.v1.avsc",
        "TaskEvent.v1.avsc",
        "TaskState.v1.avsc",
        "WorkflowCommand.v1.avsc",
    ]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parses_with_fastavro_and_apache_avro(path: Traversable) -> None:
    source = _load(path)
    assert source["type"] == "record"
    assert source["namespace"] == "io.catalogflow"
    assert path.name.split(".")[0] == source["name"]
    fastavro.parse_schema(source, named_schemas={})
    avro.schema.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_field_has_a_doc(path: Traversable) -> None:
    records = _records(_load(path))
    assert records
    undocumented = [
        f"{record['name']}.{field['name']}"
        for record in records
        for field in record["fields"]
        if not field.get("doc", "").strip()
    ]
    assert undocumented == []


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.name)
def test_fingerprint_matches_apache_avro(path: Traversable) -> None:
    # The spec's Parsing Canonical Form drops logicalType and writes primitives in their
    # simple form ("long"); Java and fastavro do, but avro-python 1.12 keeps
    # {"type":"long"} for a logical type. So compare on the schema without logical
    # types, which by the spec has the same canonical form.
    name = path.name.removesuffix(".avsc")
    plain = avro.schema.parse(json.dumps(_without_logical_types(_load(path))))
    ours = SchemaStore.shipped().fingerprint(name)
    assert plain.canonical_form == fastavro.schema.to_parsing_canonical_form(
        fastavro.parse_schema(_load(path), named_schemas={})
    )
    assert ours == plain.fingerprint("CRC-64-AVRO")
    assert len(ours) == 8


def test_fingerprint_is_the_spec_crc64_little_endian() -> None:
    # The Avro spec's own example: the fingerprint of the schema "int".
    assert avro.schema.parse('"int"').fingerprint() == bytes.fromhex("8f5c393f1ad57572")
    store = SchemaStore([("x", {"type": "record", "name": "R", "fields": []})])
    expected = avro.schema.parse('{"type": "record", "name": "R", "fields": []}').fingerprint()
    assert store.fingerprint("R") == expected


PRODUCT_CHANGED_V1_SAMPLE = {
    "event_id": "evt-1",
    "sku": "CAT-FOOD-1",
    "change_type": "UPDATED",
    "author": {"kind": "PERSON", "id": "u-7", "name": "Julia"},
    "source": "akeneo",
    "source_timestamp": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    "values": [{"attribute": "name", "locale": "de_DE", "scope": None, "value": "Katzenfutter"}],
    "categories": None,
    "supplier": None,
    "status": "enabled",
}


def _as_old(record: Any, schema: Any) -> Any:
    """``record`` with only the fields ``schema`` (an old version) has, recursively."""
    if isinstance(schema, dict) and schema.get("type") == "record" and isinstance(record, dict):
        return {f["name"]: _as_old(record.get(f["name"]), f["type"]) for f in schema["fields"]}
    if isinstance(schema, dict) and schema.get("type") == "array" and isinstance(record, list):
        return [_as_old(item, schema["items"]) for item in record]
    if isinstance(schema, list) and record is not None:
        records = [b for b in schema if isinstance(b, dict) and b.get("type") == "record"]
        return _as_old(record, records[0]) if records and isinstance(record, dict) else record
    return record


@pytest.mark.parametrize("path", HISTORY, ids=lambda p: p.name)
def test_history_versions_are_readable_by_the_current_schema(path: Traversable) -> None:
    old_source = _load(path)
    current_path = ROOT.joinpath(f"{old_source['name']}.avsc")
    old = fastavro.parse_schema(old_source, named_schemas={})
    new = fastavro.parse_schema(_load(current_path), named_schemas={})
    if path.name == "ProductChanged.v1.avsc":
        sample, expected = PRODUCT_CHANGED_V1_SAMPLE, {**PRODUCT_CHANGED_V1_SAMPLE, "family": None}
    else:
        # The current sample as the old writer saw it (fields it lacked left out); the
        # current reader fills those fields in with their defaults.
        sample = _as_old(SAMPLES[old_source["name"]], old_source)
        expected = _as_old(SAMPLES[old_source["name"]], old_source)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, sample)
    buf.seek(0)
    record = fastavro.schemaless_reader(buf, old, new)
    if path.name == "ProductChanged.v1.avsc":
        assert record == expected
    else:
        assert _as_old(record, old_source) == expected  # nothing the old writer had is lost
    # And the Apache library agrees the evolution is backward compatible.
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro: untyped
    result = checker.get_compatibility(
        avro.schema.parse(current_path.read_text(encoding="utf-8")),
        avro.schema.parse(path.read_text(encoding="utf-8")),
    )
    assert result.compatibility is SchemaCompatibilityType.compatible
