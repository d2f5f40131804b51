"""The end of table recovery loses no fetched record (bug C in docs/crash-test.md, the
:class:`CatalogflowRecovery` workaround; the crash test covers it on a real broker).

faust's own end of recovery is replaced here by its steps in faust 0.15.3's order, run
on the app's real consumer and flow control: the stream partitions resume, the seek
takes a round trip during which aiokafka's prefetched records are delivered (if the
consumer's flow is on, as faust's ``getmany`` checks), then the flow control resumes,
which clears the agents' queues, and the flow resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.app import build_topology
from catalogflow.streams.faust_workarounds import CatalogflowRecovery, CatalogflowTableManager
from catalogflow.streams.settings import Settings
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer


async def test_a_record_fetched_while_recovery_seeks_still_reaches_its_agent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings.load(environ={}).replace(data_dir=tmp_path / "worker")
    app = build_topology(settings).app
    consumer = app.consumer
    tables = app.tables
    assert isinstance(consumer, Consumer)
    assert isinstance(tables, CatalogflowTableManager)
    agent_queue = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    delivered: list[str] = []

    def fetcher_delivers(record: str) -> None:
        if consumer.flow_active:  # else getmany yields nothing and seeks back
            delivered.append(record)
            agent_queue.put_nowait(record)

    async def faust_end_of_recovery(self: Any, generation_id: int = 0) -> None:
        fetcher_delivers("prefetched before the seek")
        fetcher_delivers("fetched during the seek")
        self.app.flow_control.resume()
        self.app.consumer.resume_flow()

    monkeypatch.setattr(Recovery, "on_recovery_completed", faust_end_of_recovery)
    await tables.recovery.on_recovery_completed(0)

    in_queue = [agent_queue.get_nowait() for _ in range(agent_queue.qsize())]
    thrown_away = [record for record in delivered if record not in in_queue]
    assert thrown_away == []
    assert consumer.flow_active  # faust's resume at the end still starts delivery


def test_the_app_uses_the_race_free_recovery(tmp_path: Path) -> None:
    settings = Settings.load(environ={}).replace(data_dir=tmp_path / "worker")
    app = build_topology(settings).app
    assert isinstance(app.tables, CatalogflowTableManager)
    assert isinstance(app.tables.recovery, CatalogflowRecovery)
