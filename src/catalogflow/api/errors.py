"""Every error the API answers is an ``ErrorBody``: a stable code and a sentence.

Our read-side errors map to 404/400/409, FastAPI's validation errors to 400 naming the
field (never 422), HTTPException keeps its status. Anything else is a bug: logged once
here, answered 500 without a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalogflow.readmodel.queries import Decided
from catalogflow.readmodel.views import BadQuery, ErrorBody, NotFound

log = logging.getLogger(__name__)

CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    503: "unavailable",
}

#: For the OpenAPI document: the error answers every route may give.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404)
}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=CODES.get(status, "error"), message=message)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return error(404, str(exc))

    async def bad_query(_: Request, exc: Exception) -> JSONResponse:
        return error(400, str(exc))

    async def decided(_: Request, exc: Exception) -> JSONResponse:
        return error(409, str(exc))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error(400, validation_message(exc))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return error(500, "internal error; the API's log has the exception's type")

    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(BadQuery, bad_query)
    app.add_exception_handler(Decided, decided)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def validation_message(exc: RequestValidationError) -> str:
    """``query.limit: Input should be less than or equal to 1000`` and so on."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
