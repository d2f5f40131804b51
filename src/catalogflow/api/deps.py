"""What a route reaches through the app: its settings, the read model and its queries."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import Request

from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.streams.settings import Settings


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def engine_of(request: Request) -> sa.Engine:
    engine: sa.Engine = request.app.state.engine
    return engine


def queries_of(request: Request) -> ReadModelQueries:
    queries: ReadModelQueries = request.app.state.queries
    return queries
