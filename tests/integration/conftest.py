"""Fixtures for tests that run real workers against the real broker."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.engine_actions import TYPES
from tests.integration.pg_fixture import new_database, postgres_url

__all__ = ["new_database", "postgres_url"]  # fixtures for the tests of this folder

#: The repository root, so worker processes can import the test action plugin.
ROOT = str(Path(__file__).resolve().parents[2])
TEST_ACTIONS = "tests.integration.engine_actions"


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Settings:
    """Settings of one test: its own topics, consumer group and web port."""
    settings = Settings.load(environ={}).replace(
        broker=kafka_bootstrap,
        topic_prefix=topic_prefix,
        app_id="",
        partitions=int(os.environ.get("CATALOGFLOW_TEST_PARTITIONS", "4")),
        store=os.environ.get("CATALOGFLOW_TEST_STORE", "memory://"),
        data_dir=tmp_path / "worker",
        web_port=free_port(),
        projector_port=free_port(),
        action_plugins=TEST_ACTIONS,
        worker_id="w1",
    )
    ensure_topics(settings, action_types=TYPES)
    return settings


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``catalogflow worker`` processes; all are stopped when the test ends."""
    started: list[WorkerProcess] = []

    def start(**changes: object) -> WorkerProcess:
        worker_settings = settings.replace(**changes) if changes else settings
        worker = WorkerProcess(
            worker_settings, tmp_path / f"worker-{len(started)}.log", env={"PYTHONPATH": ROOT}
        )
        started.append(worker)
        worker.start()
        return worker

    yield start
    refused: list[str] = []
    for worker in started:
        try:
            worker.stop()
        except CatalogflowError as exc:  # stop the others before failing the test
            refused.append(str(exc))
    assert not refused, "; ".join(refused)
