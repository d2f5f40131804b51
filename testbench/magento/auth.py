"""Who may call the simulated shop: admin tokens, integrations (Bearer and OAuth 1.0a)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote

from catalogflow.testbench.magento.config import MagentoSimConfig
from catalogflow.testbench.magento.errors import WebapiError, required_field, unauthorized

PRODUCTS_ACL = "Magento_Catalog::products"
ATTRIBUTES_ACL = "Magento_Catalog::attributes_attributes"
BULK_ACL = "Magento_Logging::system_magento_logging_bulk_operations"

MSG_SIGN_IN = (
    "The account sign-in was incorrect or your account is disabled temporarily. "
    "Please wait and try again later."
)
MSG_2FA = "Please use the 2fa provider-specific endpoints to obtain a token."
MSG_OAUTH_SIGNATURE = "The signature is invalid. Verify and try again."
MSG_OAUTH_METHOD = "Signature method %1 is not supported"
MSG_OAUTH_VERSION = 'The "%1" Oauth version isn\'t supported.'
MSG_OAUTH_TIMESTAMP = "Incorrect timestamp value in the oauth_timestamp parameter"
MSG_OAUTH_NONCE = (
    "The nonce is already being used by the consumer with ID %1. Verify the nonce and try again."
)
OAUTH_TIME_DEVIATION_S = 600


@dataclass
class Token:
    kind: Literal["admin", "integration"]
    user_id: int
    expires_at: float | None  # clock seconds; None = never


@dataclass(frozen=True)
class IntegrationCredentials:
    """What activating an integration shows: all four are needed to sign OAuth 1.0a
    requests; ``access_token`` alone is the Bearer token (when the switch allows it)."""

    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str


@dataclass(frozen=True)
class Caller:
    user_type: int  # 1 integration, 2 admin
    user_id: int


def _pct(text: str) -> str:
    """RFC 3986 percent-encoding, as OAuth 1.0a and PHP's rawurlencode use it."""
    return quote(text, safe="~-._")


class Auth:
    """Admin users, integrations and the tokens issued to them; checks each request."""

    def __init__(
        self,
        lock: threading.RLock,
        config: Callable[[], MagentoSimConfig],
        clock: Callable[[], float],
    ) -> None:
        self._lock, self._config, self._clock = lock, config, clock
        self.tokens: dict[str, Token] = {}
        self.admin_users: dict[str, tuple[int, str]] = {}
        self.integrations: dict[str, tuple[int, IntegrationCredentials]] = {}
        self.nonces: set[tuple[int, str]] = set()

    def add_admin_user(self, username: str, password: str) -> None:
        with self._lock:
            user_id = self.admin_users.get(username, (len(self.admin_users) + 1, ""))[0]
            self.admin_users[username] = (user_id, password)

    def issue_integration(self, name: str) -> IntegrationCredentials:
        with self._lock:
            if name not in self.integrations:
                credentials = IntegrationCredentials(*(secrets.token_hex(16) for _ in range(4)))
                integration_id = len(self.integrations) + 1
                self.integrations[name] = (integration_id, credentials)
                self.tokens[credentials.access_token] = Token("integration", integration_id, None)
            return self.integrations[name][1]

    def admin_token(self, body: Any) -> str:
        with self._lock:
            if not isinstance(body, dict):
                raise required_field("username")
            for key in ("username", "password"):
                if not isinstance(body.get(key), str) or not body[key]:
                    raise required_field(key)
            user = self.admin_users.get(body["username"])
            if user is None or not secrets.compare_digest(user[1], body["password"]):
                raise WebapiError(401, MSG_SIGN_IN)
            if self._config().two_factor_auth:
                raise WebapiError(401, MSG_2FA, {"active_providers": ["google"]})
            token = secrets.token_hex(16)
            self.tokens[token] = Token(
                "admin", user[0], self._clock() + self._config().admin_token_ttl_s
            )
            return token

    def expire_admin_tokens(self) -> None:
        with self._lock:
            for token in self.tokens.values():
                if token.kind == "admin":
                    token.expires_at = -math.inf

    def authenticate(
        self,
        header: str | None,
        resource: str,
        *,
        method: str = "GET",
        base_url: str = "",
        query: Iterable[tuple[str, str]] = (),
    ) -> Caller:
        """The caller of a request, or Magento's 401. ``method``, ``base_url`` (scheme,
        host and encoded path) and the decoded ``query`` are what OAuth 1.0a signs."""
        with self._lock:
            if header and header[:6].lower() == "oauth ":
                return self._oauth(header, resource, method, base_url, query)
            if not header or not header.startswith("Bearer "):
                raise unauthorized(resource)
            token = self.tokens.get(header[len("Bearer ") :].strip())
            if token is None:
                raise unauthorized(resource)
            if token.kind == "admin":
                if token.expires_at is not None and token.expires_at <= self._clock():
                    raise unauthorized(resource)
                return Caller(2, token.user_id)
            if not self._config().integration_bearer_enabled:
                raise unauthorized(resource)
            return Caller(1, token.user_id)

    def _oauth(
        self,
        header: str,
        resource: str,
        method: str,
        base_url: str,
        query: Iterable[tuple[str, str]],
    ) -> Caller:
        """Magento's ``Oauth::validateAccessTokenRequest`` (HMAC-SHA1 or HMAC-SHA256)."""
        params: dict[str, str] = {}
        for part in header[6:].split(","):
            name, sep, value = part.strip().partition("=")
            if sep and name.startswith("oauth_"):
                params[unquote(name)] = unquote(value.strip().strip('"'))
        if "oauth_version" in params and params["oauth_version"] != "1.0":
            raise WebapiError(400, MSG_OAUTH_VERSION, [params["oauth_version"]])
        for name in (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_nonce",
            "oauth_timestamp",
            "oauth_token",
        ):
            if name not in params:
                raise required_field(name)
        digests = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
        digest = digests.get(params["oauth_signature_method"])
        if digest is None:
            raise WebapiError(400, MSG_OAUTH_METHOD, [params["oauth_signature_method"]])
        found = next(
            (
                (number, c)
                for number, c in self.integrations.values()
                if c.consumer_key == params["oauth_consumer_key"]
            ),
            None,
        )
        if found is None or found[1].access_token != params["oauth_token"]:
            raise unauthorized(resource)
        consumer_id, credentials = found
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            timestamp = 0
        # wall time, not self._clock: clients sign with the real time
        if timestamp <= 0 or timestamp > time.time() + OAUTH_TIME_DEVIATION_S:
            raise WebapiError(401, MSG_OAUTH_TIMESTAMP)
        if (consumer_id, params["oauth_nonce"]) in self.nonces:
            raise WebapiError(401, MSG_OAUTH_NONCE, [consumer_id])
        self.nonces.add((consumer_id, params["oauth_nonce"]))
        signed = [(k, v) for k, v in params.items() if k != "oauth_signature"]
        pairs = sorted((_pct(k), _pct(v)) for k, v in [*query, *signed])
        normalized = "&".join(f"{k}={v}" for k, v in pairs)
        base = "&".join(_pct(p) for p in (method.upper(), base_url, normalized))
        key = f"{_pct(credentials.consumer_secret)}&{_pct(credentials.access_token_secret)}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), digest).digest())
        if not hmac.compare_digest(expected.decode(), params["oauth_signature"]):
            raise WebapiError(401, MSG_OAUTH_SIGNATURE)
        return Caller(1, consumer_id)
