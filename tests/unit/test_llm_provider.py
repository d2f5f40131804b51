"""The model client against the LLM simulator: real HTTP on loopback, the real openai
client, our retries and limiter on a fake clock (so backoff costs no real time)."""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from catalogflow.connectors.llm import provider
from catalogflow.connectors.llm.confidence import value_confidence
from catalogflow.connectors.llm.provider import (
    ClientPool,
    LLMClient,
    ModelEndpoint,
    check_strict_schema,
    estimate_tokens,
)
from catalogflow.streams.actions import ActionFailure
from catalogflow.streams.clock import FakeClock, SystemClock
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread

SECRET = "sk-catalogflow-TEST-KEY-0123456789abcdef"
ENVIRON = {"CATALOGFLOW_TEST_KEY": SECRET}

SYSTEM = "You extract product attributes. Answer in JSON."
USER = (
    "<product>\nsku: PF-000001\nname: Whiskerly Dry Cat Food 2 kg\n"
    "description: Whiskerly recipe with real salmon for adult cats.\n</product>"
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": {"type": "string", "enum": ["Chicken", "Salmon", "Tuna"]},
        "reasoning": {"type": "string"},
    },
    "required": ["flavor", "reasoning"],
    "additionalProperties": False,
}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(timeout_sleep_s=5.0)) as simulator:
        yield simulator


def endpoint(sim: SimulatorThread, **changes: Any) -> ModelEndpoint:
    settings: dict[str, Any] = {
        "name": "test",
        "model": "gpt-4o-mini",
        "base_url": f"{sim.url}/v1",
        "kind": "openai",  # a real key is required and sent, so its secrecy is tested
        "api_key_env": "CATALOGFLOW_TEST_KEY",
        "timeout_s": 5.0,
        "price_input_per_million": 0.15,
        "price_output_per_million": 0.60,
    }
    settings.update(changes)
    return ModelEndpoint(**settings)


def client_for(sim: SimulatorThread, clock: FakeClock | None = None, **changes: Any) -> LLMClient:
    return LLMClient(endpoint(sim, **changes), clock=clock or FakeClock(), environ=ENVIRON)


async def ask(client: LLMClient, schema: dict[str, Any] | None = None) -> Any:
    try:
        return await client.complete(
            system=SYSTEM, user=USER, schema_name="attributes", schema=schema or SCHEMA
        )
    finally:
        await client.aclose()


async def test_success_with_logprobs(sim: SimulatorThread) -> None:
    client = client_for(sim)
    completion = await ask(client)
    assert completion.data["flavor"] == "Salmon"
    assert completion.attempts == 1
    assert completion.model == "gpt-4o-mini"
    assert completion.token_logprobs is not None
    assert "".join(t for t, _ in completion.token_logprobs) == completion.content
    confidence = value_confidence(completion.content, completion.token_logprobs, ["flavor"])
    assert confidence is not None and 0.9 < confidence <= 1.0
    stats = sim.stats()
    assert (completion.input_tokens, completion.output_tokens) == (
        stats["prompt_tokens"],
        stats["completion_tokens"],
    )
    expected = (completion.input_tokens * 0.15 + completion.output_tokens * 0.60) / 1e6
    assert completion.cost == pytest.approx(expected)
    assert client.stats.requests == 1 and client.stats.cost == pytest.approx(expected)


async def test_429_storm_then_success(sim: SimulatorThread) -> None:
    sim.configure(faults=[("rate_limit", None)] * 3)
    clock = FakeClock()
    client = client_for(sim, clock)
    completion = await ask(client)
    assert completion.attempts == 4
    assert client.stats.rate_limited == 3 and client.stats.retries == 3
    assert client.limiter.stats.penalties == 3
    # Each 429 said "retry after 1 s" (retry-after-ms: 1000), and that was honoured.
    assert clock.monotonic() >= 3.0
    assert sim.stats()["rate_limited"] == 3


