"""Signed commands and decisions: who may steer workflows and approve content is
decided by who holds the signing key, not by who can write to a topic.

A WorkflowCommand or ModerationDecision is signed with HMAC-SHA256 over its Avro
single-object encoding (current schema) with ``signature`` set to null and a
command's ``arguments`` in key order. Why Avro and not canonical JSON: it is the
exact form the record travels in, so a worker checks what the decoder gave it
without a second serialisation to keep canonical (timestamps are millisecond longs
on both sides; a microsecond ``datetime`` the signer holds and the millisecond one
the worker decodes encode alike, where JSON would differ). The header's schema
fingerprint is part of what is signed, so a command's signature never passes for a
decision. The cost: signer and verifier must run the same schema version of the
record; an added field means upgrading the workers before the signers.

The key lives in ``settings.signing_key``; it is never part of a message or an
error. A signature proves who produced a record, not when: replaying a signed record
is kept harmless by the records themselves (ids, decided items) and by the topic ACLs
(docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.records import ModerationDecision, WorkflowCommand
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import TOPICS

#: The contracts whose records are signed; every topic carrying one is a signed topic
#: (workflow-commands, partition-commands, moderation-decisions).
SIGNED_SCHEMAS = frozenset({"WorkflowCommand", "ModerationDecision"})

S = TypeVar("S", WorkflowCommand, ModerationDecision)


def sign(record: S, key: str) -> S:
    """``record`` with its signature under ``key`` (any signature it had replaced)."""
    signed: S = {**record, "signature": _signature(record, key)}
    return signed


def verify(record: WorkflowCommand | ModerationDecision, key: str) -> None:
    """Raise ``InvalidMessage("unsigned-command")`` unless ``record`` carries the
    signature ``key`` gives it. Compared in constant time."""
    what = _describe(record)
    given = record["signature"]
    if not given:
        raise InvalidMessage(
            "unsigned-command",
            f"{what} carries no signature; with signing on, workers take only signed ones",
        )
    expected = _signature(record, key)
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("ascii")):
        raise InvalidMessage(
            "unsigned-command",
            f"{what}: the signature does not match (altered, or signed with another key)",
        )


def signed_for(settings: Settings, topic: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a producer sends to ``topic``: signed when the topic carries a signed
    contract and the settings hold a key, else ``record`` as it is. The one signing
    step of both producers (the worker's ``Topology.send``, ``RecordProducer.send``)."""
    key = settings.signing_key.reveal()
    spec = TOPICS.get(topic)  # type: ignore[call-overload]  # task topics are not TopicNames
    if not key or spec is None or spec.schema not in SIGNED_SCHEMAS:
        return record
    return {**record, "signature": _signature(record, key)}


def checked(settings: Settings, validate: Callable[[S], None]) -> Callable[[S], None]:
    """``validate`` preceded by the signature check when the settings hold a key: the
    ``validate`` hook of ``streams.app.decoded`` for the command and moderation agents.
    Without a key, unsigned records are accepted (as before signing existed)."""
    key = settings.signing_key.reveal()
    if not key:
        return validate

    def check(record: S) -> None:
        verify(record, key)
        validate(record)

    return check


def _signature(record: Mapping[str, Any], key: str) -> str:
    if not key:
        raise CatalogflowError("signing needs a key (settings.signing_key)")
    return hmac.new(key.encode("utf-8"), _canonical(record), hashlib.sha256).hexdigest()


def _canonical(record: Mapping[str, Any]) -> bytes:
    schema = _schema_of(record)
    unsigned: dict[str, Any] = {**record, "signature": None}
    if schema == "WorkflowCommand":
        unsigned["arguments"] = dict(sorted(record["arguments"].items()))
    return SchemaStore.shipped().encode(schema, unsigned)


def _schema_of(record: Mapping[str, Any]) -> str:
    if "decision_id" in record:
        return "ModerationDecision"
    if "command_id" in record:
        return "WorkflowCommand"
    raise CatalogflowError("only workflow commands and moderation decisions are signed")


def _describe(record: Mapping[str, Any]) -> str:
    if "decision_id" in record:
        return f"{record['decision']} decision {record['decision_id']} on {record['item_id']}"
    return f"{record['command']} command {record['command_id']} for {record['workflow_id']}"
