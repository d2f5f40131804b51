"""The read model's database: the migrations make exactly tables.py, and the digest
names content, not where a projector is."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from catalogflow.streams.settings import Settings

from catalogflow.readmodel import tables
from catalogflow.readmodel.store import digest, drop, engine_for, open_read_model, upgrade


def test_the_migrations_create_exactly_the_tables_of_tables_py(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'nested' / 'rm.sqlite'}")
    upgrade(engine)
    upgrade(engine)  # at head already: nothing to do
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
        assert diff == []
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "nested" / "rm.sqlite").is_file()


def test_open_read_model_defaults_to_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.load(environ={}).replace(data_dir=tmp_path / "data")
    engine = open_read_model(settings)
    assert engine.dialect.name == "sqlite"
    assert (tmp_path / "data" / "read-model.sqlite").is_file()
    assert "tasks" in sa.inspect(engine).get_table_names()


def test_digest_ignores_offsets_and_drop_removes_everything(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'rm.sqlite'}")
    upgrade(engine)
    empty = digest(engine)
    assert "projector_offsets" not in empty and set(empty) == {
        t.name for t in tables.metadata.sorted_tables
    } - {"projector_offsets"}
    with engine.begin() as conn:
        conn.execute(
            tables.projector_offsets.insert().values(topic="t", partition=0, next_offset=9)
        )
    assert digest(engine) == empty
    with engine.begin() as conn:
        conn.execute(
            tables.commands.insert().values(
                command_id="c1",
                workflow_id="wf",
                command="RUN",
                run_id=None,
                issued_by="me",
                issued_at=sa.func.current_timestamp(),
                arguments={},
            )
        )
    changed = digest(engine)
    assert changed["commands"] != empty["commands"]
    assert {k: v for k, v in changed.items() if k != "commands"} == {
        k: v for k, v in empty.items() if k != "commands"
    }
    drop(engine)
    assert sa.inspect(engine).get_table_names() == []
