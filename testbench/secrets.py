"""Where a configured secret would have leaked: a scan of files and topics for its text.

The fault suite ends with this (issue 15): every secret a run was configured with (the
Magento tokens and password, model API keys, API tokens, the signing key) must appear in
none of the logs, events, dead letters, results, exports and pages the run produced. A
secret is looked for as its UTF-8 bytes and in the forms a leak takes on the way out:
JSON-escaped, and base64 at any alignment (a Basic auth header, a cursor, a token
wrapped in another token).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Shorter values (placeholders such as "unused") would match by chance.
MIN_SECRET_LENGTH = 8


@dataclass(frozen=True)
class Leak:
    """One secret found in one place: ``secret`` is the secret's name, never its value."""

    secret: str
    where: str


def forms(secret: str) -> list[bytes]:
    """The byte strings whose presence means ``secret`` leaked."""
    raw = secret.encode()
    found = {raw, json.dumps(secret)[1:-1].encode()}
    for shift in range(3):  # base64 of the secret inside a longer base64 text
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw).rstrip(b"=")
            start = -(-4 * shift // 3) + (1 if shift else 0)  # skip the chars the pad touched
            core = text[start:-2]  # the last chars depend on what follows
            if len(core) >= MIN_SECRET_LENGTH:
                found.add(core)
    return sorted(found)


def scan(secrets: Mapping[str, str], sources: Iterable[tuple[str, bytes]]) -> list[Leak]:
    """Every (secret name, place) where a secret of ``secrets`` (name: value) occurs in
    ``sources`` ((place, content) pairs)."""
    needles = {
        name: forms(value) for name, value in secrets.items() if len(value) >= MIN_SECRET_LENGTH
    }
    leaks: list[Leak] = []
    for where, content in sources:
        for name, patterns in needles.items():
            if any(pattern in content for pattern in patterns):
                leaks.append(Leak(name, where))
    return leaks


def files_under(*roots: Path) -> Iterator[tuple[str, bytes]]:
    """Every file below ``roots`` (a root may be a file), with its content."""
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            yield str(path), path.read_bytes()


def topic_messages(bootstrap: str, *prefixes: str) -> Iterator[tuple[str, bytes]]:
    """Every message of every topic whose name starts with one of ``prefixes`` (an
    installation's topic prefix, and its app id for faust's changelogs): key, value and
    headers, placed as topic:partition@offset."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=30).topics
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"secrets-scan-{'-'.join(prefixes)}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        for name in sorted(t for t in topics if t.startswith(prefixes)):
            for partition in sorted(topics[name].partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), 30)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(name, partition, low)])
                offset = low
                while offset < high - 1:
                    message = consumer.poll(10)
                    if message is None:
                        break
                    if message.error():
                        continue
                    offset = message.offset() or 0
                    headers: list[Any] = list(message.headers() or [])
                    parts: list[Any] = [message.key(), message.value()]
                    parts += [header[1] for header in headers]
                    content = b"".join(
                        p.encode() if isinstance(p, str) else p or b"" for p in parts
                    )
                    yield f"{name}:{partition}@{offset}", content
    finally:
        consumer.close()
