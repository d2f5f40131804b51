"""One typed, frozen settings object, read once at start-up.

Values come from a YAML config file (optional) and then ``CATALOGFLOW_*`` environment
variables, which win. A wrong key or value fails fast with a message that names it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml
from catalogflow.streams.errors import ConfigError

Store = Literal["memory://", "rocksdb://"]
Guarantee = Literal["at_least_once", "exactly_once"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LlmKind = Literal["openai", "azure", "compatible"]
MagentoAuth = Literal["integration", "admin", "oauth1"]
MissingOption = Literal["fail", "create"]

ENV_PREFIX = "CATALOGFLOW_"


class Secret(str):
    """A string that never shows itself in logs, reprs or error messages."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    """Everything a worker or a command needs to reach Kafka and name things."""

    broker: str = "127.0.0.1:9092"
    topic_prefix: str = "catalogflow."
    app_id: str = ""  # default: the prefix without its trailing dot
    partitions: int = 8
    replication_factor: int = 1
    store: Store = "rocksdb://"  # memory:// rebuilds every table from its changelog
    data_dir: Path = Path("var/worker")
    processing_guarantee: Guarantee = "at_least_once"
    # A stable name for this worker (e.g. the pod name): a restarted worker takes its
    # partitions straight back (Kafka static membership) instead of waiting out the
    # dead one's session and a second rebalance. Empty: dynamic membership.
    worker_id: str = ""
    # Seconds a worker may take to stop after SIGTERM (commit, leave the group, close
    # its clients); past it the worker exits at once with code 70, and its uncommitted
    # events are replayed by the next one. Keep it below the orchestrator's grace
    # period (Kubernetes: 30 s).
    shutdown_timeout: float = 25.0
    # Seconds the broker waits for a silent worker before moving its partitions. A
    # static member (worker_id) does not leave the group when it stops, so this is also
    # how long its partitions wait for it to come back: long enough for a pod restart,
    # short enough for a scale-down. Kafka accepts 6 to 1800 s by default.
    session_timeout: float = 45.0
    # Warm copies of each table partition on other workers. 0: a worker taking over a
    # partition rebuilds it from the changelog. faust-streaming's standby recovery can
    # leave a joining worker's stream partitions unfetched (faust_workarounds), so keep 0.
    standby_replicas: int = 0
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # The projector's own small HTTP server: /metrics and /health (0: a free port,
    # logged at start and kept as Projector.port).
    projector_host: str = "127.0.0.1"
    projector_port: int = 6071
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str = ""
    sasl_password: Secret = field(default=Secret(""))
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    action_plugins: str = ""  # comma-separated modules with a register(registry) function
    sync_plugins: str = ""  # the same, for sync targets (connectors/targets/registry.py)
    action_batch_size: int = 64  # tasks an action agent takes at once
    action_concurrency: int = 16  # of those, how many run at the same time
    # How long a batching agent lets a batch fill after its first event before it
    # handles what it has (a full batch goes at once): each hop of a slip can add this
    # much latency when products trickle in; under load batches fill while the previous
    # one is handled.
    batch_wait: float = 0.01
    # A step reports its task Running only once it has run this long (seconds; 0: at
    # its start): fast steps then cost one event, their outcome.
    running_after: float = 1.0
    # The default model endpoint; an action's settings.model can override any of it.
    llm_base_url: str = ""  # empty: OpenAI itself; else any OpenAI-compatible /v1 URL
    llm_kind: LlmKind = "openai"
    llm_model: str = "gpt-4o-mini"
    llm_api_key_env: str = "OPENAI_API_KEY"  # the variable's name; the key stays in it
    llm_rpm: int = 0  # 0: learn the limits from the x-ratelimit-* headers
    llm_tpm: int = 0
    llm_timeout: float = 60.0
    llm_price_input: float = 0.15  # per million tokens
    llm_price_output: float = 0.60
    # Batch API prices are the prices above times this (OpenAI: half); an action
    # sends its calls there with settings.model: {batch: true}.
    llm_batch_price_factor: float = 0.5
    # Magento REST. Secrets stay in the named environment variables.
    magento_url: str = ""  # e.g. https://shop.example.com (no /rest suffix)
    magento_auth: MagentoAuth = "integration"  # Bearer integration token, or admin login
    magento_token_env: str = "MAGENTO_TOKEN"  # integration access token
    magento_username: str = ""  # admin user, with magento_auth=admin
    magento_password_env: str = "MAGENTO_PASSWORD"
    magento_concurrency: int = 2  # parallel saves; Magento deadlocks under many
    magento_missing_option: MissingOption = "fail"  # or create the option label
    magento_store_codes: str = "de_DE=de"  # locale=store view code, comma-separated
    # Bulk mode for large runs: with more than this many writes pending, saves go as
    # async/bulk operations (0: never, every save is a PUT). See connectors/magento/bulk.py.
    magento_bulk_above: int = 0
    magento_bulk_size: int = 200  # operations per bulk (Magento's async list cap: 5,000)
    # Seconds a bulk may stay open (no consumer running) before its writes are errors.
    magento_bulk_timeout: float = 600.0
    magento_bulk_poll: float = 2.0  # seconds between status polls of an open bulk
    # The read model (src/catalogflow/readmodel/): an SQLAlchemy URL; empty: an SQLite
    # file under data_dir. PostgreSQL (postgresql+psycopg://...) lets API instances share it.
    read_model_url: str = ""
    # The HTTP API (`catalogflow api`) and where the CLI finds it (empty: api_host:api_port).
    api_host: str = "127.0.0.1"
    api_port: int = 8700
    api_url: str = ""
    # API tokens as `user:role:hash` entries, comma-separated; the hash comes from
    # `catalogflow api token` (the token itself is never stored). Roles: viewer, editor,
    # moderator, admin.
    api_tokens: str = ""
    api_token_env: str = "CATALOGFLOW_TOKEN"  # the variable the CLI reads its token from
    # With a key, the API signs the commands and decisions it publishes and the workers
    # refuse unsigned ones (dead letter `unsigned-command`).
    signing_key: Secret = field(default=Secret(""))

    def __post_init__(self) -> None:
        if not self.app_id:
            object.__setattr__(self, "app_id", self.topic_prefix.rstrip(".") or "catalogflow")
        _check(self)

    @property
    def plugins(self) -> list[str]:
        return [name.strip() for name in self.action_plugins.split(",") if name.strip()]

    @property
    def sync_plugin_modules(self) -> list[str]:
        return [name.strip() for name in self.sync_plugins.split(",") if name.strip()]

    @property
    def read_model(self) -> str:
        """The read model's SQLAlchemy URL: the setting, or SQLite under ``data_dir``."""
        return self.read_model_url or f"sqlite:///{self.data_dir / 'read-model.sqlite'}"

    @property
    def api_base_url(self) -> str:
        return (self.api_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def bootstrap_servers(self) -> str:
        """``host:port,host:port`` without any ``kafka://`` scheme."""
        hosts = [h.strip().removeprefix("kafka://") for h in self.broker.split(",")]
        return ",".join(h for h in hosts if h)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def confluent_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka settings for admin clients and plain producers."""
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            # Java's partitioner, as aiokafka and faust use: the same SKU lands on the
            # same partition whoever produced it, which co-partitioning relies on.
            "partitioner": "murmur2_random",
        }
        if self.security_protocol.startswith("SASL"):
            conf["sasl.mechanisms"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.reveal()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = self.ssl_certfile
        if self.ssl_keyfile:
            conf["ssl.key.location"] = self.ssl_keyfile
        return conf

    @classmethod
    def load(
        cls, config_file: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read the config file (if any), then let environment variables override it."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        path = config_file or (
            Path(env[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in env else None
        )
        if path is not None:
            raw.update(_read_config_file(path))
        for f in dataclasses.fields(cls):
            key = f"{ENV_PREFIX}{f.name.upper()}"
            if key in env:
                raw[f.name] = env[key]
        if "broker" not in raw and "KAFKA_BOOTSTRAP" in env:
            raw["broker"] = env["KAFKA_BOOTSTRAP"]
        return cls(**{name: _coerce(name, value) for name, value in raw.items()})

    def to_env(self) -> dict[str, str]:
        """``CATALOGFLOW_*`` variables that make a child process load these settings."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            env[f"{ENV_PREFIX}{f.name.upper()}"] = (
                value.reveal() if isinstance(value, Secret) else str(value)
            )
        return env

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"config file {path}: lists or mappings nested too deeply") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return cast(dict[str, Any], data)


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    if name not in _FIELD_TYPES:
        raise ConfigError(f"unknown setting {name!r}")
    kind = _FIELD_TYPES[name]
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be a whole number, got {value!r}") from None
    if kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be a number, got {value!r}") from None
    if kind == "Path":
        return Path(str(value))
    if kind == "Secret":
        return Secret(str(value))
    return str(value)


