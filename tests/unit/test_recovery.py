"""The end of table recovery stops the flow before faust resumes the stream partitions,
so no fetched record can reach an agent's queue before faust clears the queues
(bug C in docs/crash-test.md; the crash test covers the behaviour on a real broker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.app import build_topology
from catalogflow.streams.settings import Settings
from catalogflow.streams.tables import CatalogflowRecovery, CatalogflowTableManager
from faust.tables.recovery import Recovery


async def test_flow_stops_before_faust_resumes_the_stream_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    class Consumer:
        def stop_flow(self) -> None:
            calls.append("consumer.stop_flow")

    class FlowControl:
        def suspend(self) -> None:
            calls.append("flow_control.suspend")

    class App:
        consumer = Consumer()
        flow_control = FlowControl()

    async def faust_end_of_recovery(self: Any, generation_id: int = 0) -> None:
        calls.append(f"faust on_recovery_completed({generation_id})")

    monkeypatch.setattr(Recovery, "on_recovery_completed", faust_end_of_recovery)
    recovery = object.__new__(CatalogflowRecovery)
    recovery.app = App()  # type: ignore[assignment]
    await recovery.on_recovery_completed(3)
    assert calls == [
        "consumer.stop_flow",
        "flow_control.suspend",
        "faust on_recovery_completed(3)",
    ]


def test_the_app_uses_the_race_free_recovery(tmp_path: Path) -> None:
    settings = Settings.load(environ={}).replace(data_dir=tmp_path / "worker")
    app = build_topology(settings).app
    assert isinstance(app.tables, CatalogflowTableManager)
    assert isinstance(app.tables.recovery, CatalogflowRecovery)
