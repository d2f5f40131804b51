"""The fault suite's fixtures: those of tests/integration (a worker's settings on the
session broker, worker processes stopped at the end), imported, not copied; and the
scenarios' summary lines in pytest's terminal summary."""

from __future__ import annotations

import pytest

from tests.faults.harness import REPORT
from tests.integration.conftest import settings, start_worker

__all__ = ["settings", "start_worker"]  # fixtures for the scenarios of this folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in REPORT:
        terminalreporter.write_line(line)