async def test_429_storm_outlasting_the_attempts(sim: SimulatorThread) -> None:
    sim.configure(faults=[("rate_limit", None)] * 4)
    with pytest.raises(ActionFailure) as info:
        await ask(client_for(sim))
    assert info.value.category == "PROVIDER_LIMITATION" and info.value.retryable
    assert "rate limited (429) after 4 attempts" in info.value.message


async def test_server_errors_back_off_as_the_retry_policy_says(sim: SimulatorThread) -> None:
    sim.configure(faults=[("status", 500), ("status", 503), ("status", 502)])
    clock = FakeClock()
    client = LLMClient(endpoint(sim), clock=clock, environ=ENVIRON, rng=random.Random(11))
    completion = await ask(client)
    assert completion.attempts == 4
    # The policy's backoff 0.5, 1 and 2 s, each less the same seeded jitter; no more.
    jitter = random.Random(11)
    waits = [client.retry_policy.backoff(retry, jitter) for retry in range(3)]
    assert 0.75 * 3.5 <= sum(waits) <= 3.5
    assert clock.monotonic() == pytest.approx(sum(waits))


async def test_a_request_the_provider_says_can_never_pass_is_not_tried_again(
    sim: SimulatorThread,
) -> None:
    sim.configure(tpm=50)  # every request costs more: 429 with x-should-retry: false
    with pytest.raises(ActionFailure) as info:
        await ask(client_for(sim))
    assert info.value.category == "PROVIDER_LIMITATION" and not info.value.retryable
    assert "rate limited (429); the provider says another attempt cannot" in info.value.message
    assert sim.stats()["requests"] == 1


def test_the_endpoints_max_attempts_is_its_retry_policys(sim: SimulatorThread) -> None:
    client = client_for(sim, max_attempts=7)
    assert client.retry_policy.max_attempts == 7
    with pytest.raises(ValueError, match="max_attempts"):
        client_for(sim, max_attempts=0)


async def test_timeouts_become_provider_limitation(sim: SimulatorThread) -> None:
    sim.configure(faults=[("timeout", None)] * 3)
    client = client_for(sim, timeout_s=0.2, max_attempts=3)
    started = time.monotonic()
    with pytest.raises(ActionFailure) as info:
        await ask(client)
    assert info.value.category == "PROVIDER_LIMITATION" and info.value.retryable
    assert info.value.message == "timed out after 3 attempts"
    assert time.monotonic() - started < 3.0  # 3 x 0.2 s, not 3 x 5 s


async def test_unreachable_endpoint() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    client = LLMClient(
        ModelEndpoint("down", "m", base_url=f"http://127.0.0.1:{port}/v1", kind="compatible"),
        clock=FakeClock(),
        environ={},
    )
    with pytest.raises(ActionFailure) as info:
        await ask(client)
    assert info.value.category == "PROVIDER_LIMITATION" and info.value.retryable
    assert "connection error" in info.value.message and "after 4 attempts" in info.value.message


async def test_malformed_output_is_invalid_output(sim: SimulatorThread) -> None:
    sim.configure(faults=[("malformed", None)] * 4)
    client = client_for(sim)
    with pytest.raises(ActionFailure) as info:
        await ask(client)
    assert info.value.category == "INVALID_OUTPUT" and not info.value.retryable
    assert "model returned text that is not JSON: " in info.value.message
    assert client.stats.requests == 4
    assert client.stats.input_tokens > 0  # failed samples are billed and counted


async def test_one_malformed_sample_is_retried(sim: SimulatorThread) -> None:
    sim.configure(faults=[("malformed", None)])
    client = client_for(sim)
    completion = await ask(client)
    assert completion.attempts == 2
    assert completion.input_tokens == sim.stats()["prompt_tokens"]  # both samples


