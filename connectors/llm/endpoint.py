"""One configured model endpoint: what it is, how to reach it with the ``openai``
client, and how to keep its key out of anything we say about it.

Both ways of calling a model share this module: the live client
(:mod:`~catalogflow.connectors.llm.provider`) and the Batch API transport
(:mod:`~catalogflow.connectors.llm.batch`), so a key is read, a client built and an
error text redacted in one way only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import httpx2
import openai
from catalogflow.connectors.llm.ratelimit import Slot
from catalogflow.streams.actions import ActionFailure

__all__ = ["ModelEndpoint", "api_key", "error_text", "openai_client", "redact"]


@dataclass(frozen=True)
class ModelEndpoint:
    """One configured model on one OpenAI-compatible endpoint."""

    name: str  # config key, e.g. "default"
    model: str  # model or Azure deployment name
    base_url: str | None = None  # None = OpenAI; e.g. "http://127.0.0.1:8088/v1"
    kind: Literal["openai", "azure", "compatible"] = "openai"
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the env var, never the key
    api_version: str | None = None  # Azure
    rpm: int | None = None  # configured limits; headers refine them at run time
    tpm: int | None = None
    timeout_s: float = 60.0
    max_attempts: int = 4  # requests per model call in all (the retry policy's attempts)
    structured: Literal["json_schema", "json_object"] = "json_schema"
    logprobs: bool = True
    price_input_per_million: float = 0.0
    price_output_per_million: float = 0.0
    max_concurrency: int = 32
    # The Batch API (connectors/llm/batch.py), for one-time runs: answers within 24 h
    # at a lower price. An action turns it on with settings.model: {batch: true}.
    batch: bool = False
    batch_price_factor: float = 0.5  # batch prices are the prices above times this
    batch_size: int = 1000  # requests per batch file at most (OpenAI takes 50,000)
    batch_linger_s: float = 5.0  # how long a request waits for its file to fill
    batch_poll_s: float = 30.0  # between two status checks of a batch in flight
    batch_resubmits: int = 3  # new batches for what an expired or cancelled one left
    batch_max_in_flight: int = 8  # batches of one client at once


def api_key(endpoint: ModelEndpoint, environ: Mapping[str, str] | None = None) -> str | None:
    """The key from the variable the endpoint names (None: unset). Self-hosted servers
    ignore it, but the openai client insists on one, so they get a placeholder."""
    env = os.environ if environ is None else environ
    key = env.get(endpoint.api_key_env) or None
    if key is None and endpoint.kind == "compatible":
        key = "unused"
    return key


def openai_client(endpoint: ModelEndpoint, key: str | None) -> openai.AsyncOpenAI:
    """The openai client of ``endpoint``, without the SDK's own retries (ours decide).
    A missing key or Azure setting is a configuration failure naming what to set."""
    if key is None:
        raise ActionFailure(
            "INVALID_PROMPT",
            f"endpoint {endpoint.name!r} configuration: environment variable "
            f"{endpoint.api_key_env} (the API key) is not set",
        )
    if endpoint.kind == "azure":
        if not endpoint.base_url or not endpoint.api_version:
            raise ActionFailure(
                "INVALID_PROMPT",
                f"endpoint {endpoint.name!r} configuration: Azure needs base_url "
                "(the resource endpoint) and api_version",
            )
        return openai.AsyncAzureOpenAI(
            azure_endpoint=endpoint.base_url,
            api_version=endpoint.api_version,
            api_key=key,
            max_retries=0,
            timeout=endpoint.timeout_s,
            http_client=_http_client(),
        )
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=key,
        max_retries=0,
        timeout=endpoint.timeout_s,
        http_client=_http_client(),
    )


_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{4,}")


def redact(text: str, key: str | None) -> str:
    """``text`` without the key and without anything shaped like one, cut to 300
    characters: a provider's error text may quote what it was sent."""
    if key and key != "unused":
        text = text.replace(key, "***")
    return _KEY_LIKE.sub("***", text)[:300]


def error_text(exc: openai.APIStatusError) -> str:
    """The message of an HTTP error answer (not yet redacted)."""
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        return json.dumps(body)[:300]
    return str(exc.message)


#: The limiter slot of the request this task is sending, for :func:`_on_send`.
SENDING: ContextVar[Slot | None] = ContextVar("catalogflow_llm_sending", default=None)


async def _on_send(request: httpx2.Request) -> None:
    """HTTP client hook, just before a request goes out: tell the limiter when."""
    slot = SENDING.get()
    if slot is not None:
        slot.sent()


def _http_client() -> httpx2.AsyncClient:
    """The openai client's default HTTP client, telling the limiter when each request
    actually leaves (see :meth:`Slot.sent`)."""
    return openai.DefaultAsyncHttpxClient(event_hooks={"request": [_on_send]})
