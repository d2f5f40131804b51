"""The model client: one structured-output chat completion, with our own retries under
the shared rate limiter, validated output, token logprobs, tokens and cost.

Retries follow the endpoint's :class:`~catalogflow.connectors.retry.RetryPolicy`
(``max_attempts`` in all, whatever failed): a 429 pauses the shared limiter for as long
as the provider asks (``retry-after-ms``/``retry-after``) or the backoff says, other
transient errors back off on the clock, and an invalid sample is asked again at once.
This policy is the only place that decides how often a task's model call is tried: the
step runner does not call again.

Every failure leaves as :class:`ActionFailure` (``openai``/``httpx`` exceptions are
wrapped here, at the boundary):

* ``PROVIDER_LIMITATION`` (retryable) — 429s, 5xx, timeouts and connection errors that
  outlasted ``max_attempts``, or a 429 asking to wait longer than the policy waits
  inside one call; the sick-system case, worth trying again later (not retryable when
  the provider answers ``x-should-retry: false``);
* ``INVALID_OUTPUT`` (not retryable) — the model's answer was not JSON, broke the
  schema, or was a refusal, on every one of ``max_attempts`` samples; or it was cut
  off at its completion budget (``finish_reason: length``) twice, the second time
  with the larger ``retry_output_tokens`` — never a partial value;
* ``INVALID_PROMPT`` (not retryable) — our request or configuration is wrong: a schema
  that structured outputs cannot take, a 400 other than the known fallbacks, 401, 403,
  404, a missing API key.

Tokens are reserved as OpenAI counts them at admission: the prompt (estimated by
:class:`~catalogflow.connectors.llm.tokens.PromptTokens`, calibrated on
``usage.prompt_tokens``) plus the whole completion budget. Once the answer is back the
reservation is corrected to the real prompt count plus the budget — what the server
counted; the unused part of the budget is not given back, as OpenAI documents no such
refund.

A worker makes this call for every step, so its own CPU is kept small: an output
schema is checked and its validator compiled once per schema (not per call), and the
request goes out through the openai client's plain ``post`` and the answer's JSON body
is read as data, skipping the client's type-driven request transform and pydantic
response models (together most of a call's CPU); its headers still feed the limiter.

The API key is read from the environment variable the endpoint names and never appears
in configuration, events, logs or exception text.

:class:`BatchClient` is the same call through the Batch API (an endpoint with
``batch``, for one-time runs): the same request body, the same reading of the answer,
each answer billed at the batch price (``batch_price_factor`` times the prices) in the
same metrics; :mod:`~catalogflow.connectors.llm.batch` carries the requests. It sends
each request once (a cut-off answer once more with the larger budget): an error line is
a PROVIDER_LIMITATION failure (retryable) or, for a request the provider calls wrong,
INVALID_PROMPT; an unusable answer is INVALID_OUTPUT at once, since asking again would
cost another batch.

Metrics (``streams/metrics/model.py``), by the endpoint's model: every HTTP request's
latency and outcome (``ok``, ``rate_limited``, ``invalid_output``, ... — one count per
request, retries each counted), and the tokens and cost of every answered one (a
rejected sample was billed too, so it counts).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import jsonschema
import openai
from catalogflow.connectors.llm.batch import BatchQueue, LineAnswer
from catalogflow.connectors.llm.endpoint import (
    SENDING,
    ModelEndpoint,
    api_key,
    error_text,
    openai_client,
    redact,
)
from catalogflow.connectors.llm.ratelimit import RateLimiter
from catalogflow.connectors.llm.tokens import PromptTokens
from catalogflow.connectors.retry import Outcome, RetryPolicy
from catalogflow.streams.actions import ActionFailure
from catalogflow.streams.clock import Clock, FakeClock, SystemClock
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.model import (
    MODEL_COST,
    MODEL_REQUEST_SECONDS,
    MODEL_REQUESTS,
    MODEL_TOKENS,
)

# The openai client's HTTP layer logs every request at INFO: a line per model call
# costs a busy worker CPU and buries what its log is for. Its warnings still show.
logging.getLogger("httpx2").setLevel(logging.WARNING)

__all__ = [
    "BatchClient",
    "ClientPool",
    "ClientStats",
    "Completion",
    "LLMClient",
    "ModelEndpoint",
    "check_strict_schema",
    "estimate_tokens",
]

#: How a request that got no usable answer (timeout, connection error) failed.
_NO_ANSWER = Outcome()


#: How one HTTP request to the model ended, the ``outcome`` label of
#: ``catalogflow_model_requests_total`` (a closed set: never the provider's text).
RequestOutcome = Literal[
    "ok",  # a usable answer
    "invalid_output",  # answered, but not JSON, off the schema, a refusal or no content
    "cut_off",  # answered, cut off at its completion budget
    "rate_limited",  # 429
    "server_error",  # 5xx (and other statuses the retry policy retries)
    "client_error",  # another 4xx: our request, configuration or credentials
    "timeout",
    "connection_error",
    "provider_error",  # an unreadable or unexpected answer
]


@dataclass(frozen=True)
class Completion:
    data: dict[str, Any]  # parsed and validated against the schema
    content: str  # the raw JSON text
    token_logprobs: list[tuple[str, float]] | None  # None: the endpoint gave none
    input_tokens: int  # summed over every answered attempt (all of them were billed)
    output_tokens: int
    cost: float
    model: str  # the model that answered, as the endpoint reports it
    attempts: int
    latency_s: float  # from the call to the answer, waits and retries included
    budget: int = 0  # max_completion_tokens of the request that was answered
    answer_tokens: int = 0  # completion tokens of that answer alone (what it needed)


@dataclass(frozen=True)
class ClientStats:
    requests: int  # HTTP requests sent
    retries: int  # requests beyond the first of each call
    rate_limited: int  # 429 answers
    input_tokens: int
    output_tokens: int
    cost: float


def estimate_tokens(text: str) -> int:
    """A rough token count (characters / 4, rounded up), for limiter reservations and
    pre-run estimates; the answer's ``usage`` replaces it afterwards."""
    return math.ceil(len(text) / 4)