async def test_schema_violation_is_invalid_output(sim: SimulatorThread) -> None:
    sim.configure(faults=[("schema_violation", None)] * 4)
    with pytest.raises(ActionFailure) as info:
        await ask(client_for(sim))
    assert info.value.category == "INVALID_OUTPUT" and not info.value.retryable
    assert "output breaks the schema at $" in info.value.message


async def test_json_schema_unsupported_falls_back_to_json_object(sim: SimulatorThread) -> None:
    sim.configure(json_schema_supported=False)
    client = LLMClient(endpoint(sim), clock=FakeClock(), environ=ENVIRON)
    first = await client.complete(system=SYSTEM, user=USER, schema_name="a", schema=SCHEMA)
    assert first.data["flavor"] == "Salmon"
    assert not client.supports_json_schema
    second = await client.complete(system=SYSTEM, user=USER, schema_name="a", schema=SCHEMA)
    await client.aclose()
    assert second.attempts == 1
    stats = sim.stats()
    assert (stats["errors"], stats["completions"]) == (1, 2)  # remembered: one 400 only


async def test_json_object_when_configured(sim: SimulatorThread) -> None:
    client = client_for(sim, structured="json_object")
    completion = await ask(client)
    assert completion.data["flavor"] == "Salmon"
    assert sim.stats()["errors"] == 0


async def test_logprobs_unsupported(sim: SimulatorThread) -> None:
    sim.configure(logprobs_supported=False)
    completion = await ask(client_for(sim))
    assert completion.token_logprobs is None
    assert value_confidence(completion.content, completion.token_logprobs, ["flavor"]) is None


async def test_logprobs_refused_with_400_are_dropped(sim: SimulatorThread) -> None:
    # No simulator switch answers 400 to logprobs (some servers do), so provoke a 400
    # about them: the simulator rejects top_logprobs=99 with "'top_logprobs' must be...".
    client = client_for(sim)
    openai_client = client._openai()
    original = openai_client.post
    sent: list[bool] = []

    async def post(path: str, *, body: dict[str, Any], **options: Any) -> Any:
        sent.append("logprobs" in body)
        if "logprobs" in body:
            body["top_logprobs"] = 99
        return await original(path, body=body, **options)

    openai_client.post = post  # type: ignore[method-assign, assignment]
    completion = await client.complete(system=SYSTEM, user=USER, schema_name="a", schema=SCHEMA)
    assert completion.token_logprobs is None and completion.attempts == 1
    assert not client.supports_logprobs
    await client.complete(system=SYSTEM, user=USER, schema_name="a", schema=SCHEMA)
    await client.aclose()
    assert sent == [True, False, False]  # dropped once, then remembered


async def test_non_strict_schema_is_invalid_prompt(sim: SimulatorThread) -> None:
    loose = {
        "type": "object",
        "properties": {"flavor": {"type": "string"}, "note": {"type": "string"}},
        "required": ["flavor"],
    }
    with pytest.raises(ActionFailure) as info:
        await ask(client_for(sim), loose)
    assert info.value.category == "INVALID_PROMPT" and not info.value.retryable
    assert "additionalProperties must be false" in info.value.message
    assert "missing ['note']" in info.value.message
    assert sim.stats()["requests"] == 0  # refused before any call


async def test_a_schema_is_checked_once_however_often_it_is_used(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[dict[str, Any]] = []
    check = provider.check_strict_schema

    def counting(schema: dict[str, Any]) -> list[str]:
        checked.append(schema)
        return check(schema)

    monkeypatch.setattr(provider, "check_strict_schema", counting)
    flavors = ["Chicken", "Salmon", "Duck"]  # a schema no other test uses
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "flavor": {"enum": flavors}}}
    client = client_for(sim)
    for _ in range(3):  # a new but equal dict each call, as an action builds it
        answer = await client.complete(
            system=SYSTEM, user=USER, schema_name="a", schema=json_copy(schema)
        )
        assert answer.data["flavor"] == "Salmon"
    schema["properties"]["flavor"]["enum"] = [*flavors, "Tuna"]
    await client.complete(system=SYSTEM, user=USER, schema_name="a", schema=schema)
    await client.aclose()
    assert [s["properties"]["flavor"]["enum"] for s in checked] == [flavors, [*flavors, "Tuna"]]
    assert sim.stats()["requests"] == 4


