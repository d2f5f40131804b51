"""The read model's tables: one relational view of every run, folded from the event log.

The projector (``projector.py``) is the only writer; the API and the CLI only read.
Every row can be rebuilt from the topics (``catalogflow read-model rebuild``), so the
tables hold what queries need to filter, sort and page, plus the record they came from
(Avro bytes under ``record``) where a fold has to continue from it.
``migrations/`` creates them (Alembic); a change here needs a new migration.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

Timestamp = sa.DateTime(timezone=True)

#: Where the projector is in each topic partition, written in the same transaction
#: as the rows the records made: a restart resumes exactly, a replay changes nothing.
projector_offsets = sa.Table(
    "projector_offsets",
    metadata,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("actions", sa.JSON, nullable=False),  # [{"id": ..., "type": ...}] in chain order
    sa.Column("applied_by", sa.Text, nullable=False),
    sa.Column("applied_at", Timestamp, nullable=False),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content_hash", sa.String(128), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("applied_by", sa.Text, nullable=False),
    sa.Column("applied_at", Timestamp, nullable=False),
)

#: One row per run, from ``run-progress`` folded by ``engine.apply_run_progress`` (the
#: runs agent's own fold), so the totals equal the workers'.
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(255), primary_key=True),
    sa.Column("workflow_id", sa.String(255), nullable=False, index=True),
    sa.Column("workflow_version", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("partitions", sa.Integer, nullable=False),
    sa.Column("partitions_scanned", sa.Integer, nullable=False),
    sa.Column("tasks_created", sa.Integer, nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),  # status -> tasks
    sa.Column("action_counts", sa.JSON, nullable=False),  # "action:STATUS" -> tasks
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("budget", sa.Float, nullable=True),
    sa.Column("budget_reached", sa.Boolean, nullable=False),
    sa.Column("record", sa.LargeBinary, nullable=False),  # Avro RunState, the fold's input
)

#: One row per task (a product in a run), from ``task-events`` folded by
#: ``engine.apply_task_event`` (the task-states agent's fold: duplicates change nothing).
tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.String(255), primary_key=True),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("workflow_id", sa.String(255), nullable=False),
    sa.Column("sku", sa.String(255), nullable=False, index=True),
    sa.Column("action_id", sa.String(255), nullable=True),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("failure_category", sa.String(64), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("min_confidence", sa.Float, nullable=True),  # lowest over the task's fields
    # PENDING while an item waits; then APPROVED, REJECTED or EDITED; null: never reviewed
    sa.Column("moderation_state", sa.String(32), nullable=True),
    # the worst of the task's sync results: ERROR > CONFLICT > SYNCED > UNCHANGED
    sa.Column("sync_status", sa.String(32), nullable=True),
    sa.Column("search_text", sa.Text, nullable=False),  # SKU and generated texts, lower case
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("record", sa.LargeBinary, nullable=False),  # Avro TaskState, the fold's input
    sa.Index("ix_tasks_run_task", "run_id", "task_id"),
    sa.Index("ix_tasks_run_status", "run_id", "status"),
)

#: Every field value a step produced, per task, action and attempt: the Results tab.
task_outputs = sa.Table(
    "task_outputs",
    metadata,
    sa.Column("task_id", sa.String(255), primary_key=True),
    sa.Column("action_id", sa.String(255), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("field", sa.String(255), primary_key=True),
    sa.Column("locale", sa.String(32), primary_key=True),  # "" = no locale
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("sku", sa.String(255), nullable=False),
    sa.Column("value", sa.JSON, nullable=True),
    sa.Column("reasoning", sa.Text, nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("evidence", sa.Text, nullable=True),
    sa.Column("approved", sa.Boolean, nullable=False),
    sa.Column("model", sa.String(255), nullable=True),
    sa.Column("prompt_version", sa.String(255), nullable=True),
    sa.Index("ix_task_outputs_run_action", "run_id", "action_id", "confidence"),
)

#: Product history: every transition the task fold applied and every new step output,
#: in order (``seq`` counts per task), with the lineage of the step.
task_history = sa.Table(
    "task_history",
    metadata,
    sa.Column("task_id", sa.String(255), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("sku", sa.String(255), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),  # "transition" or "output"
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("action_id", sa.String(255), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("failure_category", sa.String(64), nullable=True),
    sa.Column("input_hash", sa.String(128), nullable=True),
    sa.Column("model", sa.String(255), nullable=True),
    sa.Column("prompt_version", sa.String(255), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),  # list of FieldResult dicts ("output" rows)
)

#: Review items from the compacted ``moderation`` topic; a tombstone ends ``pending``.
moderation_items = sa.Table(
    "moderation_items",
    metadata,
    sa.Column("item_id", sa.String(255), primary_key=True),
    sa.Column("task_id", sa.String(255), nullable=False, index=True),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("workflow_id", sa.String(255), nullable=False),
    sa.Column("sku", sa.String(255), nullable=False, index=True),
    sa.Column("action_id", sa.String(255), nullable=False),
    sa.Column("review_reason", sa.Text, nullable=False),
    sa.Column("requires_second_approval", sa.Boolean, nullable=False),
    # lower = reviewed first: a failed check counts as -1, else the lowest confidence
    sa.Column("risk", sa.Float, nullable=False),
    sa.Column("pending", sa.Boolean, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp, nullable=True),
    sa.Column("record", sa.LargeBinary, nullable=False),  # Avro ModerationItem (last live one)
    sa.Index("ix_moderation_pending_risk", "pending", "risk", "created_at"),
)

#: Every decision event on ``moderation-decisions``, as published (who, when, what).
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String(255), primary_key=True),
    sa.Column("item_id", sa.String(255), nullable=False, index=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("sku", sa.String(255), nullable=False, index=True),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("field", sa.String(255), nullable=True),
    sa.Column("locale", sa.String(32), nullable=True),
    sa.Column("edited_value", sa.JSON, nullable=True),
    sa.Column("feedback", sa.Text, nullable=True),
    sa.Column("actor_id", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("decided_at", Timestamp, nullable=False),
)

sync_results = sa.Table(
    "sync_results",
    metadata,
    sa.Column("request_id", sa.String(255), primary_key=True),
    sa.Column("task_id", sa.String(255), nullable=False, index=True),
    sa.Column("sku", sa.String(255), nullable=False, index=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("store_scope", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error_category", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("fields", sa.JSON, nullable=False),  # [{"attribute", "status", "message"}]
    sa.Column("at", Timestamp, nullable=False),
)

#: The ``dead-letters`` topic; ``dead_letter_id`` is "<partition>-<offset>" of that topic.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("dead_letter_id", sa.String(64), primary_key=True),
    sa.Column("source_topic", sa.String(255), nullable=False),
    sa.Column("source_partition", sa.Integer, nullable=False),
    sa.Column("source_offset", sa.BigInteger, nullable=False),
    sa.Column("key", sa.LargeBinary, nullable=True),
    sa.Column("value", sa.LargeBinary, nullable=True),
    sa.Column("reason", sa.String(128), nullable=False, index=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("failed_at", Timestamp, nullable=False),
)

#: Commands as published on ``workflow-commands`` (the API answers with their id).
commands = sa.Table(
    "commands",
    metadata,
    sa.Column("command_id", sa.String(255), primary_key=True),
    sa.Column("workflow_id", sa.String(255), nullable=False, index=True),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(255), nullable=True),
    sa.Column("issued_by", sa.Text, nullable=False),
    sa.Column("issued_at", Timestamp, nullable=False),
    sa.Column("arguments", sa.JSON, nullable=False),
)