def grammar_schema(schema: Any) -> Any:
    """``schema`` for a server that compiles JSON schemas into a grammar (llama.cpp):
    a node with an ``enum`` loses its ``type``, which llama.cpp's converter would
    otherwise follow instead of the enum (it wrote "salmon" for an enum of "Salmon")."""
    if isinstance(schema, Mapping):
        node = {k: grammar_schema(v) for k, v in schema.items()}
        if "enum" in node:
            node.pop("type", None)
        return node
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    return schema


def check_strict_schema(schema: Mapping[str, Any]) -> list[str]:
    """Why ``schema`` cannot be used with strict structured outputs (empty: it can).

    Checked: a valid Draft 2020-12 schema whose top level is an object, and every object
    (at any depth) lists all its properties in ``required`` and sets
    ``additionalProperties: false``.
    """
    problems: list[str] = []
    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        return [f"not a valid JSON schema: {exc.message}"]
    if schema.get("type") != "object":
        problems.append("$: the top level must be an object")
    _check_strict(schema, "$", problems)
    return problems


def _check_strict(node: Any, where: str, problems: list[str]) -> None:
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_strict(item, f"{where}[{index}]", problems)
        return
    if not isinstance(node, Mapping):
        return
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if is_object or "properties" in node:
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        missing = sorted(set(properties) - set(node.get("required", [])))
        if missing:
            problems.append(f"{where}: every property must be required (missing {missing})")
        for key, sub in properties.items():
            _check_strict(sub, f"{where}.{key}", problems)
    for keyword in ("items", "anyOf", "allOf", "oneOf", "prefixItems", "not"):
        if keyword in node:
            _check_strict(node[keyword], f"{where}/{keyword}", problems)
    for keyword in ("$defs", "definitions"):
        for key, sub in node.get(keyword, {}).items():
            _check_strict(sub, f"{where}/{keyword}/{key}", problems)


@dataclass(frozen=True)
class _CheckedSchema:
    """An output schema checked for structured outputs, with its validator compiled
    (both cost far more than a call's own work, so they are done once per schema)."""

    schema: dict[str, Any]  # a private copy in the caller's key order (the answer's order)
    sorted_text: str  # for the json_object fallback prompt
    problems: tuple[str, ...]  # why structured outputs cannot take it (empty: they can)
    validator: jsonschema.Draft202012Validator


