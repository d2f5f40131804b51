"""An API over the fixture read model, with one token per role, for the API tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from catalogflow.streams.settings import Settings
from fastapi import FastAPI

from catalogflow.api.app import create_app
from catalogflow.api.auth import ROLES, ApiRole, entry_line
from tests.unit.readmodel_rows import read_model

#: The token of each role (user = the role's name); made up for the tests only.
TOKENS: dict[ApiRole, str] = {role: f"test-token-of-the-{role}-0123456789" for role in ROLES}


def bearer(role: ApiRole) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        broker="127.0.0.1:1",  # no broker: the write routes get a FakePublisher
        api_tokens=",".join(entry_line(role, role, token) for role, token in TOKENS.items()),
    )


def api(tmp_path: Path, engine: sa.Engine | None = None) -> FastAPI:
    app = create_app(settings(tmp_path), engine if engine is not None else read_model(tmp_path))
    app.state.publisher = FakePublisher()
    return app


class FakePublisher:
    """The write routes' publisher without a broker: records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def apply(self, *args: Any) -> Any:
        raise AssertionError("the matrix sends no valid definition")

    def run(self, *args: Any) -> str:
        self.calls.append(("run", args))
        return "run-new"

    def control(self, *args: Any) -> None:
        self.calls.append(("control", args))

    def retry(self, *args: Any) -> None:
        self.calls.append(("retry", args))

    def decide(self, *args: Any) -> None:
        self.calls.append(("decide", args))

    def replay(self, *args: Any) -> None:
        self.calls.append(("replay", args))
