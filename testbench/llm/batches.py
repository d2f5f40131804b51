"""The LLM simulator's Batch API: files and batches as OpenAI serves them, closely
enough that the ``openai`` client's types parse every answer.

* ``POST /v1/files`` (multipart ``file`` and ``purpose``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``;
* ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window``,
  ``metadata``), ``GET /v1/batches`` (newest first, one page), ``GET /v1/batches/{id}``,
  ``POST /v1/batches/{id}/cancel``.

A batch goes ``validating`` → ``in_progress`` → ``finalizing`` → ``completed``, taking
``batch_delay_s`` in all (a tenth each validating and finalizing); or ``failed`` when
its file does not validate (a line that is not JSON, a missing or repeated
``custom_id``, another method or URL, more than one model or an unknown one with
``reject_unknown_models``) or would push the prompt tokens of the batches in progress
past ``batch_queue_tokens`` (``token_limit_exceeded``, as OpenAI's enqueued-token
limit); ``expired`` after ``batch_expire_after`` lines when that fault is armed (the
next batch with more lines than that expires; one expiry per arming);
``cancelling`` → ``cancelled`` on a cancel. Every line is answered by the simulator's
chat logic (the ``answer`` callable), so a batch answers exactly as live requests do;
``batch_error_share`` of the lines (spread evenly) get a 500 instead. The output file
holds the answered lines (200s) in reverse order — OpenAI documents no order, so a
client must join by ``custom_id`` — and the error file the others, including a
``batch_expired`` or ``batch_cancelled`` line for each request not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from catalogflow.testbench.llm.simulator_text import count_tokens, message_text

log = logging.getLogger(__name__)

__all__ = ["BatchSettings", "BatchStore", "LineAnswerer"]

#: Answers one line's request body: the HTTP status and the body a live request gets.
LineAnswerer = Callable[[Any], tuple[int, dict[str, Any]]]
#: The only endpoint the simulator answers in a batch.
CHAT = "/v1/chat/completions"
MAX_LINES = 50_000
DAY_S = 24 * 3600
_COUNTS = (
    "batches",  # created
    "batch_lines",  # lines answered 200
    "batch_line_errors",  # lines answered with an error
    "batches_expired",
    "batches_failed",
    "batch_prompt_tokens",
    "batch_completion_tokens",
)


class BatchSettings(Protocol):
    """What of the simulator's configuration the Batch API reads."""

    models: tuple[str, ...]
    reject_unknown_models: bool
    batch_delay_s: float
    batch_error_share: float
    batch_queue_tokens: int | None


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.created_at + 30 * DAY_S,
            "status_details": None,
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int
    status: str = "validating"
    at: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, ...
    errors: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    enqueued: int = 0  # prompt tokens it holds in the queue while in progress
    cancel: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self) -> dict[str, Any]:
        stamps = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling")
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + DAY_S,
            **{f"{name}_at": self.at.get(name) for name in (*stamps, "cancelled")},
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


