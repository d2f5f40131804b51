"""Shared fixtures: one real Kafka broker per test session, unless KAFKA_BOOTSTRAP is set."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
from catalogflow.localbroker.launcher import KAFKA_VERSION, BrokerConfig, LocalBroker

BrokerFactory = Callable[[Path], LocalBroker]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a running broker: ``$KAFKA_BOOTSTRAP`` or a session broker.

    A failed start raises ``CatalogflowError`` whose message quotes broker.out's tail.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalBroker(BrokerConfig(data_dir=tmp_path_factory.mktemp("kafka")))
    bootstrap = broker.start()
    _BROKER_REPORT.append(
        f"Kafka {KAFKA_VERSION} broker from Maven jars at {bootstrap}: "
        f"ready in {broker.last_start_seconds:.1f} s (format included)"
    )
    # The JVM is detached; turn SIGTERM (e.g. from `timeout`) into a normal teardown
    # instead of leaving an orphaned broker behind.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield bootstrap
    finally:
        broker.stop()
        signal.signal(signal.SIGTERM, previous)


_BROKER_REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _BROKER_REPORT:
        terminalreporter.write_line(line)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix such as ``t1a2b3c4d.`` so tests never share topics or groups."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def local_broker_factory() -> Iterator[BrokerFactory]:
    """Build extra brokers on given data dirs (restart/fault tests); all killed at the end."""
    made: list[LocalBroker] = []

    def build(data_dir: Path) -> LocalBroker:
        broker = LocalBroker(BrokerConfig(data_dir=data_dir))
        made.append(broker)
        return broker

    yield build
    for broker in made:
        broker.kill()
