"""Who is asking: bearer tokens checked against salted hashes from ``settings.api_tokens``.

The settings hold ``user:role:hash`` entries; the token itself is never stored, logged
or echoed (``catalogflow api token`` prints it once). Roles are ordered: each one may do
what the ones below it may. A route declares its minimum role with ``require(role)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catalogflow.streams.errors import ConfigError

ApiRole = Literal["viewer", "editor", "moderator", "admin"]
ROLES: tuple[ApiRole, ...] = get_args(ApiRole)  # lowest first

ALGORITHM = "pbkdf2_sha256"
#: Tokens are 256 random bits, so the hash needs no password-grade stretching; this
#: is enough that a leaked settings file is no shortcut, and cheap per request.
ITERATIONS = 20_000

#: Verified tokens, by a digest of the token, so a request costs one PBKDF2 only once.
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Caller:
    user: str
    role: ApiRole

    def may(self, role: ApiRole) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class TokenEntry:
    user: str
    role: ApiRole
    hash: str

    def __repr__(self) -> str:  # never the hash, not even in a traceback
        return f"TokenEntry(user={self.user!r}, role={self.role!r})"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<digest>`` (URL-safe base64, no padding)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def verify(token: str, hashed: str) -> bool:
    """Whether ``token`` is the one ``hashed`` was made from (constant-time compare)."""
    try:
        iterations, salt, digest = _parts(hashed)
    except ValueError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", token.encode(), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def entry_line(user: str, role: ApiRole, token: str) -> str:
    """The ``api_tokens`` entry for a token."""
    return f"{user}:{role}:{hash_token(token)}"


def parse_tokens(text: str) -> list[TokenEntry]:
    """The entries of ``api_tokens``; a bad one is a ConfigError naming its position only."""
    entries = []
    for position, raw in enumerate((e.strip() for e in text.split(",")), start=1):
        if not raw:
            continue
        user, sep1, rest = raw.partition(":")
        role, sep2, hashed = rest.partition(":")
        where = f"api_tokens entry {position}"
        if not (sep1 and sep2 and user.strip()):
            raise ConfigError(f"{where} is not user:role:hash")
        if role not in ROLES:
            raise ConfigError(f"{where} (user {user!r}): role must be one of {', '.join(ROLES)}")
        try:
            _parts(hashed)
        except ValueError:
            raise ConfigError(
                f"{where} (user {user!r}): the hash is not one `catalogflow api token` "
                "makes (pbkdf2_sha256$iterations$salt$digest)"
            ) from None
        entries.append(TokenEntry(user.strip(), role, hashed))
    return entries


class Authenticator:
    """Maps a presented token to its Caller, or None."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = entries
        self._known: OrderedDict[bytes, Caller] = OrderedDict()

    @classmethod
    def from_settings(cls, api_tokens: str) -> Authenticator:
        return cls(parse_tokens(api_tokens))

    def holds(self, caller: Caller) -> bool:
        """Whether the settings still give ``caller.user`` the role ``caller.role``
        (a console session ends when its token's entry is removed or changed)."""
        return any(e.user == caller.user and e.role == caller.role for e in self._entries)

    def caller(self, token: str) -> Caller | None:
        key = hashlib.sha256(token.encode()).digest()
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
            return known
        for entry in self._entries:
            if verify(token, entry.hash):
                found = Caller(entry.user, entry.role)
                self._known[key] = found
                if len(self._known) > _CACHE_SIZE:
                    self._known.popitem(last=False)
                return found
        return None


#: In the OpenAPI document as the ``bearer`` scheme; errors are ours (401 ErrorBody).
bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="an API token")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require(role: ApiRole) -> Any:
    """A dependency giving the Caller: 401 without a valid token, 403 below ``role``.

    Use as a parameter default, ``caller: Caller = require("editor")``, or in a
    router's ``dependencies=[require("viewer")]`` (it is ``Depends(...)`` already).
    """

    def caller_of(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401, "an API token is required (Authorization: Bearer …)", _CHALLENGE
            )
        authenticator: Authenticator = request.app.state.authenticator
        caller = authenticator.caller(credentials.credentials)
        if caller is None:
            raise HTTPException(401, "the API token is not valid", _CHALLENGE)
        if not caller.may(role):
            raise HTTPException(403, f"role {caller.role} may not do this; it needs {role}")
        return caller

    caller_of.__name__ = f"require_{role}"
    return Depends(caller_of)


def _parts(hashed: str) -> tuple[int, bytes, bytes]:
    algorithm, iterations, salt, digest = hashed.split("$")
    if algorithm != ALGORITHM or not iterations.isdigit() or int(iterations) < 1:
        raise ValueError("not a pbkdf2_sha256 hash")
    try:
        salt_bytes, digest_bytes = _unb64(salt), _unb64(digest)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(digest_bytes) != 32 or not salt_bytes:
        raise ValueError("wrong digest size")
    return int(iterations), salt_bytes, digest_bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
