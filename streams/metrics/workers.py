"""The worker itself: what it holds and what state it is in."""

from catalogflow.streams.metrics.base import gauge

ASSIGNED_PARTITIONS = gauge(
    "catalogflow_worker_assigned_partitions",
    "Partitions assigned to this worker.",
)
WORKER_STATE = gauge(
    "catalogflow_worker_state",
    "1 for the state the worker is in (assigned, recovering, serving), else 0.",
    "state",
)
