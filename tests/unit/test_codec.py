"""Single-object Avro encoding: round trips, evolution, and every way bytes can be bad."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import fastavro
import pytest
from catalogflow.streams.codec import (
    HEADER_SIZE,
    MAGIC,
    AvroCodec,
    SchemaStore,
    avro_codec,
)
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.records import AttributeValue
from faust.serializers import codecs
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2025, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)


def _ts(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


ATTRIBUTE_VALUES: list[AttributeValue] = [
    {"attribute": "name", "locale": "de_DE", "scope": "ecommerce", "value": "Trockenfutter Huhn"},
    {"attribute": "grain_free", "locale": None, "scope": None, "value": True},
    {"attribute": "pack_size_g", "locale": None, "scope": None, "value": 2000},
    {"attribute": "protein_pct", "locale": None, "scope": None, "value": 32.5},
    {"attribute": "flavours", "locale": None, "scope": "de", "value": ["chicken", "rice"]},
    {"attribute": "ean", "locale": None, "scope": None, "value": None},
]

FIELD_OUTPUT = {
    "field": "description",
    "locale": "en_US",
    "value": "Grain-free dry food for adult cats, with chicken.",
    "reasoning": "Rewrote the German supplier text.",
    "confidence": 0.91,
    "evidence": "Getreidefrei, mit Huhn",
    "approved": False,
}

ACTION_OUTPUT = {
    "action_id": "extract",
    "action_type": "extraction",
    "fields": [FIELD_OUTPUT],
    "model": "gpt-4o-mini",
    "prompt_version": "v7",
    "input_tokens": 812,
    "output_tokens": 96,
    "cost": 0.00042,
    "skipped": None,
}

TASK = {
    "task_id": "task-1",
    "run_id": "run-1",
    "workflow_id": "wf-describe",
    "workflow_version": 3,
    "sku": "CAT-DRY-2KG",
    "step_index": 1,
    "steps": ["extract", "describe", "translate"],
    "input_hash": "sha256:ab12",
    "created_at": _ts(0),
    "attempt": 0,
    "outputs": [ACTION_OUTPUT],
    "origin": {"topic": "product-changes", "partition": 4, "offset": 1234567},
    "definition": '{"id": "wf-describe"}',
    "history": ["extract"],
}

SAMPLES: dict[str, dict[str, Any]] = {
    "ProductChanged": {
        "event_id": "akeneo-7f1c",
        "sku": "CAT-DRY-2KG",
        "change_type": "UPDATED",
        "author": {"kind": "PERSON", "id": "julia", "name": "Julia K."},
        "source": "akeneo",
        "source_timestamp": _ts(0),
        "values": ATTRIBUTE_VALUES,
        "categories": ["Pet Food/Cat/Dry Cat Food"],
        "supplier": "acme-pet",
        "status": "enabled",
        "family": "cat_food",
    },
    "ProductSnapshot": {
        "sku": "CAT-DRY-2KG",
        "deleted": False,
        "values": [
            {**value, "updated_at": _ts(1), "author_kind": "PERSON"} for value in ATTRIBUTE_VALUES
        ],
        "categories": ["Pet Food/Cat/Dry Cat Food", "Sale"],
        "supplier": None,
        "status": "disabled",
        "family": None,
        "version": 42,
        "last_event_id": "akeneo-7f1c",
        "updated_at": _ts(1),
    },
    "WorkflowCommand": {
        "command_id": "cmd-1",
        "workflow_id": "wf-describe",
        "command": "RETRY_FAILED",
        "run_id": None,
        "issued_by": "ops@example.com",
        "issued_at": _ts(2),
        "arguments": {"sku_prefix": "CAT-", "limit": "100"},
        "signature": "ab" * 32,
    },
    "Task": TASK,
    "TaskEvent": {
        "event_id": "te-1",
        "task_id": "task-1",
        "run_id": "run-1",
        "workflow_id": "wf-describe",
        "sku": "CAT-DRY-2KG",
        "action_id": "describe",
        "step_index": 1,
        "status": "ERROR",
        "reason": "model returned no description",
        "failure_category": "INVALID_OUTPUT",
        "at": _ts(3),
        "details": {"model": "gpt-4o-mini"},
        "outputs": TASK["outputs"],
        "step_output": ACTION_OUTPUT,
    },
    "TaskState": {
        "task_id": "task-1",
        "run_id": "run-1",
        "workflow_id": "wf-describe",
        "sku": "CAT-DRY-2KG",
        "action_id": "describe",
        "step_index": 1,
        "status": "RUNNING",
        "reason": None,
        "failure_category": None,
        "at": _ts(3),
        "outputs": TASK["outputs"],
        "history": [
            {"status": "WAITING", "action_id": "extract", "reason": None, "at": _ts(1)},
            {"status": "RUNNING", "action_id": "describe", "reason": None, "at": _ts(3)},
        ],
        "attempt": 0,
        "source_partition": 2,
        "source_offset": 117,
    },
    "WorkflowVersion": {
        "workflow_id": "wf-describe",
        "version": 2,
        "content_hash": "ab" * 32,
        "definition": '{"id": "wf-describe"}',
        "source": "examples/dry-cat-food.yaml",
        "applied_by": "anna",
        "applied_at": _ts(0),
    },
    "RunProgress": {
        "run_id": "run-1",
        "workflow_id": "wf-describe",
        "kind": "TRANSITION",
        "partition": -1,
        "partitions": 0,
        "tasks_created": 0,
        "task_id": None,
        "action_id": None,
        "from_action_id": None,
        "from_status": None,
        "to_status": None,
        "workflow_version": 0,
        "mode": "",
        "at": _ts(3),
        "cost": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "budget": None,
        "source_partition": -1,
        "source_offset": -1,
        "transitions": [
            {
                "task_id": "task-1",
                "action_id": "describe",
                "from_action_id": "describe",
                "from_status": "WAITING",
                "to_status": "RUNNING",
                "at": _ts(3),
                "cost": 0.002,
                "input_tokens": 300,
                "output_tokens": 80,
                "source_partition": 2,
                "source_offset": 117,
            }
        ],
    },
    "LlmResult": {
        "key": "ab" * 32,
        "model": "gpt-4o-mini",
        "prompt_version": "p-0123456789ab",
        "content": '{"fields": {}}',
        "token_logprobs": None,
        "logprob_tokens": ["{", '"fields": {}}'],
        "logprob_values": [-0.001, -0.02],
        "input_tokens": 120,
        "output_tokens": 30,
        "cost": 0.0001,
        "created_at": _ts(4),
    },
    "SyncLedgerEntry": {
        "sku": "CAT-DRY-2KG",
        "target": "magento",
        "store_scope": "de",
        "attribute": "name",
        "value_hash": "ef" * 32,
        "request_id": "CAT-DRY-2KG@run-1#magento#de",
        "at": _ts(5),
    },
    "SyncTaskState": {
        "task_id": "CAT-DRY-2KG@run-1",
        "run_id": "run-1",
        "workflow_id": "wf-translate",
        "sku": "CAT-DRY-2KG",
        "steps": ["extract", "translate"],
        "step_index": 2,
        "attempt": 0,
        "request_ids": ["CAT-DRY-2KG@run-1#magento#all", "CAT-DRY-2KG@run-1#magento#de"],
        "outcomes": {"CAT-DRY-2KG@run-1#magento#all": "SYNCED: 2 fields written"},
    },
    "RememberedDecision": {
        "sku": "CAT-DRY-2KG",
        "action_id": "translate",
        "field": "shopping_title",
        "locale": "de_DE",
        "input_hash": "ab" * 32,
        "value_hash": "cd" * 32,
        "decision": "EDIT",
        "edited_value": "Trockenfutter Huhn 2 kg",
        "actor_id": "erik",
        "role": "EDITOR",
        "decided_at": _ts(6),
        "run_id": "run-1",
        "task_id": "CAT-DRY-2KG@run-1",
        "item_id": "CAT-DRY-2KG@run-1#2.0",
    },
    "SourceHash": {
        "sku": "CAT-DRY-2KG",
        "workflow_id": "wf-translate",
        "fields_hash": "cd" * 32,
        "task_id": "CAT-DRY-2KG@wf-translate.v1.abc~cdcdcdcdcdcd",
        "at": _ts(2),
    },
    "RunState": {
        "run_id": "run-1",
        "workflow_id": "wf-describe",
        "workflow_version": 2,
        "mode": "one_time",
        "status": "RUNNING",
        "partitions": 8,
        "partitions_scanned": 3,
        "tasks_created": 120,
        "counts": {"WAITING": 100, "RUNNING": 20},
        "action_counts": {"extract:RUNNING": 20},
        "started_at": _ts(0),
        "finished_at": None,
        "cost": 0.25,
        "input_tokens": 36000,
        "output_tokens": 9600,
        "budget": 5.0,
        "budget_reached": False,
        "applied_offset": 41,
        "scanned": {"0": 60, "1": 60, "2": 0},
        "applied_sources": {"0": 98, "2": 117},
    },
    "ModerationItem": {
        "item_id": "mod-1",
        "task_id": "task-1",
        "run_id": "run-1",
        "workflow_id": "wf-describe",
        "sku": "CAT-DRY-2KG",
        "action_id": "describe",
        "task": {**TASK, "origin": None, "attempt": 2},
        "source_values": ATTRIBUTE_VALUES[:2],
        "fields": [FIELD_OUTPUT, {**FIELD_OUTPUT, "locale": None, "confidence": None}],
        "review_reason": "confidence below 0.95",
        "requires_second_approval": True,
        "decisions": [
            {
                "decision": "EDIT",
                "actor_id": "julia",
                "role": "EDITOR",
                "at": _ts(4),
                "field": "description",
                "locale": "en_US",
                "change": "'Old text' -> 'New text'",
            },
        ],
        "created_at": _ts(3),
    },
    "ModerationDecision": {
        "decision_id": "dec-1",
        "item_id": "mod-1",
        "task_id": "task-1",
        "sku": "CAT-DRY-2KG",
        "decision": "EDIT",
        "field": "description",
        "locale": "en_US",
        "edited_value": "Grain-free dry food with chicken.",
        "feedback": None,
        "actor": {"id": "julia", "role": "MODERATOR"},
        "decided_at": _ts(5),
        "signature": None,
    },
    "SyncRequest": {
        "request_id": "sync-1",
        "task_id": "task-1",
        "run_id": "run-1",
        "sku": "CAT-DRY-2KG",
        "target": "magento",
        "store_scope": "de",
        "fields": [
            {
                "attribute": "description",
                "value": "Getreidefreies Trockenfutter.",
                "read_value": None,
                "value_hash": "sha256:cd34",
            },
            {
                "attribute": "flavours",
                "value": ["chicken"],
                "read_value": ["chicken", "rice"],
                "value_hash": "sha256:ef56",
            },
        ],
        "requested_at": _ts(6),
    },
    "SyncResult": {
        "request_id": "sync-1",
        "task_id": "task-1",
        "sku": "CAT-DRY-2KG",
        "target": "magento",
        "store_scope": "de",
        "status": "ERROR",
        "fields": [
            {"attribute": "description", "status": "SYNCED", "message": None},
            {"attribute": "flavours", "status": "ERROR", "message": "unknown option 'rice'"},
        ],
        "error_category": "INVALID_OPTION_VALUE",
        "message": "1 of 2 attributes failed",
        "at": _ts(7),
    },
    "DeadLetter": {
        "source_topic": "product-changes",
        "source_partition": 2,
        "source_offset": 99,
        "key": b"CAT-DRY-2KG",
        "value": b"\xc3\x01garbage",
        "reason": "malformed-body",
        "detail": "ProductChanged: IndexError: list index out of range",
        "agent": "ingest",
        "failed_at": _ts(8),
    },
}


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.shipped()


def test_there_is_a_sample_for_every_schema(store: SchemaStore) -> None:
    assert sorted(SAMPLES) == store.names()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(store: SchemaStore, name: str) -> None:
    data = store.encode(name, SAMPLES[name])
    assert data[:2] == MAGIC
    assert data[2:HEADER_SIZE] == store.fingerprint(name)
    assert store.writer_name(data) == name
    assert store.decode(data) == SAMPLES[name]
    assert store.decode(data, expected=name) == SAMPLES[name]


def test_timestamps_accept_epoch_millis(store: SchemaStore) -> None:
    record = {**SAMPLES["WorkflowCommand"], "issued_at": 1_740_821_415_123}
    decoded = store.decode(store.encode("WorkflowCommand", record))
    assert decoded["issued_at"] == T0


def test_defaults_fill_missing_optional_fields(store: SchemaStore) -> None:
    record = {k: v for k, v in SAMPLES["ProductChanged"].items() if k != "family"}
    assert store.decode(store.encode("ProductChanged", record))["family"] is None
    command = {k: v for k, v in SAMPLES["WorkflowCommand"].items() if k != "arguments"}
    assert store.decode(store.encode("WorkflowCommand", command))["arguments"] == {}


def test_a_record_that_does_not_fit_is_a_programming_error(store: SchemaStore) -> None:
    bad = copy.deepcopy(SAMPLES["ProductChanged"])
    bad["author"]["kind"] = "ROBOT"
    with pytest.raises(CatalogflowError, match=r"ProductChanged.*kind") as info:
        store.encode("ProductChanged", bad)
    assert not isinstance(info.value, InvalidMessage)
    with pytest.raises(CatalogflowError, match=r"TaskEvent.*step_index"):
        store.encode("TaskEvent", {**SAMPLES["TaskEvent"], "step_index": "one"})
    with pytest.raises(CatalogflowError, match="no schema named"):
        store.encode("Nope", {})


def test_old_bytes_decode_with_the_current_schema(store: SchemaStore) -> None:
    v1_source = json.loads(
        resources.files("catalogflow.schemas")
        .joinpath("history/ProductChanged.v1.avsc")
        .read_text(encoding="utf-8")
    )
    v1 = fastavro.parse_schema(v1_source, named_schemas={})
    fingerprint = bytes.fromhex(
        fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(v1), "CRC-64-AVRO")
    )
    assert fingerprint != store.fingerprint("ProductChanged")
    old = {k: v for k, v in SAMPLES["ProductChanged"].items() if k != "family"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1, old)
    data = MAGIC + fingerprint + body.getvalue()

    assert store.writer_name(data) == "ProductChanged"
    assert store.decode(data, expected="ProductChanged") == {**old, "family": None}


# -- every way the bytes can be bad ---------------------------------------------------


def _reason(store: SchemaStore, data: bytes, expected: str | None = None) -> str:
    with pytest.raises(InvalidMessage) as info:
        store.decode(data, expected)
    return info.value.reason


@pytest.fixture
def valid(store: SchemaStore) -> bytes:
    return store.encode("ProductChanged", SAMPLES["ProductChanged"])


def test_short_payload(store: SchemaStore, valid: bytes) -> None:
    assert _reason(store, b"\xc3\x01\x00") == "short-payload"
    assert _reason(store, b"") == "short-payload"
    assert _reason(store, valid[: HEADER_SIZE - 1]) == "short-payload"
    with pytest.raises(InvalidMessage) as info:
        store.writer_name(b"abc")
    assert info.value.reason == "short-payload"


def test_bad_magic(store: SchemaStore, valid: bytes) -> None:
    assert _reason(store, b"\xc3\x02" + valid[2:]) == "bad-magic"
    assert _reason(store, b'{"sku": "CAT-DRY-2KG"}') == "bad-magic"


def test_unknown_schema(store: SchemaStore, valid: bytes) -> None:
    fingerprint = bytes.fromhex("0123456789abcdef")
    with pytest.raises(InvalidMessage) as info:
        store.decode(MAGIC + fingerprint + valid[HEADER_SIZE:])
    assert info.value.reason == "unknown-schema"
    assert "0123456789abcdef" in info.value.detail


def test_truncated(store: SchemaStore, valid: bytes) -> None:
    assert _reason(store, valid[:-1]) == "truncated"
    assert _reason(store, valid[: HEADER_SIZE + 5]) == "truncated"
    assert _reason(store, valid[:HEADER_SIZE]) == "truncated"


def test_every_cut_of_a_valid_payload_is_rejected(store: SchemaStore) -> None:
    for name, sample in SAMPLES.items():
        data = store.encode(name, sample)
        for cut in range(len(data)):
            with pytest.raises(InvalidMessage):
                store.decode(data[:cut])


def test_malformed_body(store: SchemaStore, valid: bytes) -> None:
    header = valid[:HEADER_SIZE]
    # event_id with a negative length (zig-zag 0x03 = -2)
    assert _reason(store, header + b"\x03abcdef") == "malformed-body"
    # ChangeType index 9 of 3 symbols
    assert _reason(store, header + b"\x02a\x02b\x12" + b"\x00" * 40) == "malformed-body"
    # invalid UTF-8 in event_id
    assert _reason(store, header + b"\x04\xff\xfe" + b"\x00" * 40) == "malformed-body"
    # trailing bytes after a complete record
    assert _reason(store, valid + b"\x00") == "malformed-body"
    # garbage after a valid header: JSON ('{' reads as length -62)
    assert _reason(store, header + b'{"sku": "CAT-DRY-2KG", "values": []}') == "malformed-body"
    # garbage after a valid header: a negative ChangeType index (0x7f = -64)
    assert _reason(store, header + b"\x02x\x02y\x7f" + b"\x00" * 40) == "malformed-body"


def test_wrong_schema(store: SchemaStore, valid: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        store.decode(valid, expected="ProductSnapshot")
    assert info.value.reason == "wrong-schema"
    assert "ProductChanged" in info.value.detail


def test_expecting_an_unknown_schema_is_a_programming_error(
    store: SchemaStore, valid: bytes
) -> None:
    with pytest.raises(CatalogflowError, match="no schema named") as info:
        store.decode(valid, expected="ProductChange")
    assert not isinstance(info.value, InvalidMessage)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bodies_never_escape_as_library_errors(body: bytes) -> None:
    store = SchemaStore.shipped()
    for name in ("ProductChanged", "Task", "SyncRequest"):
        data = MAGIC + store.fingerprint(name) + body
        try:
            store.decode(data)
        except InvalidMessage as exc:
            assert exc.reason in {"truncated", "malformed-body"}


# -- hypothesis: attribute values of every kind round-trip ------------------------------

_text = st.text(max_size=40)
_value = st.one_of(
    st.none(),
    _text,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(_text, max_size=5),
)
_attribute_value = st.fixed_dictionaries(
    {
        "attribute": st.text(min_size=1, max_size=20),
        "locale": st.none() | st.sampled_from(["de_DE", "en_US", "fr_FR"]),
        "scope": st.none() | st.sampled_from(["ecommerce", "de", "default"]),
        "value": _value,
    }
)
_millis_datetime = st.integers(min_value=0, max_value=4_102_444_800_000).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)
_product_changed = st.fixed_dictionaries(
    {
        "event_id": st.uuids().map(str),
        "sku": st.text(min_size=1, max_size=30),
        "change_type": st.sampled_from(["CREATED", "UPDATED", "DELETED"]),
        "author": st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["PERSON", "SYSTEM", "IMPORT", "SUPPLIER", "CATALOGFLOW"]),
                "id": _text,
                "name": st.none() | _text,
            }
        ),
        "source": st.sampled_from(["akeneo", "magento", "import"]),
        "source_timestamp": _millis_datetime,
        "values": st.lists(_attribute_value, max_size=8),
        "categories": st.none() | st.lists(_text, max_size=4),
        "supplier": st.none() | _text,
        "status": st.none() | st.sampled_from(["enabled", "disabled"]),
        "family": st.none() | _text,
    }
)


@settings(max_examples=200, deadline=None)
@given(_product_changed)
def test_product_changed_round_trips(record: dict[str, Any]) -> None:
    store = SchemaStore.shipped()
    decoded = store.decode(store.encode("ProductChanged", record), expected="ProductChanged")
    assert decoded == record
    # The union branch survives: True stays a bool, 1 an int, 1.0 a float.
    for before, after in zip(record["values"], decoded["values"], strict=True):
        assert type(after["value"]) is type(before["value"])


# -- faust ---------------------------------------------------------------------------


def test_faust_codec_round_trips(store: SchemaStore) -> None:
    codec = avro_codec("TaskEvent")
    assert isinstance(codec, AvroCodec)
    data = codecs.dumps(codec, SAMPLES["TaskEvent"])
    assert data == store.encode("TaskEvent", SAMPLES["TaskEvent"])
    assert codecs.loads(codec, data) == SAMPLES["TaskEvent"]


def test_faust_codec_rejects_other_schemas(store: SchemaStore) -> None:
    codec = avro_codec("TaskEvent")
    with pytest.raises(InvalidMessage) as info:
        codecs.loads(codec, store.encode("Task", SAMPLES["Task"]))
    assert info.value.reason == "wrong-schema"
    with pytest.raises(CatalogflowError):
        codecs.dumps(codec, "not a mapping")


def test_faust_codec_survives_clone_and_rejects_unknown_names() -> None:
    clone = avro_codec("Task").clone()
    assert isinstance(clone, AvroCodec)
    assert clone.schema_name == "Task"
    with pytest.raises(CatalogflowError, match="no schema named"):
        avro_codec("Tsk")


def test_faust_topic_accepts_the_codec() -> None:
    import faust

    app = faust.App("codec-test", broker="memory://", store="memory://")
    codec = avro_codec("ProductChanged")
    topic = app.topic("product-changes", value_serializer=codec, key_serializer="raw")
    assert topic.value_serializer is codec  # type: ignore[attr-defined]  # faust's TopicT lacks it


def test_a_table_write_encodes_its_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = avro_codec("TaskEvent")
    calls: list[str] = []
    real = SchemaStore.encode

    def counting(self: SchemaStore, name: str, record: Mapping[str, Any]) -> bytes:
        calls.append(name)
        return real(self, name, record)

    monkeypatch.setattr(SchemaStore, "encode", counting)
    record = copy.deepcopy(SAMPLES["TaskEvent"])
    with codec.encoding_once(record):
        first = codecs.dumps(codec, record)
        assert codecs.dumps(codec, record) == first  # the changelog's and the store's copy
        codecs.dumps(codec, SAMPLES["TaskEvent"])  # another record is encoded as usual
    assert len(calls) == 2
    record["reason"] = "changed after the write"
    assert codecs.loads(codec, codecs.dumps(codec, record))["reason"] == record["reason"]
    assert len(calls) == 3