#: Output schemas kept checked: one per action, settings and locale in use.
_CHECKED_SCHEMAS = 256


@functools.lru_cache(maxsize=_CHECKED_SCHEMAS)
def _checked_schema(text: str) -> _CheckedSchema:
    """The schema whose JSON is ``text``, checked and compiled once."""
    schema = json.loads(text)
    return _CheckedSchema(
        schema,
        json.dumps(schema, ensure_ascii=False, sort_keys=True),
        tuple(check_strict_schema(schema)),
        jsonschema.Draft202012Validator(schema),
    )


def _usable_schema(schema_name: str, schema: dict[str, Any]) -> _CheckedSchema:
    """``schema`` checked for structured outputs; one it cannot take is our mistake."""
    checked = _checked_schema(json.dumps(schema, ensure_ascii=False))
    if checked.problems:
        raise ActionFailure(
            "INVALID_PROMPT",
            f"schema {schema_name!r} cannot be used with structured outputs: "
            + "; ".join(checked.problems),
        )
    return checked


def chat_request(
    endpoint: ModelEndpoint,
    system: str,
    user: str,
    schema_name: str,
    schema: _CheckedSchema,
    max_output_tokens: int,
    *,
    json_schema: bool,
    logprobs: bool,
) -> dict[str, Any]:
    """The body of one chat completion request, live or in a batch file:
    ``json_schema`` and ``logprobs`` say whether to ask for them (a live client drops
    them for good when its endpoint turns out not to support them)."""
    if json_schema:
        response_format: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "strict": True, "schema": schema.schema},
        }
    else:
        response_format = {"type": "json_object"}
        if endpoint.kind == "compatible":
            # llama.cpp (and vLLM) turn a schema given with JSON mode into a grammar.
            response_format["schema"] = grammar_schema(schema.schema)
        system = (
            f"{system}\n\nAnswer with one JSON object that conforms to this JSON schema "
            "(every property is required, no other properties are allowed):\n" + schema.sorted_text
        )
    request: dict[str, Any] = {
        "model": endpoint.model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        "response_format": response_format,
        "max_completion_tokens": max_output_tokens,
    }
    if endpoint.kind == "compatible":
        request["max_tokens"] = max_output_tokens  # servers that predate the new name
    if logprobs:
        request["logprobs"] = True
        if endpoint.kind == "compatible":
            request["top_logprobs"] = 0  # llama.cpp returns none without it
    return request


def _price(
    endpoint: ModelEndpoint, input_tokens: int, output_tokens: int, *, batch: bool = False
) -> float:
    """What the tokens cost at the endpoint's prices, or its batch prices."""
    cost = (
        input_tokens * endpoint.price_input_per_million
        + output_tokens * endpoint.price_output_per_million
    ) / 1_000_000
    return cost * endpoint.batch_price_factor if batch else cost


