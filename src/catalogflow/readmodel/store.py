"""Opening, migrating, dropping and fingerprinting the read model's database.

SQLite (a file under the data directory) is the default and needs nothing else;
PostgreSQL (``postgresql+psycopg://…``) lets several API instances share one read
model. The schema is ``tables.py``, created and changed only by the Alembic
migrations in ``migrations/`` (:func:`upgrade`).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from catalogflow.readmodel import tables
from catalogflow.streams.settings import Settings

#: How long an SQLite connection waits for the writer's lock before it gives up: the
#: projector writes in short transactions while the API reads (WAL lets readers on).
SQLITE_BUSY_TIMEOUT_S = 30.0

_MIGRATIONS = str(Path(__file__).parent / "migrations")


def engine_for(url: str) -> sa.Engine:
    """An engine for ``url``; an SQLite file gets its folder, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit transactions get in the way of SAVEPOINTs (which the
    # projector uses to set one bad record aside): SQLAlchemy emits BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def upgrade(engine: sa.Engine) -> None:
    """Migrate the database to the newest schema (creates it when empty)."""
    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_read_model(settings: Settings) -> sa.Engine:
    """The engine of the configured read model, migrated to the newest schema."""
    engine = engine_for(settings.read_model)
    upgrade(engine)
    return engine


def drop(engine: sa.Engine) -> None:
    """Remove every read-model table and Alembic's version row: the start of a rebuild."""
    with engine.begin() as connection:
        tables.metadata.drop_all(connection)
        connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


def digest(engine: sa.Engine) -> dict[str, str]:
    """sha256 per table over its rows in a canonical form and order, so two read
    models folded from the same topics compare equal whatever order the projector
    met the topics in (``projector_offsets`` is where a projector is, not content)."""
    out: dict[str, str] = {}
    with engine.connect() as connection:
        for table in tables.metadata.sorted_tables:
            if table is tables.projector_offsets:
                continue
            rows = sorted(
                json.dumps([_canonical(v) for v in row], sort_keys=True)
                for row in connection.execute(sa.select(table))
            )
            out[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def _canonical(value: Any) -> Any:
    """A value as JSON that is the same on SQLite and PostgreSQL."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
