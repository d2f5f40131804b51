"""The projector on a real broker, on SQLite and on a real PostgreSQL server: a
reviewed and synced run, the projector killed with SIGKILL mid-run and started
again, and at the end a read model identical (a digest of every table) to a fresh
``read-model rebuild`` into another database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
import yaml
from catalogflow.streams.admin import admin_client
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import WorkflowDefinition, parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess
from confluent_kafka import Consumer, TopicPartition

from catalogflow.cli import main
from catalogflow.readmodel import tables
from catalogflow.readmodel.batch import next_offsets
from catalogflow.readmodel.projector import topic_names
from catalogflow.readmodel.store import digest, engine_for, open_read_model
from tests.integration.catalog import chain_yaml, import_catalog
from tests.integration.engine_actions import TYPES
from tests.integration.pg_fixture import NewDatabase

pytestmark = pytest.mark.kafka

CATALOG = 120
MATCHING = CATALOG // 4


class ProjectorProcess:
    """``catalogflow projector`` in a child process, as a deployment runs it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "catalogflow", "projector"],
            env={**os.environ, **self.settings.to_env()},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()
        self._close()

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            code = -9
        self._proc = None
        self._close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture(params=["sqlite", "postgres"])
def read_model_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'read-model.sqlite'}"
    new_database: NewDatabase = request.getfixturevalue("new_database")
    return new_database()


@pytest.fixture
def projector_settings(settings: Settings, read_model_url: str) -> Settings:
    return settings.replace(read_model_url=read_model_url)


@pytest.fixture
def start_projector(
    projector_settings: Settings, tmp_path: Path
) -> Iterator[Callable[[], ProjectorProcess]]:
    started: list[ProjectorProcess] = []

    def start() -> ProjectorProcess:
        projector = ProjectorProcess(projector_settings, tmp_path / "projector.log")
        projector.start()
        started.append(projector)
        return projector

    yield start
    for projector in started:
        projector.stop()


def reviewed_and_synced(workflow_id: str) -> WorkflowDefinition:
    document = yaml.safe_load(chain_yaml(workflow_id, extract={"delay": 0.05}))
    document["actions"][2]["moderation"] = {"mode": "always"}
    document["sync"] = {"targets": ["merchant_feed"]}
    return parse_definition(yaml.safe_dump(document), f"{workflow_id}.yaml", TYPES)


def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    metadata = admin_client(settings).list_topics(timeout=10)
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    consumer = Consumer({**conf, "group.id": f"{settings.app_id}-test-ends"})
    try:
        ends = {}
        for topic in topic_names(settings):
            for partition in metadata.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10, cached=False
                )
                if high > 0:
                    ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


def wait_caught_up(settings: Settings, engine: sa.Engine, timeout: float = 120.0) -> None:
    """Until the read model's offsets reach the end of every topic it folds."""
    deadline = time.monotonic() + timeout
    while True:
        ends, have = end_offsets(settings), next_offsets(engine)
        behind = {k: v for k, v in ends.items() if have.get(k, 0) < v}
        if not behind:
            return
        assert time.monotonic() < deadline, f"projector still behind on {behind}"
        time.sleep(0.5)


def count(engine: sa.Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def test_a_killed_projector_resumes_and_ends_identical_to_a_rebuild(
    projector_settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    start_projector: Callable[[], ProjectorProcess],
    new_database: NewDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = projector_settings
    worker = start_worker()
    engine = open_read_model(settings)
    projector = start_projector()
    import_catalog(settings, worker, CATALOG)
    definition = reviewed_and_synced("dry-cat-projected")
    apply_definition(settings, definition, "dry-cat-projected.yaml", "test")
    run_id = start_run(settings, definition.id, "test")

    # SIGKILL once the projector has folded part of the run, and start it again.
    deadline = time.monotonic() + 120
    while count(engine, tables.tasks) == 0:
        assert time.monotonic() < deadline, projector.log()
        time.sleep(0.05)
    projector.kill()
    folded_when_killed = count(engine, tables.task_history)
    projector = start_projector()

    worker.wait_for(
        f"/runs/{run_id}/",
        lambda r: r.get("counts", {}).get("AWAITING_MODERATION", 0) == MATCHING,
        timeout=180,
    )
    items = pending_items(settings, run_id=run_id)
    rejected, edited, approved = items[0], items[1], items[2:]
    send_decisions(
        settings,
        [
            decision(rejected, "REJECT", actor="rita"),
            decision(
                edited, "EDIT", actor="erik", field="shopping_title", locale="de_DE", value="Neu"
            ),
            decision(edited, "APPROVE", actor="erik"),
        ]
        + [decision(i, "APPROVE", actor="anna") for i in approved],
    )
    # A record nobody can read: the projector records it as a dead letter and goes on.
    producer = RecordProducer(settings)
    producer.send_raw("sync-results", b"PF-garbage", b"\xc3\x01not avro")
    producer.flush()
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    wait_caught_up(settings, engine)
    # its own dead letter is on the topic now: fold that too
    wait_caught_up(settings, engine)
    assert projector.stop() == 0

    with engine.connect() as conn:
        row = conn.execute(sa.select(tables.runs).where(tables.runs.c.run_id == run_id)).one()
        states: dict[str | None, int] = dict(
            conn.execute(
                sa.select(tables.tasks.c.moderation_state, sa.func.count())
                .where(tables.tasks.c.run_id == run_id)
                .group_by(tables.tasks.c.moderation_state)
            ).all()
        )
        statuses: dict[str | None, int] = dict(
            conn.execute(
                sa.select(tables.tasks.c.sync_status, sa.func.count())
                .where(tables.tasks.c.run_id == run_id)
                .group_by(tables.tasks.c.sync_status)
            ).all()
        )
    assert (row.status, row.tasks_created, row.counts) == ("COMPLETED", MATCHING, run["counts"])
    assert row.counts == {"SYNCED": MATCHING - 1, "REJECTED": 1}
    assert count(engine, tables.tasks, tables.tasks.c.run_id == run_id) == MATCHING
    assert states == {"APPROVED": MATCHING - 2, "EDITED": 1, "REJECTED": 1}
    assert statuses == {"SYNCED": MATCHING - 1, None: 1}
    assert count(engine, tables.moderation_items, tables.moderation_items.c.pending) == 0
    assert count(engine, tables.decisions) == MATCHING + 1
    assert count(engine, tables.dead_letters, tables.dead_letters.c.agent == "projector") == 1
    assert count(engine, tables.workflows) == 1
    assert count(engine, tables.task_history) > folded_when_killed > 0
    assert "WARNING" not in projector.log() and "Traceback" not in projector.log()

    # The same topics folded from scratch into another database, by the CLI.
    other = (
        new_database()
        if engine.dialect.name == "postgresql"
        else (f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    )
    for name, value in settings.replace(read_model_url=other).to_env().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["read-model", "rebuild", "--json"]) == 0
    summary = capsys.readouterr().out
    assert '"tasks": ' + str(MATCHING) in summary
    rebuilt = engine_for(other)
    assert digest(rebuilt) == digest(engine)
    assert next_offsets(rebuilt) == next_offsets(engine)
    rebuilt.dispose()
    engine.dispose()
