"""The read side over the read model's database: ``ReadSide`` answered with SQL.

SQLAlchemy Core expressions only, so one code path serves SQLite and PostgreSQL.
Pages are keyset pages (``WHERE key > last ORDER BY key LIMIT n``): a page deep in a
100,000-task run costs what the first one does, and rows folded in meanwhile neither
repeat nor vanish. A cursor is the last key, JSON in URL-safe base64, tagged with what
it pages so a cursor of one list is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

import sqlalchemy as sa

from catalogflow.readmodel import tables as t
from catalogflow.readmodel.views import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ActionRef,
    ActionTotals,
    BadQuery,
    DeadLetterView,
    DecisionView,
    FieldResult,
    HistoryEntry,
    ModerationQueueItem,
    NotFound,
    Page,
    ProductHistory,
    RunSummary,
    SourceValue,
    SyncFieldView,
    SyncResultView,
    TaskFilter,
    TaskResult,
    WorkflowDetail,
    WorkflowSummary,
    WorkflowVersionView,
    walk_tasks,
)
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.records import (
    DeadLetter,
    FailureCategory,
    ModerationItem,
    SyncStatus,
    TaskStatus,
)

_STATUSES = frozenset(get_args(TaskStatus))
_CATEGORIES = frozenset(get_args(FailureCategory))
_SYNC_STATUSES = frozenset(get_args(SyncStatus))


class Decided(BadQuery):
    """A moderation item that is no longer pending (a 409 at the API)."""


class ReadModelQueries:
    """``ReadSide`` over an Engine holding the tables of ``readmodel/tables.py``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._schemas: SchemaStore | None = None

    # ------------------------------------------------------------------ workflows

    def workflows(self) -> list[WorkflowSummary]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.workflows).order_by(t.workflows.c.workflow_id))
            latest = _latest_runs(conn)
            return [_workflow(row, latest.get(row.workflow_id)) for row in rows]

    def workflow(self, workflow_id: str) -> WorkflowDetail:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.workflows).where(t.workflows.c.workflow_id == workflow_id)
            ).first()
            if row is None:
                raise NotFound(f"no workflow {workflow_id!r}")
            versions = conn.execute(
                sa.select(t.workflow_versions)
                .where(t.workflow_versions.c.workflow_id == workflow_id)
                .order_by(t.workflow_versions.c.version.desc())
            )
            return WorkflowDetail(
                workflow=_workflow(row, _latest_runs(conn, workflow_id).get(workflow_id)),
                versions=[
                    WorkflowVersionView(
                        workflow_id=v.workflow_id,
                        version=v.version,
                        content_hash=v.content_hash,
                        definition=v.definition,
                        source=v.source,
                        applied_by=v.applied_by,
                        applied_at=_utc(v.applied_at),
                    )
                    for v in versions
                ],
            )

    # ----------------------------------------------------------------------- runs

    def runs(self, workflow_id: str | None = None) -> list[RunSummary]:
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.run_id.desc())
        with self.engine.connect() as conn:
            if workflow_id is not None:
                query = query.where(t.runs.c.workflow_id == workflow_id)
                if not _exists(conn, t.workflows, t.workflows.c.workflow_id == workflow_id):
                    rows = conn.execute(query).all()
                    if not rows:
                        raise NotFound(f"no workflow {workflow_id!r}")
            chains = _chains(conn)
            return [_run(row, chains.get(row.workflow_id, [])) for row in conn.execute(query)]

    def run(self, run_id: str) -> RunSummary:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            return _run(row, _chains(conn, row.workflow_id).get(row.workflow_id, []))

    # ---------------------------------------------------------------------- tasks

    def tasks(
        self, run_id: str, filters: TaskFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[TaskResult]:
        _check_limit(limit)
        after = _decode_cursor(cursor, "t", (str,))
        conditions = [tasks_c.run_id == run_id, *_task_conditions(filters)]
        if after is not None:
            conditions.append(tasks_c.task_id > after[0])
        with self.engine.connect() as conn:
            if cursor is None and not _run_known(conn, run_id):
                raise NotFound(f"no run {run_id!r}")
            rows = conn.execute(
                sa.select(t.tasks).where(*conditions).order_by(tasks_c.task_id).limit(limit + 1)
            ).all()
            page, more = rows[:limit], len(rows) > limit
            fields = _fields_of(conn, [r.task_id for r in page], filters.action)
        return Page[TaskResult](
            items=[_task(row, fields.get(row.task_id, [])) for row in page],
            next_cursor=_encode_cursor("t", [page[-1].task_id]) if more else None,
        )

    def all_tasks(self, run_id: str, filters: TaskFilter) -> Iterator[TaskResult]:
        return walk_tasks(self, run_id, filters)

    # ----------------------------------------------------------------- moderation

    def moderation_queue(
        self,
        workflow_id: str | None = None,
        action_id: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> Page[ModerationQueueItem]:
        _check_limit(limit)
        m = t.moderation_items.c
        conditions: list[sa.ColumnElement[bool]] = [m.pending.is_(True)]
        if workflow_id is not None:
            conditions.append(m.workflow_id == workflow_id)
        if action_id is not None:
            conditions.append(m.action_id == action_id)
        after = _decode_cursor(cursor, "m", (float, str, str))
        if after is not None:
            conditions.append(_after((m.risk, m.created_at, m.item_id), after))
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.moderation_items)
                .where(*conditions)
                .order_by(m.risk, m.created_at, m.item_id)
                .limit(limit + 1)
            ).all()
            page, more = rows[:limit], len(rows) > limit
            decisions = _decisions_of(conn, t.decisions.c.item_id, [r.item_id for r in page])
        items = [self._queue_item(row, decisions.get(row.item_id, [])) for row in page]
        last = page[-1] if more else None
        return Page[ModerationQueueItem](
            items=items,
            next_cursor=None
            if last is None
            else _encode_cursor("m", [last.risk, _iso(last.created_at), last.item_id]),
        )

    def pending_item(self, item_id: str) -> ModerationItem:
        """The Avro record of a pending item, for a decision on it (the decision route)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.moderation_items.c.pending, t.moderation_items.c.record).where(
                    t.moderation_items.c.item_id == item_id
                )
            ).first()
        if row is None:
            raise NotFound(f"no moderation item {item_id!r}")
        if not row.pending:
            raise Decided(f"moderation item {item_id!r} is already decided")
        return self._decode_item(row.record)

    # --------------------------------------------------------------- dead letters

    def dead_letters(
        self, reason: str | None = None, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[DeadLetterView]:
        _check_limit(limit)
        d = t.dead_letters.c
        conditions: list[sa.ColumnElement[bool]] = []
        if reason is not None:
            conditions.append(d.reason == reason)
        after = _decode_cursor(cursor, "d", (str, str))
        if after is not None:
            conditions.append(_after((d.failed_at, d.dead_letter_id), after))
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.dead_letters)
                .where(*conditions)
                .order_by(d.failed_at, d.dead_letter_id)
                .limit(limit + 1)
            ).all()
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if more else None
        return Page[DeadLetterView](
            items=[_dead_letter(row) for row in page],
            next_cursor=None
            if last is None
            else _encode_cursor("d", [_iso(last.failed_at), last.dead_letter_id]),
        )

    def dead_letter(self, dead_letter_id: str) -> DeadLetterView:
        return _dead_letter(self._dead_letter_row(dead_letter_id))

    def dead_letter_record(self, dead_letter_id: str) -> DeadLetter:
        """The dead letter with its original bytes, for a replay (the replay route)."""
        row = self._dead_letter_row(dead_letter_id)
        return {
            "source_topic": row.source_topic,
            "source_partition": row.source_partition,
            "source_offset": row.source_offset,
            "key": row.key,
            "value": row.value,
            "reason": row.reason,
            "detail": row.detail,
            "agent": row.agent,
            "failed_at": _utc(row.failed_at),
        }

    # -------------------------------------------------------------------- history

    def history(self, sku: str) -> ProductHistory:
        h, s = t.task_history.c, t.sync_results.c
        with self.engine.connect() as conn:
            steps = conn.execute(
                sa.select(t.task_history).where(h.sku == sku).order_by(h.at, h.task_id, h.seq)
            ).all()
            decisions = _decisions_of(conn, t.decisions.c.sku, [sku]).get(sku, [])
            syncs = conn.execute(
                sa.select(t.sync_results).where(s.sku == sku).order_by(s.at, s.request_id)
            ).all()
            if not (steps or decisions or syncs) and not _exists(conn, t.tasks, tasks_c.sku == sku):
                raise NotFound(f"no product {sku!r} in the read model")
            runs = _runs_of_tasks(conn, {d.task_id for d in decisions} | {r.task_id for r in syncs})
        entries = [_step_entry(row) for row in steps]
        entries += [
            HistoryEntry(
                at=d.decided_at,
                kind="decision",
                run_id=runs.get(d.task_id),
                task_id=d.task_id,
                action_id=None,
                decision=d,
            )
            for d in decisions
        ]
        entries += [
            HistoryEntry(
                at=_utc(r.at),
                kind="sync",
                run_id=runs.get(r.task_id),
                task_id=r.task_id,
                action_id=None,
                sync=_sync(r),
            )
            for r in syncs
        ]
        # A stable sort: entries at the same instant keep step, decision, sync order.
        return ProductHistory(sku=sku, entries=sorted(entries, key=lambda e: e.at))

    # ------------------------------------------------------------------- helpers

    def _schema_store(self) -> SchemaStore:
        if self._schemas is None:
            self._schemas = SchemaStore.shipped()
        return self._schemas

    def _decode_item(self, record: bytes) -> ModerationItem:
        return self._schema_store().decode(record, expected=ModerationItem)

    def _queue_item(self, row: sa.Row[Any], decisions: list[DecisionView]) -> ModerationQueueItem:
        item = self._decode_item(row.record)
        step = next(
            (o for o in reversed(item["task"]["outputs"]) if o["action_id"] == item["action_id"]),
            None,
        )
        return ModerationQueueItem(
            item_id=row.item_id,
            task_id=row.task_id,
            run_id=row.run_id,
            workflow_id=row.workflow_id,
            sku=row.sku,
            action_id=row.action_id,
            review_reason=row.review_reason,
            requires_second_approval=row.requires_second_approval,
            risk=row.risk,
            created_at=_utc(row.created_at),
            source_values=[SourceValue.model_validate(v) for v in item["source_values"]],
            fields=[
                FieldResult(
                    action_id=item["action_id"],
                    attempt=item["task"]["attempt"],
                    model=step["model"] if step else None,
                    prompt_version=step["prompt_version"] if step else None,
                    **f,
                )
                for f in item["fields"]
            ],
            decisions=decisions,
        )

    def _dead_letter_row(self, dead_letter_id: str) -> sa.Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.dead_letters).where(t.dead_letters.c.dead_letter_id == dead_letter_id)
            ).first()
        if row is None:
            raise NotFound(f"no dead letter {dead_letter_id!r}")
        return row


tasks_c = t.tasks.c


# ------------------------------------------------------------------- the filters


def _task_conditions(filters: TaskFilter) -> list[sa.ColumnElement[bool]]:
    """The WHERE terms of a TaskFilter; a value no task can have is a BadQuery."""
    out: list[sa.ColumnElement[bool]] = []
    if filters.status:
        unknown = sorted(set(filters.status) - _STATUSES)
        if unknown:
            raise BadQuery(f"status {unknown[0]!r} is not one of {', '.join(sorted(_STATUSES))}")
        out.append(tasks_c.status.in_(filters.status))
    if filters.failure_category is not None:
        if filters.failure_category not in _CATEGORIES:
            raise BadQuery(
                f"failure_category {filters.failure_category!r} is not one of "
                + ", ".join(sorted(_CATEGORIES))
            )
        out.append(tasks_c.failure_category == filters.failure_category)
    if filters.sync_status is not None:
        if filters.sync_status not in _SYNC_STATUSES:
            raise BadQuery(
                f"sync_status {filters.sync_status!r} is not one of "
                + ", ".join(sorted(_SYNC_STATUSES))
            )
        out.append(tasks_c.sync_status == filters.sync_status)
    if filters.moderation_state is not None:
        out.append(tasks_c.moderation_state == filters.moderation_state)
    if filters.q:
        out.append(tasks_c.search_text.contains(filters.q.lower(), autoescape=True))
    o = t.task_outputs.c
    if filters.action is not None or filters.confidence_below is not None:
        # "Some field of the task (of that action) below X": exactly the fields shown.
        terms: list[sa.ColumnElement[bool]] = [o.task_id == tasks_c.task_id]
        if filters.action is not None:
            terms.append(o.action_id == filters.action)
        if filters.confidence_below is not None:
            terms.append(o.confidence < filters.confidence_below)
        out.append(sa.exists().where(*terms))
    return out


def _fields_of(
    conn: sa.Connection, task_ids: Sequence[str], action: str | None
) -> dict[str, list[FieldResult]]:
    if not task_ids:
        return {}
    o = t.task_outputs.c
    query = sa.select(t.task_outputs).where(o.task_id.in_(task_ids))
    if action is not None:
        query = query.where(o.action_id == action)
    fields: dict[str, list[FieldResult]] = {}
    for row in conn.execute(query.order_by(o.task_id, o.attempt, o.action_id, o.field, o.locale)):
        fields.setdefault(row.task_id, []).append(
            FieldResult(
                action_id=row.action_id,
                attempt=row.attempt,
                field=row.field,
                locale=row.locale or None,
                value=row.value,
                reasoning=row.reasoning,
                confidence=row.confidence,
                evidence=row.evidence,
                approved=row.approved,
                model=row.model,
                prompt_version=row.prompt_version,
            )
        )
    return fields


# ---------------------------------------------------------------------- paging


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise BadQuery(f"limit {limit} is outside 1..{MAX_PAGE}")


def _encode_cursor(kind: str, key: list[Any]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None, kind: str, shape: tuple[type, ...]) -> list[Any] | None:
    """The key a cursor holds, checked against the list it pages, or BadQuery."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # a forged one may nest deeply
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(shape) + 1
        or parts[0] != kind
        or not all(
            isinstance(p, want) or (want is float and isinstance(p, int))
            for p, want in zip(parts[1:], shape, strict=True)
        )
    ):
        raise BadQuery(f"cursor {cursor[:80]!r} is not a cursor of this list")
    return parts[1:]