def json_copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def test_check_strict_schema_nested() -> None:
    assert check_strict_schema(SCHEMA) == []
    nested = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "required": [],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    }
    assert check_strict_schema(nested) == [
        "$.items/items: every property must be required (missing ['a'])"
    ]
    assert check_strict_schema({"type": "array"}) == ["$: the top level must be an object"]
    assert check_strict_schema({"type": 5})[0].startswith("not a valid JSON schema")


@pytest.mark.parametrize(
    ("fault", "category"),
    [
        (("status", 401), "INVALID_PROMPT"),
        (("status", 403), "INVALID_PROMPT"),
        (("status", 404), "INVALID_PROMPT"),
        (("status", 400), "INVALID_PROMPT"),
        (("status", 422), "INVALID_PROMPT"),
        (("status", 500), "PROVIDER_LIMITATION"),
        (("timeout", None), "PROVIDER_LIMITATION"),
        (("malformed", None), "INVALID_OUTPUT"),
        (("schema_violation", None), "INVALID_OUTPUT"),
        (("rate_limit", None), "PROVIDER_LIMITATION"),
    ],
)
async def test_the_api_key_never_appears_in_errors(
    sim: SimulatorThread, fault: tuple[str, int | None], category: str
) -> None:
    sim.configure(faults=[fault] * 2)
    client = client_for(sim, timeout_s=0.3, max_attempts=2)
    with pytest.raises(ActionFailure) as info:
        await ask(client)
    assert info.value.category == category
    texts = [str(info.value), repr(info.value), info.value.message]
    cause: BaseException | None = info.value.__cause__ or info.value.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    for text in texts:
        assert SECRET not in text and SECRET[:12] not in text and SECRET[-8:] not in text


async def test_missing_key_is_a_configuration_failure(sim: SimulatorThread) -> None:
    client = LLMClient(endpoint(sim), clock=FakeClock(), environ={})
    with pytest.raises(ActionFailure) as info:
        await ask(client)
    assert info.value.category == "INVALID_PROMPT"
    assert "CATALOGFLOW_TEST_KEY" in info.value.message
    # A self-hosted ("compatible") endpoint needs none.
    compatible = LLMClient(endpoint(sim, kind="compatible"), clock=FakeClock(), environ={})
    assert (await ask(compatible)).data["flavor"] == "Salmon"


async def test_client_pool_shares_one_client_per_model(sim: SimulatorThread) -> None:
    pool = ClientPool(clock=FakeClock(), environ=ENVIRON)
    first = pool.get(endpoint(sim))
    assert pool.get(endpoint(sim, name="other", timeout_s=1.0)) is first
    assert pool.get(endpoint(sim, model="gpt-4o")) is not first
    assert pool.get(endpoint(sim, kind="compatible")) is not first
    await pool.aclose()


async def test_headers_refine_the_limiter(sim: SimulatorThread) -> None:
    sim.configure(rpm=120, tpm=100_000)
    client = client_for(sim, rpm=1000)
    await ask(client)
    assert (client.limiter.rpm, client.limiter.tpm) == (120, 100_000)


async def test_paced_to_the_servers_short_window_limit(sim: SimulatorThread) -> None:
    """On the real clock: the server allows 2 requests per second (120 rpm, 1 s burst
    window); a client configured a little below it is never refused."""
    sim.configure(rpm=120)
    client = LLMClient(endpoint(sim, rpm=100), clock=SystemClock(), environ=ENVIRON)
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            client.complete(system=SYSTEM, user=USER, schema_name="a", schema=SCHEMA)
            for _ in range(5)
        )
    )
    await client.aclose()
    elapsed = time.monotonic() - started
    assert all(r.attempts == 1 for r in results)
    assert sim.stats()["rate_limited"] == 0
    assert 4 * 0.6 - 0.1 <= elapsed < 5.0  # 100 rpm: one every 0.6 s after the first


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4001) == math.ceil(4001 / 4)


