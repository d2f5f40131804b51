"""``create_app``: the FastAPI application over the read model, one router per area."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from catalogflow import __version__
from catalogflow.api.auth import Authenticator
from catalogflow.api.deps import engine_of, settings_of
from catalogflow.api.errors import add_error_handlers
from catalogflow.api.routes import (
    commands,
    deadletters,
    decisions,
    exports,
    health,
    history,
    metrics,
    moderation,
    runs,
    tasks,
    workflows,
)
from catalogflow.console import install as install_console
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.store import open_read_model
from catalogflow.streams.settings import Settings

__all__ = ["ROUTERS", "create_app", "engine_of", "settings_of"]

#: One line per routes module; a new area of the API is a module and a line here.
ROUTERS: list[APIRouter] = [
    health.router,
    workflows.router,
    runs.router,
    tasks.router,
    exports.router,
    moderation.router,
    deadletters.router,
    history.router,
    commands.router,
    decisions.router,
    metrics.router,
]


def create_app(settings: Settings, engine: sa.Engine | None = None) -> FastAPI:
    """The API; without ``engine`` it opens the read model the settings name.

    Bad ``api_tokens`` entries fail here, at start, as a ConfigError.
    """
    authenticator = Authenticator.from_settings(settings.api_tokens)
    if engine is None:
        engine = open_read_model(settings)
    app = FastAPI(title="catalogflow", version=__version__)
    app.state.settings = settings
    app.state.engine = engine
    app.state.queries = ReadModelQueries(engine)
    app.state.authenticator = authenticator
    add_error_handlers(app)
    app.add_middleware(metrics.RequestMetrics)  # by route template, never the concrete path
    for router in ROUTERS:
        app.include_router(router)
    install_console(app)  # the web console's pages on the same app and port
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422s: validation errors are our 400 ErrorBody."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", _BAD_REQUEST)
        schemas = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema


_BAD_REQUEST = {
    "description": "Bad Request",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}
