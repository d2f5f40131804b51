"""The one place that writes to ``dead-letters``.

The write is awaited until the broker confirms it, and only then does the agent move
on (and so let the source offset be committed): a bad message is never just dropped.
Each confirmed write counts in ``catalogflow_dead_letters_total`` by agent and reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.deadletters import DEAD_LETTERS
from catalogflow.streams.records import DeadLetter
from faust.types import Message


def dead_letter_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: InvalidMessage,
    agent: str,
    failed_at: datetime,
) -> DeadLetter:
    return {
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "key": key,
        "value": value,
        "reason": error.reason,
        "detail": error.detail,
        "agent": agent,
        "failed_at": failed_at,
    }


class DeadLetters:
    """Sends the original bytes of a bad message and the reason, and waits for the ack."""

    def __init__(self, topic: faust.TopicT) -> None:
        self._topic = topic

    async def send(self, message: Message, error: InvalidMessage, agent: str) -> None:
        record = dead_letter_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            error=error,
            agent=agent,
            failed_at=datetime.now(UTC),
        )
        pending = await self._topic.send(key=message.key, value=record)
        await pending
        metrics().inc(DEAD_LETTERS, agent=agent, reason=error.reason)  # once it is written
