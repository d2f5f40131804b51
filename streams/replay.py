"""Dead-letter replay: the original bytes back on the topic they came from.

One function for the CLI's direct path (``catalogflow dlq replay`` without an API) and
the API's replay route, so both put back exactly what the dead letter kept. The
record goes out as it was (no re-encoding, no new signature): a letter that was
refused for its content is refused again, which is what a replay of it should show.
"""

from __future__ import annotations

from typing import cast

from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import DeadLetter
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import TopicName


def logical_topic(settings: Settings, source_topic: str) -> TopicName:
    """The topic name without the settings' prefix (what ``send_raw`` takes)."""
    prefix = settings.topic_prefix
    if not source_topic.startswith(prefix) or source_topic == prefix:
        raise CatalogflowError(
            f"topic {source_topic!r} is not one of this deployment's (prefix {prefix!r}); "
            "refusing to replay into it"
        )
    return cast(TopicName, source_topic[len(prefix) :])


def replay(settings: Settings, letter: DeadLetter, producer: RecordProducer | None = None) -> str:
    """Send the letter's key and value to its source topic and wait for the broker;
    returns the full topic name it went to."""
    topic = logical_topic(settings, letter["source_topic"])
    if letter["value"] is None:
        raise CatalogflowError("the dead letter has no value (a tombstone): nothing to replay")
    sender = producer or RecordProducer(settings)
    sender.send_raw(topic, letter["key"], letter["value"])
    sender.flush()
    return settings.topic(topic)
