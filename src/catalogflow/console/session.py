"""Console sessions: who is signed in, in a signed cookie, and the CSRF check.

Signing in takes an API token once; the cookie then holds only the user, the role
and a random CSRF token, signed with a key derived from ``signing_key`` (or, without
one, a key made at start: sessions then end when the process restarts and are not
shared between API replicas). The cookie is HttpOnly and SameSite=Strict, Secure
over HTTPS. Every state-changing request must also carry the session's CSRF token,
in the ``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx sends it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Depends, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from catalogflow.api.auth import ROLES, ApiRole, Authenticator, Caller
from catalogflow.streams.settings import Settings

COOKIE = "catalogflow_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: A working day; after it the console asks for the token again.
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    user: str
    role: ApiRole
    csrf: str

    @property
    def caller(self) -> Caller:
        return Caller(self.user, self.role)

    def may(self, role: ApiRole) -> bool:
        return self.caller.may(role)


class SignInRequired(Exception):
    """No valid session: the console answers with the sign-in page."""


class SessionCodec:
    """Session <-> cookie value (signed and timestamped, not encrypted: it holds no secret)."""

    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="catalogflow.console.session")

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCodec:
        secret = settings.signing_key.reveal()
        if secret:
            key = hmac.new(secret.encode(), b"catalogflow console session", hashlib.sha256)
            return cls(key.digest())
        return cls(secrets.token_bytes(32))

    def dump(self, session: Session) -> str:
        return self._serializer.dumps([session.user, session.role, session.csrf])

    def load(self, value: str, max_age: int = MAX_AGE_S) -> Session | None:
        try:
            user, role, csrf = self._serializer.loads(value, max_age=max_age)
        except (BadSignature, ValueError, TypeError):
            return None
        if role not in ROLES or not isinstance(user, str) or not isinstance(csrf, str):
            return None
        return Session(user, cast(ApiRole, role), csrf)


def new_session(caller: Caller) -> Session:
    return Session(caller.user, caller.role, secrets.token_urlsafe(24))


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def current_session(request: Request) -> Session | None:
    """The request's session, if its cookie is valid and its user still holds the role."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    codec: SessionCodec = request.app.state.session_codec
    session = codec.load(value)
    authenticator: Authenticator = request.app.state.authenticator
    if session is None or not authenticator.holds(session.caller):
        return None
    return session


def session_for(request: Request, role: ApiRole) -> Session:
    """The request's session if it may act as ``role``: SignInRequired without one, 403
    below the role."""
    session = current_session(request)
    if session is None:
        raise SignInRequired()
    if not session.may(role):
        raise HTTPException(403, f"role {session.role} may not do this; it needs {role}")
    return session


def signed_in(role: ApiRole = "viewer") -> Any:
    """A dependency giving the Session: the sign-in page without one, 403 below ``role``."""

    def session_of(request: Request) -> Session:
        return session_for(request, role)

    session_of.__name__ = f"signed_in_{role}"
    return Depends(session_of)


def form_posted(role: ApiRole) -> Any:
    """A dependency for a state-changing request: the Session (at least ``role``) and
    its parsed form, refused with 403 unless it carries the session's CSRF token."""

    async def checked(request: Request) -> PostedForm:
        session = session_for(request, role)
        form = await request.form()
        sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        lists: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                lists.setdefault(key, []).append(value)
        return PostedForm(session, fields, lists)

    checked.__name__ = f"form_posted_{role}"
    return Depends(checked)


@dataclass(frozen=True)
class PostedForm:
    session: Session
    fields: dict[str, str]
    lists: dict[str, list[str]]

    def get(self, name: str) -> str | None:
        value = self.fields.get(name, "").strip()
        return value or None
