"""The Batch API client against the LLM simulator: real HTTP on loopback, the real
openai client's files and batches calls, our polling on a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from catalogflow.connectors.llm.provider import (
    BatchClient,
    ClientPool,
    Completion,
    LLMClient,
    ModelEndpoint,
)
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions import ActionFailure
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.actions.enrichment import ContentEnrichment
from catalogflow.streams.clock import FakeClock, SystemClock
from catalogflow.streams.definitions import DefinitionError
from catalogflow.streams.metrics.current import configure_metrics
from catalogflow.streams.metrics.model import (
    MODEL_BATCHES,
    MODEL_COST,
    MODEL_REQUESTS,
    MODEL_TOKENS,
)
from catalogflow.streams.metrics.recording import RecordingMetrics
from catalogflow.streams.steps import Produced, run_step
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread

from catalogflow.dryrun import fold, matching

SECRET = "sk-catalogflow-TEST-KEY-0123456789abcdef"
ENVIRON = {"CATALOGFLOW_TEST_KEY": SECRET}
MODEL = "gpt-4o-mini"
SYSTEM = "You extract product attributes. Answer in JSON."
FLAVORS = ["Chicken", "Salmon", "Tuna", "Beef", "Turkey", "Lamb"]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": {"type": "string", "enum": FLAVORS},
        "reasoning": {"type": "string"},
    },
    "required": ["flavor", "reasoning"],
    "additionalProperties": False,
}
TITLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"shopping_title": {"type": "string", "maxLength": 80}},
    "required": ["shopping_title"],
    "additionalProperties": False,
}


def product(n: int) -> str:
    """A product text whose flavour tells which one it is."""
    flavor = FLAVORS[n % len(FLAVORS)].lower()
    return (
        f"<product>\nsku: PF-{n:06d}\nname: Whiskerly Dry Cat Food {n} kg\n"
        f"description: Whiskerly recipe with real {flavor} for adult cats.\n</product>"
    )


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig()) as simulator:
        yield simulator


@pytest.fixture
def recorded() -> Iterator[RecordingMetrics]:
    twin = RecordingMetrics()
    configure_metrics(twin)
    try:
        yield twin
    finally:
        configure_metrics(None)


def endpoint(sim: SimulatorThread, **changes: Any) -> ModelEndpoint:
    settings: dict[str, Any] = {
        "name": "test",
        "model": MODEL,
        "base_url": f"{sim.url}/v1",
        "api_key_env": "CATALOGFLOW_TEST_KEY",  # a real key is sent, so its secrecy is tested
        "timeout_s": 5.0,
        "price_input_per_million": 0.15,
        "price_output_per_million": 0.60,
        "batch": True,
        "batch_linger_s": 0.5,
        "batch_poll_s": 1.0,
    }
    settings.update(changes)
    return ModelEndpoint(**settings)


def batch_client(
    sim: SimulatorThread, clock: FakeClock | None = None, **changes: Any
) -> BatchClient:
    return BatchClient(endpoint(sim, **changes), clock=clock or FakeClock(), environ=ENVIRON)


async def ask_all(
    client: BatchClient | LLMClient,
    texts: list[str],
    schema_name: str = "attributes",
    schema: dict[str, Any] | None = None,
    **options: Any,
) -> list[Completion | BaseException]:
    """Every text asked at once, as an action agent's concurrent tasks do."""
    calls = [
        client.complete(
            system=SYSTEM, user=text, schema_name=schema_name, schema=schema or SCHEMA, **options
        )
        for text in texts
    ]
    return list(await asyncio.gather(*calls, return_exceptions=True))


def answers(results: list[Completion | BaseException]) -> list[Completion]:
    done = [r for r in results if isinstance(r, Completion)]
    assert len(done) == len(results), [r for r in results if not isinstance(r, Completion)]
    return done


def batch_price(completion: Completion) -> float:
    live = completion.input_tokens * 0.15 + completion.output_tokens * 0.60
    return live / 1e6 * 0.5