class BatchStore:
    """The files and batches of one simulator, and the tasks that run the batches."""

    def __init__(self, answer: LineAnswerer, settings: Callable[[], BatchSettings]) -> None:
        self._answer = answer
        self._settings = settings
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._expire_after: int | None = None
        self._line_number = 0  # lines answered so far, for the error share
        self.counts: dict[str, int] = dict.fromkeys(_COUNTS, 0)

    def reset(self, expire_after: int | None) -> None:
        """Zero the counters and arm the expiry fault again (files and batches stay)."""
        self.counts = dict.fromkeys(_COUNTS, 0)
        self._line_number = 0
        self._expire_after = expire_after

    def expire_next(self, lines: int | None) -> None:
        """The next batch with more than ``lines`` lines expires after answering that
        many (None: none does)."""
        self._expire_after = lines

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}", self._file)
        app.router.add_get("/v1/files/{file_id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{batch_id}", self._get)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self._cancel)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- handlers -----------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        if (refused := _unauthorized(request)) is not None:
            return refused
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField):
            return _error(400, "Missing required parameter: 'file'.", "file")
        if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data"):
            return _error(400, f"Invalid value for 'purpose': {purpose!r}.", "purpose")
        data = upload.file.read()
        if purpose == "batch" and not upload.filename.endswith(".jsonl"):
            return _error(400, "A file with purpose 'batch' must be a .jsonl file.", "file")
        made = self._store(upload.filename, str(purpose), data)
        return web.json_response(made.json())

    async def _file(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["file_id"])
        if (refused := _unauthorized(request)) is not None:
            return refused
        if found is None:
            return _no_such("file", request.match_info["file_id"])
        return web.json_response(found.json())

    async def _content(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["file_id"])
        if (refused := _unauthorized(request)) is not None:
            return refused
        if found is None:
            return _no_such("file", request.match_info["file_id"])
        return web.Response(body=found.data, content_type="application/octet-stream")

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := _unauthorized(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        if body.get("completion_window") != "24h":
            return _error(
                400, "Invalid value for 'completion_window': only '24h'.", "completion_window"
            )
        if body.get("endpoint") != CHAT:
            return _error(400, f"The simulator runs {CHAT} batches only.", "endpoint")
        source = self._files.get(str(body.get("input_file_id")))
        if source is None or source.purpose != "batch":
            return _error(
                400,
                f"Invalid 'input_file_id': {body.get('input_file_id')!r}. No batch file "
                "with that id.",
                "input_file_id",
            )
        metadata = body.get("metadata")
        batch = _Batch(
            f"batch_{uuid.uuid4().hex[:24]}",
            source.id,
            CHAT,
            metadata if isinstance(metadata, dict) else None,
            int(time.time()),
        )
        self._batches[batch.id] = batch
        self.counts["batches"] += 1
        task = asyncio.create_task(self._run(batch, source.data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(batch.json())

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := _unauthorized(request)) is not None:
            return refused
        data = [b.json() for b in reversed(self._batches.values())]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        page = {"object": "list", "data": data, "first_id": first, "last_id": last}
        return web.json_response(page | {"has_more": False})

    async def _get(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["batch_id"])
        if (refused := _unauthorized(request)) is not None:
            return refused
        if batch is None:
            return _no_such("batch", request.match_info["batch_id"])
        return web.json_response(batch.json())

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self._batches.get(request.match_info["batch_id"])
        if (refused := _unauthorized(request)) is not None:
            return refused
        if batch is None:
            return _no_such("batch", request.match_info["batch_id"])
        if batch.status not in ("validating", "in_progress", "finalizing"):
            return _error(409, f"Cannot cancel a batch with status '{batch.status}'.")
        batch.status = "cancelling"
        batch.at["cancelling"] = int(time.time())
        batch.cancel.set()
        return web.json_response(batch.json())

    # -- running a batch ----------------------------------------------------------------

    async def _run(self, batch: _Batch, data: bytes) -> None:
        try:
            await self._process(batch, data)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave the batch validating for ever
            log.exception("simulated batch %s failed", batch.id)
            self._end(batch, "failed", errors=[_line_error("server_error", "Simulator bug.")])

    async def _process(self, batch: _Batch, data: bytes) -> None:
        settings = self._settings()
        delay = settings.batch_delay_s
        await self._pause(batch, delay * 0.1)
        lines, errors = _validated(data, settings)
        if errors:
            self._end(batch, "failed", errors=errors)
            return
        batch.total = len(lines)
        batch.model = str(lines[0]["body"]["model"]) if lines else None
        tokens = sum(_prompt_tokens(line["body"]) for line in lines)
        limit = settings.batch_queue_tokens
        queued = sum(b.enqueued for b in self._batches.values() if b.status == "in_progress")
        if limit is not None and queued + tokens > limit:
            message = (
                f"Enqueued token limit reached for {batch.model}. Limit: {limit} enqueued "
                f"tokens, {queued} already in progress, this batch {tokens}. Please try "
                "again once some in_progress batches have been completed."
            )
            self._end(batch, "failed", errors=[_line_error("token_limit_exceeded", message)])
            return
        if batch.status == "validating":  # not cancelled meanwhile
            batch.status, batch.enqueued = "in_progress", tokens
            batch.at["in_progress"] = int(time.time())
        expire_after = self._expire_after
        if expire_after is not None and len(lines) > expire_after:
            self._expire_after = None  # this one expires; the fault is spent
        else:
            expire_after = None
        started = asyncio.get_running_loop().time()
        answered: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        ran = 0
        for line in lines:
            if batch.cancel.is_set() or (expire_after is not None and ran >= expire_after):
                break
            status, body = await self._line(line["body"], settings)
            record = {
                "id": f"batch_req_{uuid.uuid4().hex[:24]}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}"}
                | {"body": body},
                "error": None,
            }
            (answered if status == 200 else refused).append(record)
            usage = body.get("usage") if status == 200 else None
            if isinstance(usage, dict):
                batch.input_tokens += int(usage.get("prompt_tokens", 0))
                batch.output_tokens += int(usage.get("completion_tokens", 0))
            ran += 1
        spent = asyncio.get_running_loop().time() - started
        await self._pause(batch, delay * 0.8 - spent)
        ending = "completed"
        if batch.cancel.is_set():
            ending = "cancelled"
        elif ran < len(lines):
            ending = "expired"
        if ending != "completed":
            why = "was cancelled before" if ending == "cancelled" else "expired before it could"
            error = {"code": f"batch_{ending}", "message": f"The batch {why} run this request."}
            refused.extend(
                {
                    "id": f"batch_req_{uuid.uuid4().hex[:24]}",
                    "custom_id": line["custom_id"],
                    "response": None,
                    "error": error,
                }
                for line in lines[ran:]
            )
        if ending != "cancelled":
            batch.status = "finalizing"
            batch.at["finalizing"] = int(time.time())
            await asyncio.sleep(max(0.0, delay * 0.1))
        batch.enqueued = 0
        batch.completed, batch.failed = len(answered), len(refused)
        if answered:
            batch.output_file_id = self._jsonl("output", reversed(answered)).id
        if refused:
            batch.error_file_id = self._jsonl("errors", refused).id
        self._end(batch, ending)

    async def _pause(self, batch: _Batch, seconds: float) -> None:
        """Wait ``seconds``, or less when the batch is cancelled."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.cancel.wait(), seconds)

    async def _line(self, body: Any, settings: BatchSettings) -> tuple[int, dict[str, Any]]:
        self._line_number += 1
        n, share = self._line_number, settings.batch_error_share
        if math.floor(n * share) > math.floor((n - 1) * share):
            self.counts["batch_line_errors"] += 1
            error = {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
            return 500, {"error": error}
        # Generating is CPU work: on a thread it holds up no other request.
        status, answer = await asyncio.to_thread(self._answer, body)
        if status == 200:
            usage = answer.get("usage") or {}
            self.counts["batch_lines"] += 1
            self.counts["batch_prompt_tokens"] += int(usage.get("prompt_tokens", 0))
            self.counts["batch_completion_tokens"] += int(usage.get("completion_tokens", 0))
        else:
            self.counts["batch_line_errors"] += 1
        return status, answer

    def _end(self, batch: _Batch, status: str, errors: list[dict[str, Any]] | None = None) -> None:
        batch.status = status
        batch.at[status] = int(time.time())
        batch.errors = errors or []
        batch.enqueued = 0
        if status in ("failed", "expired"):
            self.counts[f"batches_{status}"] += 1

    def _jsonl(self, kind: str, records: Any) -> _File:
        data = b"".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for r in records
        )
        return self._store(f"batch_{kind}.jsonl", "batch_output", data)

    def _store(self, filename: str, purpose: str, data: bytes) -> _File:
        made = _File(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, data, int(time.time()))
        self._files[made.id] = made
        return made


def _validated(
    data: bytes, settings: BatchSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's lines, or why it does not validate (OpenAI's error shapes)."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            errors.append(_line_error("invalid_json_line", "This line is not valid JSON.", number))
            continue
        custom_id, body = line.get("custom_id"), line.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(_line_error("missing_required_parameter", "No custom_id.", number))
        elif custom_id in seen:
            message = f"The custom_id {custom_id!r} is not unique in the file."
            errors.append(_line_error("duplicate_custom_id", message, number))
        elif line.get("method") != "POST" or line.get("url") != CHAT:
            message = f"Every line must be a POST to {CHAT}, as the batch's endpoint."
            errors.append(_line_error("mismatched_endpoint", message, number))
        elif not isinstance(body, dict) or not isinstance(body.get("model"), str):
            errors.append(_line_error("missing_required_parameter", "No body.model.", number))
        else:
            seen.add(custom_id)
            models.add(body["model"])
            if settings.reject_unknown_models and body["model"] not in settings.models:
                message = f"The model {body['model']!r} does not exist or you do not have access."
                errors.append(_line_error("model_not_found", message, number))
            lines.append(line)
    if len(models) > 1:
        message = f"A batch takes one model; this file names {', '.join(sorted(models))}."
        errors.append(_line_error("mismatched_model", message))
    if not lines and not errors:
        errors.append(_line_error("empty_file", "The input file holds no requests."))
    if len(lines) > MAX_LINES:
        errors.append(_line_error("too_many_requests", f"At most {MAX_LINES} requests."))
    return lines, errors[:100]


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(count_tokens(message_text(m)) for m in messages if isinstance(m, dict))


def _line_error(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _unauthorized(request: web.Request) -> web.Response | None:
    """Any bearer token is accepted; it is never logged or echoed."""
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    return _error(401, "You didn't provide an API key.", code="invalid_api_key")


def _no_such(kind: str, name: str) -> web.Response:
    return _error(404, f"No such {kind}: {name!r}.", code=f"{kind}_not_found")


def _error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> web.Response:
    """An error answer shaped as the simulator's (and OpenAI's) others."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return web.json_response(body, status=status)
