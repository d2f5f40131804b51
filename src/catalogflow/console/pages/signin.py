"""Signing in with an API token, and signing out.

The token is checked once, against the same ``api_tokens`` entries as the API's
bearer tokens; it is never put in the cookie, a page or the log. The sign-in form is
protected from login CSRF by a random value in a short-lived cookie and in the form.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from catalogflow.api.auth import Authenticator
from catalogflow.console.session import (
    PostedForm,
    SessionCodec,
    clear_cookie,
    current_session,
    form_posted,
    new_session,
    set_cookie,
)
from catalogflow.console.templating import render

router = APIRouter(include_in_schema=False)

LOGIN_COOKIE = "catalogflow_login"


def safe_next(target: str | None) -> str:
    """Only a path on this site: never ``//other.host`` or ``https://…``."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    return _form(request, safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    login_check: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, login_check):
        return _form(request, safe_next(next), "The sign-in form expired; try again.", 400)
    authenticator: Authenticator = request.app.state.authenticator
    caller = authenticator.caller(token.strip()) if token.strip() else None
    if caller is None:
        return _form(request, safe_next(next), "That token is not valid.", 401)
    codec: SessionCodec = request.app.state.session_codec
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, request, codec.dump(new_session(caller)))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(form: Annotated[PostedForm, form_posted("viewer")]) -> Response:
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(response)
    return response


def _form(
    request: Request, next_path: str, error: str | None = None, status: int = 200
) -> Response:
    check = secrets.token_urlsafe(16)
    response = render(
        request,
        "login.html",
        current_session(request),
        status_code=status,
        next=next_path,
        login_check=check,
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        check,
        max_age=600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return response