async def test_one_actions_requests_share_a_batch_and_each_caller_gets_its_own_answer(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    texts = [product(n) for n in range(6)]
    client = batch_client(sim)
    try:
        batched = answers(await ask_all(client, texts))
    finally:
        await client.aclose()
    stats = sim.stats()
    assert stats["batches"] == 1 and stats["batch_lines"] == 6 and stats["requests"] == 0
    # The simulator writes its output file in reverse order: joined by custom_id.
    assert [c.data["flavor"] for c in batched] == [FLAVORS[n % 6] for n in range(6)]

    live_client = LLMClient(endpoint(sim, batch=False), clock=FakeClock(), environ=ENVIRON)
    try:
        live = answers(await ask_all(live_client, texts))
    finally:
        await live_client.aclose()
    for one, other in zip(batched, live, strict=True):
        assert (one.data, one.content, one.token_logprobs) == (
            other.data,
            other.content,
            other.token_logprobs,
        )
        assert (one.input_tokens, one.output_tokens) == (other.input_tokens, other.output_tokens)
        assert one.cost == pytest.approx(other.cost / 2) == pytest.approx(batch_price(one))

    cost = sum(c.cost for c in batched)
    assert client.stats.cost == pytest.approx(cost)
    assert (stats["batch_prompt_tokens"], stats["batch_completion_tokens"]) == (
        sum(c.input_tokens for c in batched),
        sum(c.output_tokens for c in batched),
    )
    prompt = sum(c.input_tokens for c in batched)
    assert recorded.value(MODEL_TOKENS, model=MODEL, kind="prompt") == 2 * prompt  # both runs
    assert recorded.value(MODEL_COST, model=MODEL) == pytest.approx(cost * 3)  # half + whole
    assert recorded.value(MODEL_REQUESTS, model=MODEL, outcome="ok") == 12
    assert recorded.series(MODEL_BATCHES) == {(MODEL, "completed"): 1}


async def test_each_action_gets_its_own_batch_file(sim: SimulatorThread) -> None:
    client = batch_client(sim)
    try:
        extracted, titled = await asyncio.gather(
            ask_all(client, [product(1), product(2)]),
            ask_all(client, [product(1)], "content_enrichment", TITLE_SCHEMA),
        )
    finally:
        await client.aclose()
    assert [c.data["flavor"] for c in answers(extracted)] == ["Salmon", "Tuna"]
    assert answers(titled)[0].data["shopping_title"].startswith("Whiskerly Dry Cat Food 1 kg")
    assert sim.stats()["batches"] == 2


async def test_a_full_file_goes_out_at_once_and_the_rest_after_the_linger(
    sim: SimulatorThread,
) -> None:
    clock = FakeClock()
    client = batch_client(sim, clock, batch_size=4, batch_linger_s=30.0)
    try:
        done = answers(await ask_all(client, [product(n) for n in range(10)]))
    finally:
        await client.aclose()
    assert [c.data["flavor"] for c in done] == [FLAVORS[n % 6] for n in range(10)]
    assert (client.queue.batches, client.queue.lines) == (3, 10)  # 4, 4 and the last 2
    assert clock.monotonic() >= 30.0  # the last two waited out the linger
    assert sim.stats()["batches"] == 3


async def test_an_error_line_is_a_retryable_provider_limitation_the_others_are_answered(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    sim.configure(batch_error_share=0.5)  # every second line gets a 500
    client = batch_client(sim)
    try:
        results = await ask_all(client, [product(n) for n in range(4)])
    finally:
        await client.aclose()
    failures = [r for r in results if isinstance(r, ActionFailure)]
    assert len(failures) == 2 and len([r for r in results if isinstance(r, Completion)]) == 2
    for failure in failures:
        assert failure.category == "PROVIDER_LIMITATION" and failure.retryable
        assert "server error (500) for a batch request" in failure.message
    assert recorded.series(MODEL_REQUESTS) == {(MODEL, "ok"): 2, (MODEL, "server_error"): 2}


async def test_an_answer_cut_off_twice_is_invalid_output_after_one_larger_batch_line(
    sim: SimulatorThread,
) -> None:
    client = batch_client(sim)
    try:
        [result] = await ask_all(client, [product(1)], max_output_tokens=5, retry_output_tokens=8)
    finally:
        await client.aclose()
    assert isinstance(result, ActionFailure)
    assert result.category == "INVALID_OUTPUT" and not result.retryable
    assert "cut off at its completion budget of 8 tokens" in result.message
    assert client.queue.batches == 2  # the larger budget went out in a batch of its own
    assert client.stats.input_tokens > 0  # both cut-off answers were billed


async def test_an_expired_batch_sends_what_is_missing_again_and_completes(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    sim.configure(batch_expire_after=2)  # the next batch answers two lines, then expires
    client = batch_client(sim)
    texts = [product(n) for n in range(5)]
    try:
        done = answers(await ask_all(client, texts))
    finally:
        await client.aclose()
    assert [c.data["flavor"] for c in done] == [FLAVORS[n] for n in range(5)]
    stats = sim.stats()
    assert (stats["batches"], stats["batches_expired"], stats["batch_lines"]) == (2, 1, 5)
    assert (client.stats.requests, client.stats.retries) == (8, 3)  # 5 lines, 3 of them again
    assert recorded.series(MODEL_BATCHES) == {(MODEL, "expired"): 1, (MODEL, "completed"): 1}
    # Each answer paid once, at the batch price: the two the expired batch gave were used.
    assert sum(c.cost for c in done) == pytest.approx(sum(batch_price(c) for c in done))
    assert client.stats.cost == pytest.approx(sum(c.cost for c in done))


async def test_a_batch_that_keeps_expiring_fails_retryably_after_its_resubmits(
    sim: SimulatorThread,
) -> None:
    sim.configure(batch_expire_after=0)
    client = batch_client(sim, batch_resubmits=0)
    try:
        results = await ask_all(client, [product(1), product(2)])
    finally:
        await client.aclose()
    for result in results:
        assert isinstance(result, ActionFailure)
        assert result.category == "PROVIDER_LIMITATION" and result.retryable
        assert "the Batch API expired 1 batches in a row" in result.message
        assert "2 requests got no answer" in result.message


async def test_a_batch_that_fails_validation_fails_its_calls_as_invalid_prompt(
    sim: SimulatorThread,
) -> None:
    sim.configure(reject_unknown_models=True)
    client = batch_client(sim, model="gpt-unknown")
    try:
        [result] = await ask_all(client, [product(1)])
    finally:
        await client.aclose()
    assert isinstance(result, ActionFailure)
    assert result.category == "INVALID_PROMPT" and not result.retryable
    assert "failed validation: model_not_found" in result.message


async def test_the_batch_queue_limit_is_a_retryable_provider_limitation(
    sim: SimulatorThread, recorded: RecordingMetrics
) -> None:
    sim.configure(batch_queue_tokens=10)
    client = batch_client(sim)
    try:
        [result] = await ask_all(client, [product(1)])
    finally:
        await client.aclose()
    assert isinstance(result, ActionFailure)
    assert result.category == "PROVIDER_LIMITATION" and result.retryable
    assert "token_limit_exceeded: Enqueued token limit reached" in result.message
    assert recorded.series(MODEL_BATCHES) == {(MODEL, "failed"): 1}


async def test_an_endpoint_without_a_batch_api_names_the_setting_and_never_the_key(
    sim: SimulatorThread,
) -> None:
    client = batch_client(sim, base_url=sim.url)  # no /v1: every Batch API path is a 404
    try:
        [result] = await ask_all(client, [product(1)])
    finally:
        await client.aclose()
    assert isinstance(result, ActionFailure) and result.category == "INVALID_PROMPT"
    assert "has no Batch API (404 to upload a batch file)" in result.message
    assert "remove batch from the action's settings.model" in result.message
    for text in (str(result), repr(result), result.message):
        assert SECRET not in text and SECRET[:12] not in text


async def test_a_missing_key_fails_at_once(sim: SimulatorThread) -> None:
    client = BatchClient(endpoint(sim), clock=FakeClock(), environ={})
    with pytest.raises(ActionFailure) as info:
        await client.complete(system=SYSTEM, user=product(1), schema_name="a", schema=SCHEMA)
    assert info.value.category == "INVALID_PROMPT" and "CATALOGFLOW_TEST_KEY" in info.value.message
    assert sim.stats()["batches"] == 0


async def test_closing_the_client_cancels_its_batches_in_flight(sim: SimulatorThread) -> None:
    sim.configure(batch_delay_s=30.0)
    client = BatchClient(
        endpoint(sim, batch_linger_s=0.01, batch_poll_s=0.05), clock=SystemClock(), environ=ENVIRON
    )
    call = asyncio.create_task(
        client.complete(system=SYSTEM, user=product(1), schema_name="a", schema=SCHEMA)
    )
    deadline = time.monotonic() + 5
    while sim.stats()["batches"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await client.aclose()
    with pytest.raises(asyncio.CancelledError):
        await call
    plain = openai.AsyncOpenAI(base_url=f"{sim.url}/v1", api_key="sk-other", max_retries=0)
    try:
        [batch] = (await plain.batches.list()).data  # the one batch made
        while (await plain.batches.retrieve(batch.id)).status != "cancelled":
            assert time.monotonic() < deadline + 5, "the batch was not cancelled"
            await asyncio.sleep(0.05)
    finally:
        await plain.close()


async def test_the_pool_gives_a_batch_endpoint_its_own_batch_client(sim: SimulatorThread) -> None:
    pool = ClientPool(clock=FakeClock(), environ=ENVIRON)
    batched = pool.get(endpoint(sim))
    assert isinstance(batched, BatchClient)
    assert pool.get(endpoint(sim, name="other", batch_size=3)) is batched
    live = pool.get(endpoint(sim, batch=False))
    assert isinstance(live, LLMClient)
    await pool.aclose()


SEED = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"


async def test_an_actions_first_calls_share_one_batch_without_a_budget_warm_up(
    sim: SimulatorThread,
) -> None:
    """A live action sends its first two calls alone to learn the completion budget;
    through the Batch API that would cost a whole batch, so every call goes at once."""
    definition = load_workflow(SEED)
    [enrich] = [spec for spec in definition.actions if spec.id == "enrich"]
    model = {"batch": True, "batch_linger_s": 0.5, "batch_poll_s": 1.0}
    enrich = dataclasses.replace(enrich, settings={**enrich.settings, "model": model})
    products = matching(definition, fold(sample_changes(24)))
    pool = ClientPool(clock=FakeClock(), environ=ENVIRON)
    action = ContentEnrichment(pool, endpoint(sim, batch=False))  # the step turns batch on
    try:
        steps = await asyncio.gather(*(run_step(action, enrich, p) for p in products))
    finally:
        await pool.aclose()
    assert len(steps) == 6 and all(isinstance(step, Produced) for step in steps)
    assert sim.stats()["batches"] == 1 and sim.stats()["batch_lines"] == 6
    assert sim.stats()["requests"] == 0  # no live call


WORKFLOW = """
id: titles
name: Titles
mode: {mode}
trigger: {{all: [{{field: category, operator: equals, value: Pet Food}}]}}
actions:
  - id: enrich
    type: content_enrichment
    reads: [name]
    settings:
      fields: [shopping_title]
      model: {model}
"""


def workflow(tmp_path: Path, mode: str, model: str) -> Path:
    path = tmp_path / "titles.yaml"
    path.write_text(WORKFLOW.format(mode=mode, model=model), encoding="utf-8")
    return path


def test_only_a_one_time_workflow_may_use_the_batch_api(tmp_path: Path) -> None:
    assert load_workflow(workflow(tmp_path, "one_time", "{batch: true, batch_size: 500}"))
    with pytest.raises(DefinitionError) as info:
        load_workflow(workflow(tmp_path, "continuous", "{batch: true}"))
    [problem] = info.value.problems
    assert problem.path == "actions[0].settings.model.batch"
    assert "the Batch API is for one-time workflows" in problem.message
    assert "make the workflow's mode one_time" in problem.message
    with pytest.raises(DefinitionError) as info:
        load_workflow(workflow(tmp_path, "one_time", "{batch: yes please, batch_poll_s: 0}"))
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("actions[0].settings.model.batch", "expected true or false, got 'yes please'"),
        ("actions[0].settings.model.batch_poll_s", "expected a number of seconds above 0, got 0"),
    ]
