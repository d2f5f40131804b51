"""The LLM simulator's Batch API against the real ``openai`` client: its types parse
every answer, the life cycle and files are OpenAI's, and the faults switch on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from catalogflow.testbench.llm.simulator import LLMSimulator, SimulatorConfig, SimulatorError
from openai.types import Batch

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": {"type": "string", "enum": ["Chicken", "Salmon", "Tuna"]},
        "reasoning": {"type": "string"},
    },
    "required": ["flavor", "reasoning"],
    "additionalProperties": False,
}
FLAVORS = ["chicken", "salmon", "tuna"]


def body(n: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    flavor = FLAVORS[n % 3]
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Extract the flavour. Answer in JSON."},
            {
                "role": "user",
                "content": f"<product>\nname: Food {n}\ndescription: real {flavor}\n</product>",
            },
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "attributes", "strict": True, "schema": SCHEMA},
        },
        "logprobs": True,
    }


def jsonl(records: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def lines(count: int) -> bytes:
    return jsonl(
        [
            {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": body(n)}
            for n in range(count)
        ]
    )


@pytest.fixture
async def sim() -> AsyncIterator[LLMSimulator]:
    async with LLMSimulator(SimulatorConfig()) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: LLMSimulator) -> AsyncIterator[openai.AsyncOpenAI]:
    made = openai.AsyncOpenAI(base_url=f"{sim.url}/v1", api_key="sk-secret", max_retries=0)
    yield made
    await made.close()


async def submit(client: openai.AsyncOpenAI, data: bytes) -> Batch:
    uploaded = await client.files.create(file=("in.jsonl", data), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes, uploaded.status) == ("batch", len(data), "processed")
    return await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


async def finished(client: openai.AsyncOpenAI, batch: Batch) -> tuple[Batch, list[str]]:
    """The batch once it ended, and every status it was seen in on the way."""
    seen: list[str] = [batch.status]
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        await asyncio.sleep(0.01)
        batch = await client.batches.retrieve(batch.id)
        if batch.status != seen[-1]:
            seen.append(batch.status)
    return batch, seen


async def records(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.content.splitlines()]


async def test_a_batch_goes_through_openais_life_cycle_and_answers_as_live_calls_do(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    sim.configure(batch_delay_s=1.0)  # a tenth each validating and finalizing
    batch = await submit(client, lines(3))
    assert batch.status == "validating" and batch.completion_window == "24h"
    assert batch.expires_at == batch.created_at + 24 * 3600
    batch, seen = await finished(client, batch)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (3, 3)
    assert batch.error_file_id is None and batch.model == "gpt-4o-mini"
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    output = await records(client, batch.output_file_id)
    assert [r["custom_id"] for r in output] == ["r2", "r1", "r0"]  # no order is promised
    for record in output:
        n = int(record["custom_id"][1:])
        assert record["response"]["status_code"] == 200 and record["error"] is None
        live = await client.chat.completions.create(**body(n))
        answer = record["response"]["body"]
        assert answer["choices"][0]["message"]["content"] == live.choices[0].message.content
        assert answer["usage"]["prompt_tokens"] == (live.usage and live.usage.prompt_tokens)
    assert batch.usage is not None
    assert batch.usage.input_tokens == sim.stats["batch_prompt_tokens"] > 0
    stats = sim.stats
    assert (stats["batches"], stats["batch_lines"], stats["requests"]) == (1, 3, 3)  # 3 live


async def test_a_share_of_lines_errors_into_the_error_file(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    sim.configure(batch_error_share=0.25)
    batch, _ = await finished(client, await submit(client, lines(8)))
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (6, 2)
    errors = await records(client, batch.error_file_id)
    assert sorted(r["custom_id"] for r in errors) == ["r3", "r7"]  # every fourth line
    assert {r["response"]["status_code"] for r in errors} == {500}
    assert errors[0]["response"]["body"]["error"]["type"] == "server_error"
    assert len(await records(client, batch.output_file_id)) == 6


async def test_an_armed_expiry_ends_the_next_batch_of_more_than_k_lines_after_k(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    sim.configure(batch_expire_after=2)
    small, _ = await finished(client, await submit(client, lines(2)))
    assert small.status == "completed"  # nothing to cut: the fault stays armed
    batch, _ = await finished(client, await submit(client, lines(5)))
    assert batch.status == "expired" and batch.expired_at is not None
    assert len(await records(client, batch.output_file_id)) == 2
    missing = await records(client, batch.error_file_id)
    assert [r["custom_id"] for r in missing] == ["r2", "r3", "r4"]
    assert {r["error"]["code"] for r in missing} == {"batch_expired"}
    assert all(r["response"] is None for r in missing)
    again, _ = await finished(client, await submit(client, lines(5)))  # armed once only
    assert again.status == "completed"
    assert sim.stats["batches_expired"] == 1


async def test_a_cancelled_batch_keeps_what_it_answered(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    sim.configure(batch_delay_s=10.0)
    batch = await submit(client, lines(2))
    while (await client.batches.retrieve(batch.id)).status != "in_progress":
        await asyncio.sleep(0.01)
    cancelling = await client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    batch, _ = await finished(client, cancelling)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    answered = await records(client, batch.output_file_id) if batch.output_file_id else []
    not_run = await records(client, batch.error_file_id) if batch.error_file_id else []
    assert sorted(r["custom_id"] for r in answered + not_run) == ["r0", "r1"]
    assert {r["error"]["code"] for r in not_run} <= {"batch_cancelled"}
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)


async def test_a_file_that_does_not_validate_fails_the_batch_with_line_errors(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body(0)}
    data = jsonl([good, good, {**good, "custom_id": "b", "url": "/v1/embeddings"}])
    batch, _ = await finished(client, await submit(client, data + b"not json\n"))
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.errors is not None and batch.errors.data is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("duplicate_custom_id", 2),
        ("mismatched_endpoint", 3),
        ("invalid_json_line", 4),
    ]
    mixed = jsonl(
        [good, {**good, "custom_id": "b", "body": body(1, model="gpt-4o")}],
    )
    batch, _ = await finished(client, await submit(client, mixed))
    assert batch.errors is not None and batch.errors.data is not None
    assert [e.code for e in batch.errors.data] == ["mismatched_model"]


async def test_the_queue_limit_counts_the_prompt_tokens_in_progress(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    sim.configure(batch_delay_s=1.0, batch_queue_tokens=100)
    first = await submit(client, lines(3))  # about 20 prompt tokens a line
    while (await client.batches.retrieve(first.id)).status == "validating":
        await asyncio.sleep(0.01)
    second, _ = await finished(client, await submit(client, lines(3)))
    assert second.status == "failed" and second.errors and second.errors.data
    assert second.errors.data[0].code == "token_limit_exceeded"
    assert (await finished(client, first))[0].status == "completed"


async def test_bad_requests_get_openais_errors(
    sim: LLMSimulator, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError, match="No batch file"):
        await client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        await client.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        await client.files.content("file-missing")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.url}/v1/batches/batch_x") as response,
    ):
        assert response.status == 401  # no API key


async def test_batch_settings_are_checked_and_switchable_at_runtime(sim: LLMSimulator) -> None:
    with pytest.raises(SimulatorError, match="batch_error_share"):
        SimulatorConfig().changed(batch_error_share=1.5)
    with pytest.raises(SimulatorError, match="batch_expire_after"):
        SimulatorConfig().changed(batch_expire_after=-1)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.url}/_sim/config", json={"batch_delay_s": 2, "batch_queue_tokens": 10}
        ) as response,
    ):
        assert response.status == 200
        assert (await response.json())["batch_delay_s"] == 2
    assert sim.config.batch_queue_tokens == 10
