"""ReadModelQueries over an SQLite read model filled straight through the tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from catalogflow.readmodel.queries import Decided, ReadModelQueries
from catalogflow.readmodel.views import MAX_PAGE, BadQuery, NotFound, ReadSide, TaskFilter
from tests.unit.readmodel_rows import RUN, TASKS, WORKFLOW, read_model, sku, task_id


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return read_model(tmp_path)


@pytest.fixture
def queries(engine: sa.Engine) -> ReadModelQueries:
    return ReadModelQueries(engine)


def ids(queries: ReadModelQueries, **filters: object) -> list[str]:
    return [t.task_id for t in queries.all_tasks(RUN, TaskFilter.model_validate(filters))]


def test_it_is_a_read_side(queries: ReadModelQueries) -> None:
    side: ReadSide = queries
    assert side.run(RUN).run_id == RUN


def test_workflows_carry_their_chain_versions_and_last_run(queries: ReadModelQueries) -> None:
    (summary,) = queries.workflows()
    assert [a.id for a in summary.actions] == ["extract", "describe"]
    assert summary.last_run_id == RUN
    detail = queries.workflow(WORKFLOW)
    assert [v.version for v in detail.versions] == [2, 1]


def test_runs_are_newest_first_with_totals_per_action_in_chain_order(
    queries: ReadModelQueries,
) -> None:
    assert [r.run_id for r in queries.runs()] == [RUN, "run-0"]
    assert [r.run_id for r in queries.runs(WORKFLOW)] == [RUN, "run-0"]
    run = queries.run(RUN)
    assert [a.action_id for a in run.actions] == ["-", "extract", "describe"]
    assert run.actions[1].counts == {"ERROR": 2}  # zero counts dropped
    assert run.started_at.tzinfo is not None


def test_each_filter_selects_exactly_its_tasks(queries: ReadModelQueries) -> None:
    every = [task_id(i) for i, *_ in TASKS]
    assert ids(queries) == every
    assert ids(queries, status=["ERROR"]) == [task_id(2), task_id(6)]
    assert ids(queries, status=["ERROR", "SYNCED"]) == [task_id(2), task_id(4), task_id(6)]
    assert ids(queries, failure_category="INVALID_OUTPUT") == [task_id(2)]
    assert ids(queries, moderation_state="PENDING") == [task_id(3)]
    assert ids(queries, sync_status="SYNCED") == [task_id(4)]
    assert ids(queries, q="sku-00") == every
    assert ids(queries, q="NUMBER 5") == [task_id(5)]
    assert ids(queries, q="%") == []  # a LIKE wildcard is a plain character
    assert ids(queries, action="describe") == [task_id(i) for i in (0, 1, 3, 4)]
    assert ids(queries, confidence_below=0.5) == [task_id(1), task_id(2), task_id(3)]
    assert ids(queries, action="describe", confidence_below=0.5) == [task_id(3)]
    assert ids(queries, action="extract", confidence_below=0.5, status=["ERROR"]) == [task_id(2)]


def test_an_action_filter_shows_only_that_actions_fields(queries: ReadModelQueries) -> None:
    page = queries.tasks(RUN, TaskFilter(action="extract"))
    assert {f.action_id for t in page.items for f in t.fields} == {"extract"}
    full = queries.tasks(RUN, TaskFilter())
    assert {f.action_id for f in full.items[0].fields} == {"extract", "describe"}
    assert full.items[0].fields[1].locale is None  # "" in the table is no locale


def test_cursor_pages_add_up_to_the_whole_set_in_order(queries: ReadModelQueries) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        page = queries.tasks(RUN, TaskFilter(), cursor, limit=2)
        seen += [t.task_id for t in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 4
    assert seen == [task_id(i) for i, *_ in TASKS]


def test_a_bad_cursor_is_a_bad_query_naming_it(queries: ReadModelQueries) -> None:
    for bad in ("not-base64!!", "bm9wZQ", queries.moderation_queue(limit=1).next_cursor):
        with pytest.raises(BadQuery, match="cursor"):
            queries.tasks(RUN, TaskFilter(), cursor=bad)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1])
def test_a_page_size_outside_the_bounds_is_a_bad_query(
    queries: ReadModelQueries, limit: int
) -> None:
    with pytest.raises(BadQuery, match="limit"):
        queries.tasks(RUN, TaskFilter(), limit=limit)
    with pytest.raises(BadQuery, match="limit"):
        queries.dead_letters(limit=limit)


def test_an_unknown_filter_value_is_a_bad_query(queries: ReadModelQueries) -> None:
    with pytest.raises(BadQuery, match="DONE"):
        queries.tasks(RUN, TaskFilter(status=["DONE"]))
    with pytest.raises(BadQuery, match="failure_category"):
        queries.tasks(RUN, TaskFilter(failure_category="OOPS"))


def test_unknown_ids_are_not_found(queries: ReadModelQueries) -> None:
    for call in (
        lambda: queries.workflow("nope"),
        lambda: queries.runs("nope"),
        lambda: queries.run("nope"),
        lambda: queries.tasks("nope", TaskFilter()),
        lambda: queries.dead_letter("9-9"),
        lambda: queries.history("NO-SUCH-SKU"),
        lambda: queries.pending_item("nope"),
    ):
        with pytest.raises(NotFound):
            call()


def test_the_moderation_queue_is_pending_only_riskiest_first(queries: ReadModelQueries) -> None:
    queue = queries.moderation_queue()
    assert [i.item_id for i in queue.items] == ["item-check", "item-low", "item-late"]
    first = queries.moderation_queue(limit=2)
    rest = queries.moderation_queue(cursor=first.next_cursor, limit=2)
    assert [i.item_id for i in first.items + rest.items] == [i.item_id for i in queue.items]
    assert rest.next_cursor is None
    item = queue.items[0]
    assert item.source_values[0].attribute == "name"
    assert item.fields[0].model == "gpt-4o-mini" and item.fields[0].confidence == 0.45
    assert queries.moderation_queue(action_id="other").items == []


def test_pending_item_gives_the_record_and_refuses_a_decided_one(
    queries: ReadModelQueries,
) -> None:
    assert queries.pending_item("item-low")["item_id"] == "item-low"
    with pytest.raises(Decided):
        queries.pending_item("item-done")


def test_history_merges_steps_decisions_and_syncs_oldest_first(
    queries: ReadModelQueries,
) -> None:
    history = queries.history(sku(0))
    assert [e.kind for e in history.entries] == [
        "transition",
        "output",
        "decision",
        "sync",
        "transition",
    ]
    output = history.entries[1]
    assert (output.model, output.prompt_version, output.input_hash) == (
        "gpt-4o-mini",
        "v2",
        "sha256:in",
    )
    assert history.entries[2].decision is not None
    assert history.entries[2].decision.actor_id == "mia"
    assert history.entries[3].sync is not None and history.entries[3].run_id == RUN


def test_dead_letters_page_and_keep_their_bytes(queries: ReadModelQueries) -> None:
    first = queries.dead_letters(limit=2)
    rest = queries.dead_letters(cursor=first.next_cursor, limit=2)
    assert [d.dead_letter_id for d in first.items + rest.items] == ["0-0", "0-1", "0-2"]
    assert [d.dead_letter_id for d in queries.dead_letters("unsigned-command").items] == ["0-0"]
    assert queries.dead_letter("0-1").value_size == 9
    assert queries.dead_letter_record("0-1")["value"] == b"\x00\x01garbage"
