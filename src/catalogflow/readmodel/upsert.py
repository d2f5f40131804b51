"""Insert-or-update and insert-or-ignore for the two dialects the read model runs on.

Both SQLite and PostgreSQL spell it ``INSERT … ON CONFLICT``; SQLAlchemy builds each
dialect's statement, so no SQL text is written per dialect here. The statements are
built once per table and set of columns and run with bound parameters: building a
statement around each row's values costs more than running it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: sa.Connection, table: sa.Table, row: Mapping[str, Any]) -> None:
    """Write ``row``; a row with the same primary key is replaced by it."""
    conn.execute(_statement(conn.dialect.name, table, tuple(row), replace=True), dict(row))


def insert_new(conn: sa.Connection, table: sa.Table, row: Mapping[str, Any]) -> None:
    """Write ``row`` unless its primary key is there already (a replayed record)."""
    conn.execute(_statement(conn.dialect.name, table, tuple(row), replace=False), dict(row))


@functools.cache
def _statement(dialect: str, table: sa.Table, columns: tuple[str, ...], replace: bool) -> Any:
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise NotImplementedError(f"the read model runs on SQLite or PostgreSQL, not {dialect}")
    keys = [column.name for column in table.primary_key.columns]
    if not replace:
        return statement.on_conflict_do_nothing(index_elements=keys)
    changes = {name: statement.excluded[name] for name in columns if name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=changes)