async def test_an_answer_cut_off_at_its_budget_is_retried_once_with_a_larger_budget(
    sim: SimulatorThread,
) -> None:
    client = client_for(sim)
    try:
        completion = await client.complete(
            system=SYSTEM,
            user=USER,
            schema_name="attributes",
            schema=SCHEMA,
            max_output_tokens=5,
            retry_output_tokens=2048,
        )
    finally:
        await client.aclose()
    assert completion.attempts == 2
    assert completion.budget == 2048
    assert 5 < completion.answer_tokens < 2048
    assert completion.data["flavor"] == "Salmon"  # the whole answer, never the partial one


async def test_an_answer_cut_off_twice_is_invalid_output_not_a_partial_value(
    sim: SimulatorThread,
) -> None:
    client = client_for(sim)
    with pytest.raises(ActionFailure) as failure:
        try:
            await client.complete(
                system=SYSTEM,
                user=USER,
                schema_name="attributes",
                schema=SCHEMA,
                max_output_tokens=5,
                retry_output_tokens=8,
            )
        finally:
            await client.aclose()
    assert failure.value.category == "INVALID_OUTPUT"
    assert not failure.value.retryable
    assert "cut off" in failure.value.message and "max_completion_tokens" in failure.value.message
    assert sim.stats()["requests"] == 2  # one retry, no more


async def test_tokens_are_booked_as_the_server_counts_them_prompt_plus_budget(
    sim: SimulatorThread,
) -> None:
    client = client_for(sim, tpm=1_000_000)
    try:
        completion = await client.complete(
            system=SYSTEM, user=USER, schema_name="attributes", schema=SCHEMA, max_output_tokens=300
        )
    finally:
        await client.aclose()
    booked = sum(entry[1] for entry in client.limiter._tokens.recent)
    assert booked == completion.input_tokens + 300  # not what the answer used
    assert booked == sim.stats()["admitted_tokens"]


def test_compatible_endpoints_get_what_llama_cpp_needs(sim: SimulatorThread) -> None:
    """JSON mode with the schema as a grammar (no ``type`` beside an ``enum``),
    ``max_tokens`` beside ``max_completion_tokens``, ``top_logprobs`` with logprobs;
    an OpenAI endpoint's request keeps none of them."""
    checked = provider._checked_schema(json.dumps(SCHEMA))
    compatible = client_for(sim, kind="compatible", structured="json_object")
    request = compatible._request("s", "u", "a", checked, 100)
    assert request["response_format"]["type"] == "json_object"
    flavor = request["response_format"]["schema"]["properties"]["flavor"]
    assert flavor == {"enum": ["Chicken", "Salmon", "Tuna"]}
    assert (request["max_tokens"], request["max_completion_tokens"]) == (100, 100)
    assert request["logprobs"] is True and request["top_logprobs"] == 0
    openai_request = client_for(sim, structured="json_object")._request("s", "u", "a", checked, 9)
    assert openai_request["response_format"] == {"type": "json_object"}
    assert "max_tokens" not in openai_request and "top_logprobs" not in openai_request


def test_grammar_schema_leaves_everything_but_types_beside_enums() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"], "enum": ["x", None]},
            "b": {"type": "array", "items": {"type": "string", "enum": ["y"]}},
        },
    }
    assert provider.grammar_schema(schema) == {
        "type": "object",
        "properties": {
            "a": {"enum": ["x", None]},
            "b": {"type": "array", "items": {"enum": ["y"]}},
        },
    }
    assert schema["properties"]["a"]["type"] == ["string", "null"]  # not changed in place
