"""Chat requests carried through the OpenAI Batch API, a JSON Lines file at a time.

Why: a one-time run over a catalog needs no answer within seconds, and the Batch API
answers within 24 hours at about half the price, in a rate-limit pool of its own.
:class:`~catalogflow.connectors.llm.provider.BatchClient` builds every request and
reads every answer exactly as the live client does; this module only carries them:

* Requests wait per group (the provider's client groups by action: its schema's name
  and shape) until ``batch_size`` of them wait or the first has waited
  ``batch_linger_s``; they then go out as one file (``files.create(purpose="batch")``)
  and one batch (``batches.create(endpoint="/v1/chat/completions",
  completion_window="24h")``).
* At most ``batch_max_in_flight`` batches run at once; the others wait their turn,
  holding only their own requests (so what waits is bounded by the callers: an action
  agent runs at most ``action_concurrency`` calls). A batch in flight is polled every
  ``batch_poll_s`` on the clock.
* The output and error files are joined back by ``custom_id``, never by line order.
  Each caller gets its line as a :class:`LineAnswer` (the chat completion, or the
  error the provider gave that one request).
* An ``expired`` or ``cancelled`` batch: the lines that came back are used and the rest
  go out again in a new batch, at most ``batch_resubmits`` times, then fail as
  PROVIDER_LIMITATION (retryable). A ``failed`` batch (it did not pass validation)
  fails its requests: PROVIDER_LIMITATION (retryable) for the provider's queue limits,
  INVALID_PROMPT for anything else. A completed batch without a line for a request
  fails that request as PROVIDER_LIMITATION (retryable).

Control calls (upload, create, poll, download) follow the endpoint's retry policy,
waiting on the clock. A batch lives in this process only: when the worker dies, its
tasks are redelivered and asked again (answers already in the result cache are not).
On ``aclose`` the batches still in flight are cancelled, since nobody will read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import random
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx2
import openai
from catalogflow.connectors.llm.endpoint import (
    ModelEndpoint,
    api_key,
    error_text,
    openai_client,
    redact,
)
from catalogflow.connectors.retry import Outcome, RetryPolicy
from catalogflow.streams.actions import ActionFailure
from catalogflow.streams.clock import Clock
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.model import MODEL_BATCHES
from openai.types import Batch

__all__ = ["CHAT_PATH", "BatchQueue", "LineAnswer"]

T = TypeVar("T")

#: The endpoint of every batch and line: the chat requests the live client makes.
CHAT_PATH: Final = "/v1/chat/completions"
#: Statuses a batch does not leave (the others: validating, in_progress, finalizing,
#: cancelling).
_DONE = frozenset({"completed", "failed", "expired", "cancelled"})
#: What an expired or cancelled batch writes for a request it did not run.
_NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})
#: How long ``aclose`` tries to cancel the batches still in flight.
_CANCEL_S = 5.0


@dataclass(frozen=True)
class LineAnswer:
    """What came back for one request: the HTTP status the provider gave it (None for
    an error line without a response) and the body — a chat completion for 200, else
    ``{"error": {...}}``."""

    status: int | None
    body: dict[str, Any]


@dataclass(frozen=True)
class _Line:
    custom_id: str
    request: dict[str, Any]  # the chat request's body
    answer: asyncio.Future[LineAnswer]


class BatchQueue:
    """The Batch API of one endpoint (one model: a batch file takes one model only)."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        clock: Clock,
        rng: random.Random,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._clock = clock
        self._rng = rng
        self._policy = RetryPolicy(max_attempts=endpoint.max_attempts)
        self._key = api_key(endpoint, environ)
        self._client: openai.AsyncOpenAI | None = None
        self._waiting: dict[Hashable, list[_Line]] = {}
        self._timers: dict[Hashable, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(endpoint.batch_max_in_flight)
        self._in_flight: set[str] = set()  # batch ids, cancelled on aclose
        self._ids = itertools.count(1)
        self.batches = 0  # batches created
        self.lines = 0  # lines sent, resubmitted ones included
        self.resubmitted = 0

    async def ask(self, group: Hashable, request: dict[str, Any]) -> LineAnswer:
        """``request`` (a chat request body) answered through a batch of its ``group``."""
        self._openai()  # a missing key fails now, not after the linger
        line = _Line(f"cf-{next(self._ids)}", request, asyncio.get_running_loop().create_future())
        waiting = self._waiting.setdefault(group, [])
        waiting.append(line)
        if len(waiting) >= self.endpoint.batch_size:
            self._flush(group)
        elif group not in self._timers:
            self._timers[group] = self._spawn(self._linger(group))
        return await line.answer

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CANCEL_S):
                for batch_id in sorted(self._in_flight):
                    with contextlib.suppress(openai.OpenAIError, httpx2.HTTPError):
                        await client.batches.cancel(batch_id)
        self._in_flight.clear()
        await client.close()

    def _openai(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai_client(self.endpoint, self._key)
        return self._client

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _linger(self, group: Hashable) -> None:
        await self._clock.sleep(self.endpoint.batch_linger_s)
        self._timers.pop(group, None)
        self._flush(group)

    def _flush(self, group: Hashable) -> None:
        """Send what waits in ``group`` (callers that gave up are left out)."""
        timer = self._timers.pop(group, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        lines = [line for line in self._waiting.pop(group, []) if not line.answer.done()]
        size = self.endpoint.batch_size
        for start in range(0, len(lines), size):
            self._spawn(self._run(lines[start : start + size]))

    async def _run(self, lines: list[_Line]) -> None:
        """One batch of lines to its end: every line's caller gets an answer or a
        failure (or, when this client closes, a cancellation)."""
        pending = {line.custom_id: line for line in lines}
        failure: Exception | None = None
        try:
            async with self._slots:
                await self._through(pending)
        except Exception as exc:  # an ActionFailure, or our bug: the callers get it
            failure = exc
        finally:
            for line in pending.values():
                if line.answer.done():
                    continue
                if failure is None:
                    line.answer.cancel()
                elif isinstance(failure, ActionFailure):  # one instance per caller
                    copy = ActionFailure(failure.category, failure.message, failure.retryable)
                    line.answer.set_exception(copy)
                else:
                    line.answer.set_exception(failure)

    async def _through(self, pending: dict[str, _Line]) -> None:
        """Batches until every line has its answer, or raise why not."""
        for round_ in itertools.count():
            batch = await self._submit(list(pending.values()))
            try:
                batch = await self._until_done(batch)
            finally:
                if batch.status in _DONE:
                    self._in_flight.discard(batch.id)
            metrics().inc(MODEL_BATCHES, model=self.endpoint.model, status=batch.status)
            await self._collect(batch, pending)
            for gone in [cid for cid, line in pending.items() if line.answer.done()]:
                del pending[gone]  # its caller gave up: nobody to ask again for
            if not pending:
                return
            if batch.status in ("expired", "cancelled") and round_ < self.endpoint.batch_resubmits:
                self.resubmitted += len(pending)
                continue
            raise self._unanswered(batch, round_ + 1, len(pending))

    async def _submit(self, lines: list[_Line]) -> Batch:
        data = _jsonl(lines)
        client = self._openai()
        uploaded = await self._call(
            "upload a batch file",
            lambda: client.files.create(
                file=("catalogflow-batch.jsonl", data, "application/jsonl"), purpose="batch"
            ),
        )
        batch = await self._call(
            "create a batch",
            lambda: client.batches.create(
                input_file_id=uploaded.id,
                endpoint=CHAT_PATH,
                completion_window="24h",
                metadata={"source": "catalogflow"},
            ),
        )
        self._in_flight.add(batch.id)
        self.batches += 1
        self.lines += len(lines)
        return batch

    async def _until_done(self, batch: Batch) -> Batch:
        client = self._openai()
        while batch.status not in _DONE:
            await self._clock.sleep(self.endpoint.batch_poll_s)
            batch = await self._call(
                f"check batch {batch.id}", functools.partial(client.batches.retrieve, batch.id)
            )
        return batch

    async def _collect(self, batch: Batch, pending: dict[str, _Line]) -> None:
        """Hand each line of the batch's output and error files to its caller; a line
        the batch did not run stays in ``pending``."""
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for raw in (await self._download(file_id)).splitlines():
                found = _line_answer(raw)
                if found is None:
                    continue
                custom_id, answer = found
                line = pending.get(custom_id)
                if line is None or answer is None:
                    continue
                del pending[custom_id]
                if not line.answer.done():
                    line.answer.set_result(answer)

    async def _download(self, file_id: str) -> bytes:
        client = self._openai()
        content = await self._call(
            f"download batch results {file_id}", lambda: client.files.content(file_id)
        )
        return content.content

    def _unanswered(self, batch: Batch, rounds: int, left: int) -> ActionFailure:
        """Why the requests still pending after ``batch`` get no answer."""
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors and batch.errors.data else []
            said = (
                "; ".join(f"{e.code or 'error'}: {e.message or ''}".strip() for e in errors[:3])
                or "no reason given"
            )
            said = redact(said, self._key)
            if any("limit" in (e.code or "") for e in errors):  # e.g. token_limit_exceeded
                return ActionFailure(
                    "PROVIDER_LIMITATION",
                    f"the Batch API refused batch {batch.id} for now: {said}",
                    retryable=True,
                )
            return ActionFailure(
                "INVALID_PROMPT", f"batch {batch.id} failed validation: {said}", retryable=False
            )
        if batch.status in ("expired", "cancelled"):
            return ActionFailure(
                "PROVIDER_LIMITATION",
                f"the Batch API {batch.status} {rounds} batches in a row (the last "
                f"{batch.id}); {left} requests got no answer",
                retryable=True,
            )
        return ActionFailure(
            "PROVIDER_LIMITATION",
            f"batch {batch.id} ended {batch.status} without an answer for the request",
            retryable=True,
        )

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """One control call, tried as the retry policy says; its failure as an
        ActionFailure naming what was being done (never the key)."""
        name = self.endpoint.name
        for attempt in itertools.count(1):
            try:
                return await make()
            except openai.APIStatusError as exc:
                status = exc.status_code
                outcome = Outcome(status, exc.response.headers)
                if status in (401, 403):  # the body may quote (part of) the key
                    raise ActionFailure(
                        "INVALID_PROMPT",
                        f"endpoint {name!r} configuration: the provider rejected the "
                        f"credentials ({status}) to {what}; check the key in "
                        f"${self.endpoint.api_key_env}",
                    ) from None
                if status == 404 and what.startswith(("upload", "create")):
                    raise ActionFailure(
                        "INVALID_PROMPT",
                        f"endpoint {name!r} has no Batch API (404 to {what}): "
                        f"{redact(error_text(exc), self._key)}; "
                        "remove batch from the action's settings.model",
                    ) from None
                problem = f"{status}: {redact(error_text(exc), self._key)}"
            except openai.APITimeoutError:
                outcome, problem = Outcome(), "timed out"
            except openai.APIConnectionError:
                outcome, problem = Outcome(), "connection error"
            except (openai.OpenAIError, httpx2.HTTPError) as exc:
                outcome, problem = Outcome(), f"provider error ({type(exc).__name__})"
            decision = self._policy.decide(attempt, outcome, self._rng, self._clock.now())
            if decision.retry:
                await self._clock.sleep(decision.wait_s)
                continue
            answered = outcome.status
            if (
                answered is not None
                and answered < 500
                and answered not in self._policy.retry_statuses
            ):
                raise ActionFailure(  # our request or configuration
                    "INVALID_PROMPT", f"endpoint {name!r} refused to {what} ({problem})"
                ) from None
            why = {
                "attempts_used": f"after {attempt} attempts",
                "wait_too_long": f"the provider asks to wait {decision.wait_s:.0f} s",
            }.get(decision.why, "the provider says another attempt cannot succeed")
            raise ActionFailure(
                "PROVIDER_LIMITATION",
                f"could not {what}: {problem}; {why}",
                retryable=decision.why != "not_retryable",
            ) from None
        raise AssertionError("unreachable")  # itertools.count never ends


def _jsonl(lines: list[_Line]) -> bytes:
    """The batch input file: one request a line, named by its ``custom_id``."""
    return b"".join(
        json.dumps(
            {"custom_id": line.custom_id, "method": "POST", "url": CHAT_PATH, "body": line.request},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for line in lines
    )


def _line_answer(raw: bytes) -> tuple[str, LineAnswer | None] | None:
    """A line of an output or error file: its ``custom_id`` and answer (None: the
    batch did not run the request); None for a line that is not one."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        return None
    custom_id: str = record["custom_id"]
    response = record.get("response")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        body = response.get("body")
        status: int = response["status_code"]
        return custom_id, LineAnswer(status, body if isinstance(body, dict) else {})
    error = record.get("error")
    error = error if isinstance(error, dict) else {}
    if error.get("code") in _NOT_RUN:
        return custom_id, None
    return custom_id, LineAnswer(None, {"error": error})
