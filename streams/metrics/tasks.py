"""Tasks and actions: what each step did and how long it took."""

from catalogflow.streams.metrics.base import counter, histogram

TASK_TRANSITIONS = counter(
    "catalogflow_task_transitions_total",
    "Task status transitions, by the status entered (the task-events this worker applied).",
    "workflow",
    "action",
    "status",
)
ACTION_SECONDS = histogram(
    "catalogflow_action_seconds",
    "Time one action step took for one task, model calls included.",
    "workflow",
    "action",
)
