"""``install(app)``: the console's pages, assets, headers and error pages on the API app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalogflow.api.errors import validation_message
from catalogflow.console.headers import SecurityHeaders, is_console
from catalogflow.console.pages import PAGES
from catalogflow.console.session import SessionCodec, SignInRequired, current_session
from catalogflow.console.templating import HERE, render
from catalogflow.readmodel.queries import Decided
from catalogflow.readmodel.views import BadQuery, NotFound

Handler = Callable[[Request, Any], Any]


def install(app: FastAPI) -> None:
    app.state.session_codec = SessionCodec.from_settings(app.state.settings)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in PAGES:
        app.include_router(router)
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(SignInRequired, _sign_in)
    # The API's handlers answer JSON; a console page gets an HTML page instead.
    for kind, status in (
        (NotFound, 404),
        (BadQuery, 400),
        (Decided, 409),
        (RequestValidationError, 400),
        (StarletteHTTPException, 0),
        (HTTPException, 0),
    ):
        app.add_exception_handler(kind, _html_or(app.exception_handlers[kind], status))


async def _sign_in(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/login?next={quote(target, safe='')}"
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def _html_or(api_handler: Handler, status: int) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_console(request.url.path):
            answer: Response = await api_handler(request, exc)
            return answer
        code = status
        message = str(exc)
        if isinstance(exc, StarletteHTTPException):
            code, message = exc.status_code, str(exc.detail)
        elif isinstance(exc, RequestValidationError):
            message = validation_message(exc)
        return render(
            request,
            "error.html",
            current_session(request),
            status_code=code,
            code=code,
            message=message,
        )

    return handle
