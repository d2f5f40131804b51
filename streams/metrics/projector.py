"""The read model's projector: what it folded (its lag is a consumer_lag series)."""

from catalogflow.streams.metrics.base import counter, gauge

PROJECTOR_EVENTS = counter(
    "catalogflow_projector_events_total",
    "Events folded into the read model, by topic.",
    "topic",
)
PROJECTOR_LAST_COMMIT = gauge(
    "catalogflow_projector_last_commit_timestamp_seconds",
    "When the projector last committed a batch to the read model (Unix time).",
)
