"""One batch of topic records into the read model, with the offsets, in ONE
transaction: after a crash the database holds either the batch and where it ends,
or neither, so the projector resumes exactly where its rows end (Kafka's committed
offsets are not used for this).

A record that does not decode or fold is set aside as a dead letter, and the batch
goes on; its offset advances like any other. The caller sends the dead letters
(``send_dead``) before the transaction commits: a crash in between sends them again
on the next attempt rather than losing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from catalogflow.readmodel.fold import FOLDS, Source
from catalogflow.readmodel.tables import projector_offsets
from catalogflow.readmodel.upsert import upsert
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.deadletter import dead_letter_record
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.records import DeadLetter
from catalogflow.streams.signing import SIGNED_SCHEMAS, verify
from catalogflow.streams.topics import TOPICS, TopicName

#: Errors that mean "this record cannot be folded", as opposed to a database that is
#: away or locked (those fail the batch, which is then read again).
_UNFOLDABLE = (
    CatalogflowError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    sa.exc.IntegrityError,
    sa.exc.DataError,
)


class _Retry(Exception):
    pass


@dataclass(frozen=True)
class Record:
    """One message as read from the broker (``topic`` is the full topic name)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Folded:
    records: int
    dead: list[tuple[bytes | None, DeadLetter]]


def apply_batch(
    engine: sa.Engine,
    records: Sequence[Record],
    names: Mapping[str, TopicName],
    agent: str,
    send_dead: Callable[[list[tuple[bytes | None, DeadLetter]]], None] = lambda _: None,
    signing_key: str = "",
) -> Folded:
    """Fold ``records`` (``names``: full topic name -> topic) and store the next offset
    of each partition they came from, all in one transaction. With ``signing_key``,
    commands and decisions that fail its check are left out, as the workers refuse
    them (and dead-letter them themselves)."""
    try:
        with engine.begin() as conn:
            try:
                dead = _fold_all(conn, records, names, agent, signing_key, guarded=False)
            except _UNFOLDABLE:
                raise _Retry from None
            _commit(conn, records, dead, send_dead)
    except _Retry:
        # Some record in the batch cannot be folded: do it again, one SAVEPOINT per
        # record, so that one is set aside and the others keep their rows.
        with engine.begin() as conn:
            dead = _fold_all(conn, records, names, agent, signing_key, guarded=True)
            _commit(conn, records, dead, send_dead)
    return Folded(len(records), dead)


def _commit(
    conn: sa.Connection,
    records: Sequence[Record],
    dead: list[tuple[bytes | None, DeadLetter]],
    send_dead: Callable[[list[tuple[bytes | None, DeadLetter]]], None],
) -> None:
    ends: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        ends[key] = max(ends.get(key, 0), record.offset + 1)
    for (topic, partition), next_offset in sorted(ends.items()):
        upsert(
            conn,
            projector_offsets,
            {"topic": topic, "partition": partition, "next_offset": next_offset},
        )
    if dead:
        send_dead(dead)


def _fold_all(
    conn: sa.Connection,
    records: Sequence[Record],
    names: Mapping[str, TopicName],
    agent: str,
    signing_key: str,
    *,
    guarded: bool,
) -> list[tuple[bytes | None, DeadLetter]]:
    dead: list[tuple[bytes | None, DeadLetter]] = []
    for record in records:
        if not guarded:
            fold_record(conn, record, names[record.topic], signing_key)
            continue
        try:
            with conn.begin_nested():
                fold_record(conn, record, names[record.topic], signing_key)
        except _UNFOLDABLE as exc:
            problem = (
                exc
                if isinstance(exc, InvalidMessage)
                else InvalidMessage(
                    "invalid-record", f"the read model cannot fold it: {type(exc).__name__}: {exc}"
                )
            )
            dead.append((record.key, _dead_letter(record, problem, agent)))
    return dead


def fold_record(
    conn: sa.Connection, record: Record, topic: TopicName, signing_key: str = ""
) -> None:
    """Decode one record with the topic's contract and fold it (a command or decision
    whose signature fails ``signing_key``'s check changes nothing)."""
    spec = FOLDS[topic]
    source = Source(record.partition, record.offset, record.timestamp, record.key)
    if record.value is None:
        if spec.tombstones:
            spec.fold(conn, None, source)
            return
        raise InvalidMessage("short-payload", "a tombstone on a topic that has none")
    value = SchemaStore.shipped().decode(record.value, expected=spec.record)
    if signing_key and TOPICS[topic].schema in SIGNED_SCHEMAS:
        try:
            verify(value, signing_key)
        except InvalidMessage:
            return
    spec.fold(conn, value, source)


def _dead_letter(record: Record, problem: InvalidMessage, agent: str) -> DeadLetter:
    return dead_letter_record(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        error=problem,
        agent=agent,
        failed_at=datetime.now(UTC),
    )


def next_offsets(engine: sa.Engine) -> dict[tuple[str, int], int]:
    """Where the projector goes on: (full topic, partition) -> next offset."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(projector_offsets)).all()
    return {(row.topic, row.partition): row.next_offset for row in rows}
