"""The decoder over bad bytes: whatever arrives on a topic, ``SchemaStore.decode``
returns a record or raises ``InvalidMessage`` with one of the closed reasons and a
detail — random bytes, every shipped schema's valid encoding cut short or with bytes
changed, valid Avro of the wrong schema, payloads of megabytes and bodies that claim
huge lengths. ``decode_or_dead_letter`` turns each bad one into a dead letter that is
itself writable on the wire (its key may be any bytes, invalid UTF-8 included)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, cast, get_args

from catalogflow.streams.app import Topology, decode_or_dead_letter
from catalogflow.streams.codec import HEADER_SIZE, MAGIC, SchemaStore
from catalogflow.streams.deadletter import DeadLetters
from catalogflow.streams.errors import InvalidMessage, InvalidReason
from catalogflow.streams.products import validate_change
from catalogflow.streams.records import ProductChanged
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.hostile import records, schema_names
from tests.unit.test_codec import SAMPLES
from tests.unit.test_sink_batch import Event, FakeTopology, Message

SCHEMAS = SchemaStore.shipped()
NAMES = schema_names()
REASONS = set(get_args(InvalidReason))
#: Each shipped schema's sample record, encoded: the bytes the mutations start from.
VALID = {name: SCHEMAS.encode(name, SAMPLES[name]) for name in NAMES}
FEW = settings(max_examples=60, deadline=None)


def decodes_or_says_why(data: bytes, expected: str | None) -> dict[str, Any] | InvalidMessage:
    """The decoded record, or the InvalidMessage; any other exception fails the test."""
    try:
        return SCHEMAS.decode(data, expected)
    except InvalidMessage as exc:
        assert exc.reason in REASONS
        assert exc.detail.strip(), exc
        return exc


def _header(name: str) -> bytes:
    return MAGIC + SCHEMAS.fingerprint(name)


def _varint(n: int) -> bytes:
    """Avro's zig-zag varint of ``n``."""
    zigzag = (n << 1) ^ (n >> 63)
    out = bytearray()
    while zigzag & ~0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def test_the_decoder_is_fuzzed_over_every_shipped_schema() -> None:
    assert sorted(SAMPLES) == NAMES


@FEW
@given(st.binary(max_size=2_000), st.sampled_from([None, *NAMES]))
def test_random_bytes_decode_or_are_invalid(data: bytes, expected: str | None) -> None:
    decodes_or_says_why(data, expected)


@FEW
@given(st.sampled_from(NAMES), st.binary(max_size=500))
def test_a_known_header_on_random_bodies_decodes_or_is_invalid(name: str, body: bytes) -> None:
    decodes_or_says_why(_header(name) + body, name)


@FEW
@given(st.sampled_from(NAMES), st.data())
def test_every_cut_of_a_valid_encoding_is_invalid(name: str, data: st.DataObject) -> None:
    valid = VALID[name]
    cut = data.draw(st.integers(0, len(valid) - 1))
    result = decodes_or_says_why(valid[:cut], name)
    assert isinstance(result, InvalidMessage)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(NAMES), st.data())
def test_a_valid_encoding_with_bytes_changed_decodes_or_is_invalid(
    name: str, data: st.DataObject
) -> None:
    mutated = bytearray(VALID[name])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(HEADER_SIZE, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated += data.draw(st.binary(min_size=1, max_size=20))
    decodes_or_says_why(bytes(mutated), name)


@FEW
@given(st.data())
def test_valid_avro_of_the_wrong_schema_is_wrong_schema(data: st.DataObject) -> None:
    written = data.draw(st.sampled_from(NAMES))
    expected = data.draw(st.sampled_from([n for n in NAMES if n != written]))
    record = data.draw(records(written))
    result = decodes_or_says_why(SCHEMAS.encode(written, record), expected)
    assert isinstance(result, InvalidMessage) and result.reason == "wrong-schema"
    assert written in result.detail and expected in result.detail


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_record_of_hostile_texts_decodes_as_it_was_written(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    record = data.draw(records(name))
    decoded = SCHEMAS.decode(SCHEMAS.encode(name, record), name)
    assert SCHEMAS.encode(name, decoded) == SCHEMAS.encode(name, record)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(NAMES),
    st.sampled_from([2**31, 2**40, 2**62, -(2**62)]),
    st.binary(max_size=50),
)
def test_a_body_claiming_a_huge_length_or_count_is_invalid(
    name: str, claimed: int, rest: bytes
) -> None:
    # The first field of every schema is a string or a container: the claim is its length.
    result = decodes_or_says_why(_header(name) + _varint(claimed) + rest, name)
    assert isinstance(result, InvalidMessage)


def test_megabytes_of_text_decode_and_megabytes_of_noise_are_invalid() -> None:
    huge: ProductChanged = {**SAMPLES["ProductChanged"], "sku": "S" * 1_000_000}  # type: ignore[typeddict-item]
    huge["values"] = [
        {"attribute": "description", "locale": None, "scope": None, "value": "x" * 5_000_000}
    ]
    decoded = SCHEMAS.decode(SCHEMAS.encode("ProductChanged", huge), ProductChanged)
    assert decoded["values"][0]["value"] == "x" * 5_000_000
    noise = _header("ProductChanged") + bytes(range(256)) * 20_000
    assert isinstance(decodes_or_says_why(noise, "ProductChanged"), InvalidMessage)
    assert isinstance(decodes_or_says_why(b"\xff" * 5_000_000, None), InvalidMessage)


def test_a_double_that_is_not_a_number_still_decodes() -> None:
    record = {**SAMPLES["RunState"], "cost": float("nan")}
    decoded = SCHEMAS.decode(SCHEMAS.encode("RunState", record), "RunState")
    assert math.isnan(decoded["cost"])  # read back as written; the engine decides on it


# --------------------------------------------------------------------------- dead letters


@dataclass
class SentTopic:
    """The ``dead-letters`` topic of a DeadLetters, which encodes what it is sent as a
    faust topic with the DeadLetter codec would, and confirms at once."""

    sent: list[bytes]

    async def send(self, key: bytes | None, value: Any) -> asyncio.Future[None]:
        self.sent.append(SCHEMAS.encode("DeadLetter", value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _bad_or_good_values() -> st.SearchStrategy[bytes]:
    good = records("ProductChanged").map(lambda r: SCHEMAS.encode("ProductChanged", r))
    wrong = st.sampled_from([VALID[n] for n in NAMES if n != "ProductChanged"])
    return st.one_of(st.binary(max_size=300), good, wrong)


@FEW
@given(st.lists(st.tuples(st.none() | st.binary(max_size=80), _bad_or_good_values()), max_size=6))
async def test_every_event_is_decoded_or_dead_lettered_with_a_writable_reason(
    items: list[tuple[bytes | None, bytes]],
) -> None:
    fake = FakeTopology({})
    topic = SentTopic([])
    fake.dead_letters = DeadLetters(cast(Any, topic))  # type: ignore[assignment]
    decoded = 0
    for offset, (key, value) in enumerate(items):
        event = Event(Message("product-changes", 0, offset, key, value))
        record = await decode_or_dead_letter(
            cast(Topology, fake), cast(Any, event), ProductChanged, "catalog", validate_change
        )
        decoded += record is not None
    assert decoded + len(topic.sent) == len(items)
    for data in topic.sent:
        letter = SCHEMAS.decode(data, "DeadLetter")
        assert letter["reason"] in REASONS and letter["detail"]
        assert letter["agent"] == "catalog"