_CHOICES: dict[str, tuple[str, ...]] = {
    "store": get_args(Store),
    "processing_guarantee": get_args(Guarantee),
    "security_protocol": get_args(SecurityProtocol),
    "sasl_mechanism": get_args(SaslMechanism),
    "llm_kind": get_args(LlmKind),
    "magento_auth": get_args(MagentoAuth),
    "magento_missing_option": get_args(MissingOption),
}


def _check(s: Settings) -> None:
    for name, allowed in _CHOICES.items():
        value = getattr(s, name)
        if value not in allowed:
            raise ConfigError(f"setting {name}={value!r} is not one of {', '.join(allowed)}")
    if not s.bootstrap_servers:
        raise ConfigError("setting broker is empty; give host:port[,host:port]")
    if s.partitions < 1:
        raise ConfigError(f"setting partitions must be at least 1, got {s.partitions}")
    if s.replication_factor < 1:
        raise ConfigError(
            f"setting replication_factor must be at least 1, got {s.replication_factor}"
        )
    for name in (
        "action_batch_size",
        "action_concurrency",
        "magento_concurrency",
    ):
        if getattr(s, name) < 1:
            raise ConfigError(f"setting {name} must be at least 1, got {getattr(s, name)}")
    if s.magento_bulk_above < 0:
        raise ConfigError(
            f"setting magento_bulk_above must be at least 0 (0: no bulk writes), "
            f"got {s.magento_bulk_above}"
        )
    if not 1 <= s.magento_bulk_size <= 5000:  # Magento's cap on an async list
        raise ConfigError(
            f"setting magento_bulk_size must be 1 to 5000 (Magento's limit on an async "
            f"list), got {s.magento_bulk_size}"
        )
    if s.magento_bulk_timeout <= 0:
        raise ConfigError(
            f"setting magento_bulk_timeout must be above 0 s, got {s.magento_bulk_timeout}"
        )
    if not 0 < s.magento_bulk_poll <= s.magento_bulk_timeout:
        raise ConfigError(
            f"setting magento_bulk_poll must be above 0 and at most magento_bulk_timeout "
            f"({s.magento_bulk_timeout} s), got {s.magento_bulk_poll}"
        )
    if not 0 <= s.projector_port <= 65535:
        raise ConfigError(f"setting projector_port must be 0 to 65535, got {s.projector_port}")
    if not 0 < s.llm_batch_price_factor <= 1:
        raise ConfigError(
            f"setting llm_batch_price_factor must be above 0 and at most 1, "
            f"got {s.llm_batch_price_factor}"
        )
    if s.running_after < 0:
        raise ConfigError(f"setting running_after must be at least 0, got {s.running_after}")
    if not 0 < s.batch_wait <= 5:
        raise ConfigError(f"setting batch_wait must be above 0 and at most 5 s, got {s.batch_wait}")
    if not 6 <= s.session_timeout <= 1800:
        raise ConfigError(
            f"setting session_timeout must be 6 to 1800 s (the broker's limits), "
            f"got {s.session_timeout}"
        )
    if s.standby_replicas < 0:
        raise ConfigError(f"setting standby_replicas must be at least 0, got {s.standby_replicas}")
    if s.shutdown_timeout <= 0:
        raise ConfigError(f"setting shutdown_timeout must be above 0, got {s.shutdown_timeout}")
    if s.security_protocol.startswith("SASL") and not s.sasl_username:
        raise ConfigError(f"security_protocol {s.security_protocol} needs sasl_username")
