"""Consumer lag: how far a consumer group trails the end of each topic it reads."""

from catalogflow.streams.metrics.base import gauge

CONSUMER_LAG = gauge(
    "catalogflow_consumer_lag_messages",
    "End offset minus committed offset, summed over the topic's partitions.",
    "group",
    "topic",
)
