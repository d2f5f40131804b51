"""What the Magento connector needs to know, read once from :class:`Settings`.

Secrets (the integration token, the admin password, the OAuth 1.0a credentials) are
read from the environment variables the settings name and kept as :class:`Secret`, so
they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from catalogflow.streams.errors import ConfigError
from catalogflow.streams.settings import MagentoAuth, MissingOption, Secret, Settings
from catalogflow.streams.sync import store_codes

#: OAuth 1.0a needs three more secrets than the access token; they have fixed names.
OAUTH_CONSUMER_KEY_ENV = "MAGENTO_CONSUMER_KEY"
OAUTH_CONSUMER_SECRET_ENV = "MAGENTO_CONSUMER_SECRET"
OAUTH_TOKEN_SECRET_ENV = "MAGENTO_ACCESS_TOKEN_SECRET"


@dataclass(frozen=True)
class MagentoConfig:
    """One Magento instance and how to talk to it."""

    base_url: str  # https://shop.example.com, without /rest
    auth: MagentoAuth = "integration"
    token: Secret = field(default=Secret(""))  # integration access token (integration, oauth1)
    username: str = ""  # admin user (auth=admin)
    password: Secret = field(default=Secret(""))
    consumer_key: Secret = field(default=Secret(""))  # oauth1 only
    consumer_secret: Secret = field(default=Secret(""))
    token_secret: Secret = field(default=Secret(""))
    concurrency: int = 2  # requests in flight at once; Magento deadlocks under many
    missing_option: MissingOption = "fail"
    store_codes: Mapping[str, str] = field(default_factory=lambda: {"de_DE": "de"})
    timeout: float = 60.0  # whole request; saves run indexers and URL rewrites
    connect_timeout: float = 10.0
    max_attempts: int = 4  # per call, for 5xx, 429, deadlocks and connection errors
    backoff: float = 0.5  # first retry delay; doubles each retry
    backoff_cap: float = 20.0
    max_retry_after: float = 120.0  # a longer Retry-After fails the call at once
    token_env: str = "MAGENTO_TOKEN"  # names only, for messages that say where to look
    password_env: str = "MAGENTO_PASSWORD"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"setting magento_url must start with http:// or https://, got {self.base_url!r}"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/").removesuffix("/rest"))
        if self.concurrency < 1:
            raise ConfigError(
                f"setting magento_concurrency must be at least 1, got {self.concurrency}"
            )
        if self.max_attempts < 1:
            raise ConfigError(f"Magento max_attempts must be at least 1, got {self.max_attempts}")
        if self.auth in ("integration", "oauth1") and not self.token.reveal():
            raise ConfigError(
                f"magento_auth={self.auth} needs the integration access token in "
                f"environment variable {self.token_env}, which is not set"
            )
        if self.auth == "admin" and (not self.username or not self.password.reveal()):
            raise ConfigError(
                "magento_auth=admin needs setting magento_username and the password in "
                f"environment variable {self.password_env}"
            )
        if self.auth == "oauth1":
            missing = [
                name
                for name, value in (
                    (OAUTH_CONSUMER_KEY_ENV, self.consumer_key),
                    (OAUTH_CONSUMER_SECRET_ENV, self.consumer_secret),
                    (OAUTH_TOKEN_SECRET_ENV, self.token_secret),
                )
                if not value.reveal()
            ]
            if missing:
                raise ConfigError(
                    "magento_auth=oauth1 needs the integration's credentials in environment "
                    f"variable(s) {', '.join(missing)}"
                )

    def store_code(self, locale: str) -> str | None:
        """The store view code for a locale (``de_DE`` → ``de``), None if not mapped."""
        return self.store_codes.get(locale)

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> MagentoConfig:
        """The connector's config from the ``magento_*`` settings and the secrets'
        environment variables; ``overrides`` replace fields (timeouts, backoff…)."""
        env = os.environ if environ is None else environ
        if not settings.magento_url:
            raise ConfigError("setting magento_url is empty: which Magento should we talk to?")
        values: dict[str, object] = {
            "base_url": settings.magento_url,
            "auth": settings.magento_auth,
            "token": Secret(env.get(settings.magento_token_env, "")),
            "username": settings.magento_username,
            "password": Secret(env.get(settings.magento_password_env, "")),
            "consumer_key": Secret(env.get(OAUTH_CONSUMER_KEY_ENV, "")),
            "consumer_secret": Secret(env.get(OAUTH_CONSUMER_SECRET_ENV, "")),
            "token_secret": Secret(env.get(OAUTH_TOKEN_SECRET_ENV, "")),
            "concurrency": settings.magento_concurrency,
            "missing_option": settings.magento_missing_option,
            "store_codes": store_codes(settings.magento_store_codes),
            "token_env": settings.magento_token_env,
            "password_env": settings.magento_password_env,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def secrets(self) -> list[str]:
        """Every secret's plain text (non-empty), to scrub from text Magento sends back."""
        return [
            s.reveal()
            for s in (self.token, self.password, self.consumer_secret, self.token_secret)
            if s.reveal()
        ]
