"""Runs that are still active: progress and budget (run_id labels, dropped at the end)."""

from catalogflow.streams.metrics.base import gauge

RUNS_ACTIVE = gauge(
    "catalogflow_runs_active",
    "Runs not yet finished, by workflow (in this worker's run partitions).",
    "workflow",
)
RUN_TASKS_DONE = gauge(
    "catalogflow_run_tasks_done",
    "Tasks of an active run in a terminal state.",
    "workflow",
    "run_id",
    per_active_run=True,
)
RUN_LAST_PROGRESS = gauge(
    "catalogflow_run_last_progress_timestamp_seconds",
    "When an active run last had a task change state (Unix time).",
    "workflow",
    "run_id",
    per_active_run=True,
)
RUN_BUDGET_USED = gauge(
    "catalogflow_run_budget_used_ratio",
    "Share of an active run's budget its model cost has used (0 to 1; absent: no budget).",
    "workflow",
    "run_id",
    per_active_run=True,
)
