"""The read side for integration tests: an in-process projector over the test's read
model, and the CLI run with the test's settings (an API address where none listens,
so the read commands fall back to the read model unless a test starts an API)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.settings import Settings

from catalogflow.cli import main
from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.store import open_read_model

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def read_settings(settings: Settings) -> Settings:
    return settings.replace(api_url=f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def read_model(read_settings: Settings) -> Iterator[sa.Engine]:
    """A projector thread folding the test's topics into its SQLite read model."""
    engine = open_read_model(read_settings)
    projector = Projector(read_settings, engine)
    projector.start()
    yield engine
    projector.stop()
    engine.dispose()


@pytest.fixture
def cli(
    read_settings: Settings,
    read_model: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """Run ``catalogflow ARGS`` with the test's settings; return (exit code, out, err)."""
    for name, value in read_settings.to_env().items():
        monkeypatch.setenv(name, value)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