def _after(columns: tuple[sa.ColumnElement[Any], ...], key: list[Any]) -> sa.ColumnElement[bool]:
    """``columns > key`` in lexicographic order (spelled out: no row-value syntax needed).

    Timestamps in a cursor are ISO text; they go back as datetimes so the column's type
    binds them exactly as it stored them.
    """
    values = [
        _parse_iso(v) if isinstance(c.type, sa.DateTime) else v
        for c, v in zip(columns, key, strict=True)
    ]
    terms: list[sa.ColumnElement[bool]] = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        terms.append(sa.and_(*equal, column > values[i]))
    return sa.or_(*terms)


def _iso(value: datetime) -> str:
    return value.isoformat()


def _parse_iso(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadQuery("cursor holds no timestamp") from None


# --------------------------------------------------------------------- rows → views


def _utc(value: datetime) -> datetime:
    """SQLite gives timestamps back without their zone; the projector writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _exists(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> bool:
    return (
        conn.execute(sa.select(sa.literal(1)).select_from(table).where(where).limit(1)).first()
        is not None
    )


def _run_known(conn: sa.Connection, run_id: str) -> bool:
    return _exists(conn, t.runs, t.runs.c.run_id == run_id) or _exists(
        conn, t.tasks, tasks_c.run_id == run_id
    )


def _latest_runs(conn: sa.Connection, workflow_id: str | None = None) -> dict[str, Any]:
    r = t.runs.c
    query = sa.select(r.workflow_id, r.run_id, r.status, r.started_at).order_by(
        r.started_at, r.run_id
    )
    if workflow_id is not None:
        query = query.where(r.workflow_id == workflow_id)
    return {row.workflow_id: row for row in conn.execute(query)}  # the last one wins


def _chains(conn: sa.Connection, workflow_id: str | None = None) -> dict[str, list[str]]:
    w = t.workflows.c
    query = sa.select(w.workflow_id, w.actions)
    if workflow_id is not None:
        query = query.where(w.workflow_id == workflow_id)
    return {row.workflow_id: [a["id"] for a in row.actions] for row in conn.execute(query)}


def _workflow(row: sa.Row[Any], last_run: sa.Row[Any] | None) -> WorkflowSummary:
    return WorkflowSummary(
        workflow_id=row.workflow_id,
        name=row.name,
        mode=row.mode,
        latest_version=row.latest_version,
        actions=[ActionRef(id=a["id"], type=a["type"]) for a in row.actions],
        applied_by=row.applied_by,
        applied_at=_utc(row.applied_at),
        last_run_id=last_run.run_id if last_run else None,
        last_run_status=last_run.status if last_run else None,
        last_run_at=_utc(last_run.started_at) if last_run else None,
    )


def _run(row: sa.Row[Any], chain: list[str]) -> RunSummary:
    per_action: dict[str, dict[str, int]] = {}
    for key, count in row.action_counts.items():
        action, _, status = key.rpartition(":")
        if count:
            per_action.setdefault(action or "-", {})[status] = count
    # "-" (not yet at an action) first, then the chain, then actions no longer in it.
    order = ["-"] * ("-" in per_action) + chain
    order += sorted(set(per_action) - set(order))
    return RunSummary(
        run_id=row.run_id,
        workflow_id=row.workflow_id,
        workflow_version=row.workflow_version,
        mode=row.mode,
        status=row.status,
        partitions=row.partitions,
        partitions_scanned=row.partitions_scanned,
        tasks_created=row.tasks_created,
        counts={k: v for k, v in row.counts.items() if v},
        actions=[ActionTotals(action_id=a, counts=per_action.get(a, {})) for a in order],
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at) if row.finished_at else None,
        cost=row.cost,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        budget=row.budget,
        budget_reached=row.budget_reached,
    )


def _task(row: sa.Row[Any], fields: list[FieldResult]) -> TaskResult:
    return TaskResult(
        task_id=row.task_id,
        run_id=row.run_id,
        workflow_id=row.workflow_id,
        sku=row.sku,
        action_id=row.action_id,
        step_index=row.step_index,
        status=row.status,
        reason=row.reason,
        failure_category=row.failure_category,
        attempt=row.attempt,
        at=_utc(row.at),
        min_confidence=row.min_confidence,
        moderation_state=row.moderation_state,
        sync_status=row.sync_status,
        cost=row.cost,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        fields=fields,
    )


def _decisions_of(
    conn: sa.Connection, column: sa.Column[Any], keys: Sequence[str]
) -> dict[str, list[DecisionView]]:
    if not keys:
        return {}
    d = t.decisions.c
    out: dict[str, list[DecisionView]] = {}
    rows = conn.execute(
        sa.select(t.decisions).where(column.in_(keys)).order_by(d.decided_at, d.decision_id)
    )
    for row in rows:
        out.setdefault(getattr(row, column.name), []).append(
            DecisionView(
                decision_id=row.decision_id,
                item_id=row.item_id,
                task_id=row.task_id,
                sku=row.sku,
                decision=row.decision,
                field=row.field,
                locale=row.locale,
                edited_value=row.edited_value,
                feedback=row.feedback,
                actor_id=row.actor_id,
                role=row.role,
                decided_at=_utc(row.decided_at),
            )
        )
    return out


def _runs_of_tasks(conn: sa.Connection, task_ids: set[str]) -> dict[str, str]:
    if not task_ids:
        return {}
    rows = conn.execute(
        sa.select(tasks_c.task_id, tasks_c.run_id).where(tasks_c.task_id.in_(sorted(task_ids)))
    )
    return {row.task_id: row.run_id for row in rows}


def _step_entry(row: sa.Row[Any]) -> HistoryEntry:
    return HistoryEntry(
        at=_utc(row.at),
        kind=row.kind,
        run_id=row.run_id,
        task_id=row.task_id,
        action_id=row.action_id,
        attempt=row.attempt,
        status=row.status,
        reason=row.reason,
        failure_category=row.failure_category,
        input_hash=row.input_hash,
        model=row.model,
        prompt_version=row.prompt_version,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cost=row.cost,
        fields=[FieldResult.model_validate(f) for f in row.fields],
    )


def _sync(row: sa.Row[Any]) -> SyncResultView:
    return SyncResultView(
        request_id=row.request_id,
        task_id=row.task_id,
        sku=row.sku,
        target=row.target,
        store_scope=row.store_scope,
        status=row.status,
        error_category=row.error_category,
        message=row.message,
        fields=[SyncFieldView.model_validate(f) for f in row.fields],
        at=_utc(row.at),
    )


def _dead_letter(row: sa.Row[Any]) -> DeadLetterView:
    return DeadLetterView(
        dead_letter_id=row.dead_letter_id,
        source_topic=row.source_topic,
        source_partition=row.source_partition,
        source_offset=row.source_offset,
        key=row.key.decode("utf-8", errors="replace") if row.key is not None else None,
        value_size=len(row.value) if row.value is not None else 0,
        reason=row.reason,
        detail=row.detail,
        agent=row.agent,
        failed_at=_utc(row.failed_at),
    )
