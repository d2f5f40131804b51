"""A working worker is quiet and leaves nothing open: no table changelog is taken for a
stream that stopped (faust's livelock check logged one ERROR per changelog partition
every seven seconds), and every HTTP client is closed when the worker stops."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from catalogflow.connectors.llm.provider import ClientPool
from catalogflow.connectors.magento.target import MagentoTarget
from catalogflow.connectors.targets.base import TargetContext
from catalogflow.streams.app import build_topology
from catalogflow.streams.clock import SystemClock
from catalogflow.streams.settings import Settings
from catalogflow.streams.shutdown import close_on_shutdown

from catalogflow.worker import build_worker


def settings_in(tmp_path: Path) -> Settings:
    return Settings.load(environ={}).replace(data_dir=tmp_path / "worker")


def test_no_table_changelog_is_acked_so_faust_never_reports_it_as_an_idle_stream(
    tmp_path: Path,
) -> None:
    topology = build_topology(settings_in(tmp_path))
    acked = [
        name for name, table in topology.tables.items() if table.changelog_topic.acks is not False
    ]
    assert acked == []


async def test_every_registered_close_runs_when_the_app_stops_even_if_one_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_topology(settings_in(tmp_path)).app
    closed: list[str] = []

    async def broken() -> None:
        raise OSError("socket already gone")

    async def fine() -> None:
        closed.append("fine")

    close_on_shutdown(app, "the broken client", broken)
    close_on_shutdown(app, "the fine client", fine)
    with caplog.at_level(logging.WARNING):
        await app.on_before_shutdown.send()
    assert closed == ["fine"]
    assert "could not close the broken client while stopping: socket already gone" in caplog.text


async def test_the_worker_closes_its_llm_clients_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[ClientPool] = []

    async def aclose(self: ClientPool) -> None:
        closed.append(self)

    monkeypatch.setattr(ClientPool, "aclose", aclose)
    topology = build_worker(settings_in(tmp_path))
    await topology.app.on_before_shutdown.send()
    assert len(closed) == 1  # the built-in AI actions share one pool


async def test_the_magento_target_closes_its_session() -> None:
    class Client:
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    target = MagentoTarget(TargetContext(Settings.load(environ={}), {}, SystemClock()))
    client = Client()
    target._writer = type("Writer", (), {"client": client})()
    await target.aclose()
    assert client.closed
    await target.aclose()  # nothing open any more: a no-op
