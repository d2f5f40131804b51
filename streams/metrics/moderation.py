"""The review queue: how much waits, for how long, and what reviewers decide."""

from catalogflow.streams.metrics.base import counter, gauge

MODERATION_PENDING = gauge(
    "catalogflow_moderation_pending",
    "Items waiting for review in this worker's partitions.",
    "workflow",
    "action",
)
MODERATION_OLDEST_AGE = gauge(
    "catalogflow_moderation_oldest_age_seconds",
    "Age of the oldest item waiting for review in this worker's partitions (0: none).",
    "workflow",
    "action",
)
MODERATION_DECISIONS = counter(
    "catalogflow_moderation_decisions_total",
    "Decisions applied, by kind (APPROVE, REJECT, EDIT, REGENERATE) and role.",
    "kind",
    "role",
)