@dataclass
class _Books:
    """A client's running totals of what its answered requests were billed (every
    answered request was billed, a rejected sample too); each bill also goes to the
    metrics."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def bill(self, input_tokens: int, output_tokens: int, cost: float) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost += cost
        sink = metrics()
        sink.inc(MODEL_TOKENS, input_tokens, model=self.model, kind="prompt")
        sink.inc(MODEL_TOKENS, output_tokens, model=self.model, kind="completion")
        sink.inc(MODEL_COST, cost, model=self.model)


def _status_failure(
    endpoint: ModelEndpoint,
    key: str | None,
    policy: RetryPolicy,
    status: int,
    headers: Mapping[str, str],
    text: str,
) -> _Retry | ActionFailure:
    """An HTTP error answer as a provider failure for the retry policy (429, 5xx and
    what else the policy retries) or as a mistake of ours (the other 4xx)."""
    name = endpoint.name
    outcome = Outcome(status, headers)
    if status == 429:
        return _Retry("provider", "rate limited (429)", outcome=outcome)
    if status >= 500 or policy.retryable(outcome):
        return _Retry("provider", f"server error ({status})", outcome=outcome)
    if status in (401, 403):
        # The body may quote (part of) the key: say nothing from it.
        return ActionFailure(
            "INVALID_PROMPT",
            f"endpoint {name!r} configuration: the provider rejected the credentials "
            f"({status}); check the key in ${endpoint.api_key_env}",
        )
    if status == 404:
        return ActionFailure(
            "INVALID_PROMPT",
            f"endpoint {name!r} configuration: model or deployment "
            f"{endpoint.model!r} not found (404): {redact(text, key)}",
        )
    return ActionFailure(
        "INVALID_PROMPT", f"endpoint {name!r} rejected the request ({status}): {redact(text, key)}"
    )


class _Retry(Exception):
    """One attempt failed in a way a later attempt may not (internal): the provider
    failed (``outcome`` says how, for the retry policy) or the sample was unusable."""

    def __init__(
        self,
        kind: Literal["provider", "output", "cut"],
        message: str,
        *,
        outcome: Outcome = _NO_ANSWER,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.outcome = outcome
        self.input_tokens = input_tokens  # billed for the failed attempt
        self.output_tokens = output_tokens


@dataclass(frozen=True)
class _Answer:
    data: dict[str, Any]
    content: str
    token_logprobs: list[tuple[str, float]] | None
    model: str
    input_tokens: int
    output_tokens: int
    budget: int


class LLMClient:
    """Calls one model on one endpoint. Share one per (kind, base_url, model) in a
    process — :class:`ClientPool` does — so that all calls share its rate limiter."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._policy = RetryPolicy(max_attempts=endpoint.max_attempts)
        self._clock: Clock = clock or SystemClock()
        # Backoff jitter is reproducible under a fake clock, as the tests need.
        self._rng = rng or random.Random(0 if isinstance(self._clock, FakeClock) else None)
        self._limiter = RateLimiter(
            endpoint.rpm, endpoint.tpm, endpoint.max_concurrency, self._clock, model=endpoint.model
        )
        self._key = api_key(endpoint, environ)
        self._client: openai.AsyncOpenAI | None = None
        # What this endpoint turned out not to support (remembered for later calls).
        self._use_json_schema = endpoint.structured == "json_schema"
        self._use_logprobs = endpoint.logprobs
        self._prompt_tokens = PromptTokens()
        self._requests = 0
        self._retries = 0
        self._rate_limited = 0
        self._books = _Books(endpoint.model)

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @property
    def stats(self) -> ClientStats:
        return ClientStats(
            requests=self._requests,
            retries=self._retries,
            rate_limited=self._rate_limited,
            input_tokens=self._books.input_tokens,
            output_tokens=self._books.output_tokens,
            cost=self._books.cost,
        )

    @property
    def supports_json_schema(self) -> bool:
        return self._use_json_schema

    @property
    def supports_logprobs(self) -> bool:
        return self._use_logprobs

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _openai(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai_client(self.endpoint, self._key)
        return self._client

    def _cost_of(self, input_tokens: int, output_tokens: int) -> float:
        return _price(self.endpoint, input_tokens, output_tokens)

    async def complete(
        self,
        *,
        system: str,
        user: str,
        schema_name: str,
        schema: dict[str, Any],
        max_output_tokens: int = 1024,
        retry_output_tokens: int | None = None,
    ) -> Completion:
        """One validated JSON answer, retrying transient errors and invalid samples as
        the retry policy says, ``endpoint.max_attempts`` requests in all (see the module
        docstring for the failures).

        ``max_output_tokens`` is the completion budget; an answer cut off at it is asked
        again once with ``retry_output_tokens`` (default twice the budget)."""
        checked = _usable_schema(schema_name, schema)
        started = self._clock.monotonic()
        attempts = 0
        input_tokens = output_tokens = 0
        budget = max_output_tokens
        larger = retry_output_tokens or 2 * max_output_tokens
        while True:
            attempts += 1
            try:
                answer = await self._attempt(system, user, schema_name, checked, budget)
            except _Retry as retry:
                input_tokens += retry.input_tokens
                output_tokens += retry.output_tokens
                if retry.kind == "cut":
                    if budget >= larger:
                        raise _cut_off(budget) from None
                    budget = larger
                await self._wait_or_give_up(retry, attempts)
                self._retries += 1
                continue
            input_tokens += answer.input_tokens
            output_tokens += answer.output_tokens
            return Completion(
                data=answer.data,
                content=answer.content,
                token_logprobs=answer.token_logprobs,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost=self._cost_of(input_tokens, output_tokens),
                model=answer.model,
                attempts=attempts,
                latency_s=self._clock.monotonic() - started,
                budget=answer.budget,
                answer_tokens=answer.output_tokens,
            )

    async def _wait_or_give_up(self, retry: _Retry, attempts: int) -> None:
        """Before the next attempt: wait as the retry policy says, or raise the call's
        failure when it says not to try again."""
        policy = self._policy
        if retry.kind != "provider":  # an unusable sample: ask again at once
            if attempts >= policy.max_attempts:
                raise ActionFailure(
                    "INVALID_OUTPUT",
                    f"{retry.message} (after {attempts} attempts)",
                    retryable=False,
                )
            return
        decision = policy.decide(attempts, retry.outcome, self._rng, self._clock.now())
        rate_limited = retry.outcome.status == 429
        if rate_limited:  # every call on this model waits, not this one alone
            self._limiter.penalize(min(decision.wait_s, policy.max_retry_after_s))
        if decision.why == "wait_too_long":
            raise ActionFailure(
                "PROVIDER_LIMITATION",
                f"{retry.message}; the provider asks to wait {decision.wait_s:.0f} s",
                retryable=True,
            )
        if decision.why == "not_retryable":
            raise ActionFailure(
                "PROVIDER_LIMITATION",
                f"{retry.message}; the provider says another attempt cannot succeed",
                retryable=False,
            )
        if decision.why == "attempts_used":
            raise ActionFailure(
                "PROVIDER_LIMITATION",
                f"{retry.message} after {attempts} attempts",
                retryable=True,
            )
        if not rate_limited:  # after a 429 the limiter holds the next request back
            await self._clock.sleep(decision.wait_s)

    def _request(
        self,
        system: str,
        user: str,
        schema_name: str,
        schema: _CheckedSchema,
        max_output_tokens: int,
    ) -> dict[str, Any]:
        return chat_request(
            self.endpoint,
            system,
            user,
            schema_name,
            schema,
            max_output_tokens,
            json_schema=self._use_json_schema,
            logprobs=self._use_logprobs,
        )

    async def _attempt(
        self,
        system: str,
        user: str,
        schema_name: str,
        schema: _CheckedSchema,
        max_output_tokens: int,
    ) -> _Answer:
        client = self._openai()
        while True:  # repeats only to drop an unsupported feature (at most twice)
            request = self._request(system, user, schema_name, schema, max_output_tokens)
            texts = [m["content"] for m in request["messages"]]
            prompt_estimate = self._prompt_tokens.estimate(texts)
            async with self._limiter.slot(prompt_estimate + max_output_tokens) as slot:
                self._requests += 1
                sending = SENDING.set(slot)
                sent = self._clock.monotonic()
                try:
                    raw = await client.post(
                        "/chat/completions", body=request, cast_to=httpx2.Response
                    )
                except openai.APIStatusError as exc:
                    self._count(sent, self._status_outcome(exc.status_code))
                    self._limiter.observe(exc.response.headers)
                    slot.settle(0)  # a refused request uses no tokens
                    if self._drop_unsupported_feature(exc):
                        continue
                    raise self._status_failure(exc) from None
                except openai.APITimeoutError:
                    self._count(sent, "timeout")
                    # Tokens may have been spent server-side: the reservation stands.
                    raise _Retry("provider", "timed out") from None
                except openai.APIConnectionError as exc:
                    self._count(sent, "connection_error")
                    slot.settle(0)
                    raise _Retry("provider", f"connection error ({_cause(exc)})") from None
                except (openai.OpenAIError, httpx2.HTTPError) as exc:
                    self._count(sent, "provider_error")
                    raise _Retry("provider", f"provider error ({type(exc).__name__})") from None
                finally:
                    SENDING.reset(sending)
                slot.answered(_server_seconds(raw.headers))
                self._limiter.observe(raw.headers)
                try:
                    body = _body_of(raw)
                except _Retry:
                    self._count(sent, "provider_error")
                    raise
                usage = _usage_of(body)
                if usage is not None:
                    self._prompt_tokens.observe(texts, usage[0])
                input_tokens, output_tokens = usage or (prompt_estimate, 0)
                # What the server counted at admission: the prompt and the whole budget.
                slot.settle(input_tokens + max_output_tokens)
            self._books.bill(
                input_tokens, output_tokens, self._cost_of(input_tokens, output_tokens)
            )
            try:
                data, content, token_logprobs = _read(body, schema.validator)
            except _Retry as retry:
                self._count(sent, _ANSWER_OUTCOME[retry.kind])
                # The rejected sample was billed all the same.
                raise _Retry(
                    retry.kind,
                    retry.message,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                ) from None
            self._count(sent, "ok")
            model = body.get("model")
            return _Answer(
                data,
                content,
                token_logprobs,
                model if isinstance(model, str) and model else self.endpoint.model,
                input_tokens,
                output_tokens,
                max_output_tokens,
            )

    def _count(self, sent: float, outcome: RequestOutcome) -> None:
        """One HTTP request ended: its latency (from the grant, retries apart) and how."""
        sink, model = metrics(), self.endpoint.model
        sink.observe(MODEL_REQUEST_SECONDS, self._clock.monotonic() - sent, model=model)
        sink.inc(MODEL_REQUESTS, model=model, outcome=outcome)

    def _status_outcome(self, status: int) -> RequestOutcome:
        return _status_outcome(self._policy, status)

    def _drop_unsupported_feature(self, exc: openai.APIStatusError) -> bool:
        """After a 400 about logprobs or json_schema: stop sending it (for good, on this
        client) and say so, so the request is sent again without it. 422 and 500 count
        too when they name the feature: llama.cpp's server answers ``json_schema`` with
        a 500 whose message is its request validation error."""
        if exc.status_code not in (400, 422, 500):
            return False
        text = error_text(exc).lower()
        if self._use_logprobs and "logprob" in text:
            self._use_logprobs = False
            return True
        if self._use_json_schema and any(
            word in text for word in ("json_schema", "response_format", "structured output")
        ):
            self._use_json_schema = False
            return True
        return False

    def _status_failure(self, exc: openai.APIStatusError) -> Exception:
        if exc.status_code == 429:
            self._rate_limited += 1
        return _status_failure(
            self.endpoint,
            self._key,
            self._policy,
            exc.status_code,
            exc.response.headers,
            error_text(exc),
        )


class BatchClient:
    """Calls one model through the Batch API (see the module docstring): what
    :class:`ClientPool` gives for an endpoint with ``batch``. The requests of one
    action (its schema's name and shape) share batch files."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._clock: Clock = clock or SystemClock()
        rng = rng or random.Random(0 if isinstance(self._clock, FakeClock) else None)
        self._queue = BatchQueue(endpoint, clock=self._clock, rng=rng, environ=environ)
        self._policy = RetryPolicy(max_attempts=endpoint.max_attempts)
        self._key = api_key(endpoint, environ)
        self._retries = 0  # cut-off answers asked again with a larger budget
        self._rate_limited = 0
        self._books = _Books(endpoint.model)

    @property
    def queue(self) -> BatchQueue:
        return self._queue

    @property
    def stats(self) -> ClientStats:
        """As :attr:`LLMClient.stats`, a batch line counting as a request."""
        return ClientStats(
            requests=self._queue.lines,
            retries=self._queue.resubmitted + self._retries,
            rate_limited=self._rate_limited,
            input_tokens=self._books.input_tokens,
            output_tokens=self._books.output_tokens,
            cost=self._books.cost,
        )

    async def aclose(self) -> None:
        await self._queue.aclose()

    async def complete(
        self,
        *,
        system: str,
        user: str,
        schema_name: str,
        schema: dict[str, Any],
        max_output_tokens: int = 1024,
        retry_output_tokens: int | None = None,
    ) -> Completion:
        """One validated JSON answer through a batch; as :meth:`LLMClient.complete`
        but each request is sent once (the module docstring lists the failures)."""
        checked = _usable_schema(schema_name, schema)
        group: Hashable = (schema_name, checked.sorted_text)
        started = self._clock.monotonic()
        budget = max_output_tokens
        larger = retry_output_tokens or 2 * max_output_tokens
        input_tokens = output_tokens = attempts = 0
        while True:
            attempts += 1
            request = chat_request(
                self.endpoint,
                system,
                user,
                schema_name,
                checked,
                budget,
                json_schema=self.endpoint.structured == "json_schema",
                logprobs=self.endpoint.logprobs,
            )
            line = await self._queue.ask(group, request)
            try:
                answer = self._answer(line, request, checked, budget)
            except _Retry as retry:
                input_tokens += retry.input_tokens
                output_tokens += retry.output_tokens
                if retry.kind == "cut" and budget < larger:
                    budget = larger
                    self._retries += 1
                    continue
                raise self._unusable(retry, budget) from None
            input_tokens += answer.input_tokens
            output_tokens += answer.output_tokens
            return Completion(
                data=answer.data,
                content=answer.content,
                token_logprobs=answer.token_logprobs,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost=_price(self.endpoint, input_tokens, output_tokens, batch=True),
                model=answer.model,
                attempts=attempts,
                latency_s=self._clock.monotonic() - started,
                budget=answer.budget,
                answer_tokens=answer.output_tokens,
            )

    def _answer(
        self, line: LineAnswer, request: Mapping[str, Any], schema: _CheckedSchema, budget: int
    ) -> _Answer:
        """One batch line read as a live answer is (billed first: it was billed)."""
        if line.status != 200:
            self._count(_status_outcome(self._policy, line.status))
            raise self._line_failure(line)
        body = line.body
        if not isinstance(body.get("choices"), list):
            self._count("provider_error")
            raise _Retry("provider", "unexpected response type")
        usage = _usage_of(body)
        texts = "".join(str(m["content"]) for m in request["messages"])
        input_tokens, output_tokens = usage or (estimate_tokens(texts), 0)
        self._books.bill(
            input_tokens,
            output_tokens,
            _price(self.endpoint, input_tokens, output_tokens, batch=True),
        )
        try:
            data, content, token_logprobs = _read(body, schema.validator)
        except _Retry as retry:
            self._count(_ANSWER_OUTCOME[retry.kind])
            raise _Retry(
                retry.kind,
                retry.message,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            ) from None
        self._count("ok")
        model = body.get("model")
        return _Answer(
            data,
            content,
            token_logprobs,
            model if isinstance(model, str) and model else self.endpoint.model,
            input_tokens,
            output_tokens,
            budget,
        )

    def _count(self, outcome: RequestOutcome) -> None:
        """One batch line's outcome (no latency: a line waits for its whole batch)."""
        metrics().inc(MODEL_REQUESTS, model=self.endpoint.model, outcome=outcome)

    def _line_failure(self, line: LineAnswer) -> ActionFailure:
        """An error line: the provider's or the request's, sorted as live answers are."""
        error = line.body.get("error")
        error = error if isinstance(error, Mapping) else {}
        text = str(error.get("message") or error.get("code") or "no message")
        if line.status is None:
            return ActionFailure(
                "PROVIDER_LIMITATION",
                f"the Batch API could not run the request: {redact(text, self._key)}",
                retryable=True,
            )
        if line.status == 429:
            self._rate_limited += 1
        found = _status_failure(self.endpoint, self._key, self._policy, line.status, {}, text)
        if isinstance(found, _Retry):
            return ActionFailure(
                "PROVIDER_LIMITATION", f"{found.message} for a batch request", retryable=True
            )
        return found

    @staticmethod
    def _unusable(retry: _Retry, budget: int) -> ActionFailure:
        if retry.kind == "cut":
            return _cut_off(budget)
        if retry.kind == "provider":
            return ActionFailure(
                "PROVIDER_LIMITATION", f"{retry.message} in a batch answer", retryable=True
            )
        return ActionFailure("INVALID_OUTPUT", f"{retry.message} (a batch answer)")


def _cut_off(budget: int) -> ActionFailure:
    return ActionFailure(
        "INVALID_OUTPUT",
        f"the answer was cut off at its completion budget of {budget} "
        f"tokens (finish_reason length), also after a retry with a larger "
        "budget; raise the action's settings.max_completion_tokens",
        retryable=False,
    )


def _status_outcome(policy: RetryPolicy, status: int | None) -> RequestOutcome:
    """An HTTP error answer's outcome, sorted as :func:`_status_failure` sorts it
    (None: a batch line the provider could not run)."""
    if status is None:
        return "provider_error"
    if status == 429:
        return "rate_limited"
    if status >= 500 or status in policy.retry_statuses:
        return "server_error"
    return "client_error"


#: The outcome of an answered request whose sample was unusable, by the retry's kind.
_ANSWER_OUTCOME: dict[str, RequestOutcome] = {
    "output": "invalid_output",
    "cut": "cut_off",
    "provider": "provider_error",
}


def _body_of(response: httpx2.Response) -> dict[str, Any]:
    """The JSON body of a chat completion, read as plain data: building the openai
    client's pydantic models of it cost more CPU than the rest of the call, and the
    answer's ``content`` is JSON text to parse anyway."""
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise _Retry("provider", f"unreadable response ({type(exc).__name__})") from None
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise _Retry("provider", "unexpected response type")
    return body


def _usage_of(body: Mapping[str, Any]) -> tuple[int, int] | None:
    """``usage.prompt_tokens`` and ``usage.completion_tokens``, when the body has both."""
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def _read(
    body: Mapping[str, Any], validator: jsonschema.Draft202012Validator
) -> tuple[dict[str, Any], str, list[tuple[str, float]] | None]:
    """The validated data, the raw text and the token logprobs of an answer."""
    if not body["choices"]:
        raise _Retry("output", "the answer has no choices")
    choice = body["choices"][0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise _Retry("provider", "unexpected response type")
    refusal = message.get("refusal")
    if refusal:
        raise _Retry("output", f"the model refused: {str(refusal)[:80]!r}")
    content = message.get("content")
    if not isinstance(content, str):
        raise _Retry("output", "the answer has no content")
    if choice.get("finish_reason") == "length":
        raise _Retry("cut", "the answer was cut off at its completion budget")
    try:
        data = json.loads(content)
    except ValueError:
        raise _Retry("output", f"model returned text that is not JSON: {content[:80]!r}") from None
    if not isinstance(data, dict):
        raise _Retry("output", "model returned JSON that is not an object")
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise _Retry(
            "output",
            f"output breaks the schema at {error.json_path} "
            f"({error.validator}): {error.message[:160]}",
        )
    return data, content, _token_logprobs(choice.get("logprobs"))


def _token_logprobs(logprobs: Any) -> list[tuple[str, float]] | None:
    """``choice.logprobs.content`` as (token, logprob) pairs; None when there are none."""
    tokens = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(tokens, list):
        return None
    try:
        return [(str(t["token"]), float(t["logprob"])) for t in tokens]
    except (KeyError, TypeError, ValueError):
        raise _Retry("provider", "unexpected response type") from None


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause is not None else type(exc).__name__


class ClientPool:
    """One :class:`LLMClient` (so one rate limiter) per (kind, base_url, model) in a
    worker process, and one :class:`BatchClient` per the same for batch endpoints. The
    first endpoint seen for a key configures its client."""

    def __init__(
        self, *, clock: Clock | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self._clock = clock
        self._environ = environ
        self._clients: dict[tuple[str, str | None, str, bool], LLMClient | BatchClient] = {}

    def get(self, endpoint: ModelEndpoint) -> LLMClient | BatchClient:
        key = (endpoint.kind, endpoint.base_url, endpoint.model, endpoint.batch)
        client = self._clients.get(key)
        if client is None:
            made = BatchClient if endpoint.batch else LLMClient
            client = made(endpoint, clock=self._clock, environ=self._environ)
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _server_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the server says it worked on the answer (``openai-processing-ms``)."""
    value = headers.get("openai-processing-ms")
    try:
        return float(value) / 1000 if value is not None else None
    except ValueError:
        return None
