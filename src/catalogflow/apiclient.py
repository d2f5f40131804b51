"""``ReadSide`` over a running ``catalogflow api``: the same view models, parsed from JSON.

The token comes from the environment variable ``settings.api_token_env`` names; it is
sent as a bearer token and never printed: an error names the variable, not the value.
An ``ErrorBody`` answer becomes our error type (404 ``NotFound``, 400 ``BadQuery``,
401/403 ``ApiRefused``), so a command handles the API and the database alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from catalogflow.readmodel.views import (
    DEFAULT_PAGE,
    BadQuery,
    CommandAccepted,
    DeadLetterView,
    ErrorBody,
    ModerationQueueItem,
    NotFound,
    Page,
    ProductHistory,
    RunSummary,
    TaskFilter,
    TaskResult,
    WorkflowDetail,
    WorkflowSummary,
    walk_tasks,
)
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings

M = TypeVar("M", bound=BaseModel)
ExportFormat = Literal["csv", "jsonl"]
Params = list[tuple[str, str | int | float | bool | None]]

#: Seconds for one answer; an export streams, so this bounds the wait between chunks.
TIMEOUT_S = 30.0


class ApiUnavailable(CatalogflowError):
    """Nothing answers at the API's address."""


class ApiRefused(CatalogflowError):
    """The API refused the token (401) or the token's role (403)."""


def task_params(filters: TaskFilter) -> Params:
    """The query parameters of a TaskFilter, as the API's tasks and export routes take them."""
    params: Params = [("status", s) for s in filters.status]
    for name, value in (
        ("action", filters.action),
        ("failure_category", filters.failure_category),
        ("confidence_below", filters.confidence_below),
        ("moderation_state", filters.moderation_state),
        ("sync_status", filters.sync_status),
        ("q", filters.q),
    ):
        if value is not None:
            params.append((name, str(value)))
    return params


class ApiReadSide:
    """The read side of the API at ``base_url`` (e.g. ``http://127.0.0.1:8700``)."""

    def __init__(
        self,
        base_url: str,
        token_env: str,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/")
        self.token_env = token_env
        token = (os.environ if environ is None else environ).get(token_env, "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=TIMEOUT_S, transport=transport
        )

    @classmethod
    def for_settings(cls, settings: Settings, url: str | None = None) -> ApiReadSide:
        return cls(url or settings.api_base_url, settings.api_token_env)

    def close(self) -> None:
        self._client.close()

    # ---------------------------------------------------------------- ReadSide

    def healthy(self) -> bool:
        """Whether a catalogflow API answers at the address (no token needed)."""
        try:
            answer = self._client.get("/api/health", timeout=2.0)
            return answer.status_code == 200 and answer.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def workflows(self) -> list[WorkflowSummary]:
        return self._get_list("/api/workflows", WorkflowSummary)

    def workflow(self, workflow_id: str) -> WorkflowDetail:
        return self._get(f"/api/workflows/{_p(workflow_id)}", WorkflowDetail)

    def runs(self, workflow_id: str | None = None) -> list[RunSummary]:
        params = {"workflow_id": workflow_id} if workflow_id else {}
        return self._get_list("/api/runs", RunSummary, params)

    def run(self, run_id: str) -> RunSummary:
        return self._get(f"/api/runs/{_p(run_id)}", RunSummary)

    def tasks(
        self, run_id: str, filters: TaskFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[TaskResult]:
        params = [*task_params(filters), ("limit", str(limit))]
        if cursor is not None:
            params.append(("cursor", cursor))
        return self._get(f"/api/runs/{_p(run_id)}/tasks", Page[TaskResult], params)

    def all_tasks(self, run_id: str, filters: TaskFilter) -> Iterator[TaskResult]:
        return walk_tasks(self, run_id, filters)

    def moderation_queue(
        self,
        workflow_id: str | None = None,
        action_id: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> Page[ModerationQueueItem]:
        params = {"workflow_id": workflow_id, "action_id": action_id, "cursor": cursor}
        params_ = [(k, v) for k, v in params.items() if v is not None] + [("limit", str(limit))]
        return self._get("/api/moderation", Page[ModerationQueueItem], params_)

    def dead_letters(
        self, reason: str | None = None, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[DeadLetterView]:
        params: Params = [("limit", str(limit))]
        params += [("reason", reason)] if reason is not None else []
        params += [("cursor", cursor)] if cursor is not None else []
        return self._get("/api/dead-letters", Page[DeadLetterView], params)

    def dead_letter(self, dead_letter_id: str) -> DeadLetterView:
        return self._get(f"/api/dead-letters/{_p(dead_letter_id)}", DeadLetterView)

    def history(self, sku: str) -> ProductHistory:
        return self._get(f"/api/products/{_p(sku)}/history", ProductHistory)

    # ---------------------------------------------------------- beyond ReadSide

    def replay_dead_letter(self, dead_letter_id: str) -> CommandAccepted:
        """Ask the API to put the dead letter's original bytes back on its topic."""
        path = f"/api/dead-letters/{_p(dead_letter_id)}/replay"
        answer = self._send("POST", path)
        return _parse(CommandAccepted, answer, self.url, path)

    def export(self, run_id: str, filters: TaskFilter, fmt: ExportFormat, out: Path) -> int:
        """Stream the API's export of the run to ``out``; returns the bytes written."""
        path = f"/api/runs/{_p(run_id)}/export.{fmt}"
        written = 0
        try:
            params = task_params(filters)
            with self._client.stream("GET", path, params=params) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    raise self._error(answer, path)
                with out.open("wb") as handle:
                    for chunk in answer.iter_bytes():
                        handle.write(chunk)
                        written += len(chunk)
        except httpx.ConnectError as exc:
            raise self._unavailable(exc) from exc
        except httpx.HTTPError as exc:
            raise CatalogflowError(f"the API at {self.url} failed on {path}: {exc}") from exc
        except OSError as exc:
            raise CatalogflowError(f"cannot write {out}: {exc.strerror}") from exc
        return written

    # ------------------------------------------------------------------- HTTP

    def _get(self, path: str, model: type[M], params: Any = None) -> M:
        return _parse(model, self._send("GET", path, params), self.url, path)

    def _get_list(self, path: str, model: type[M], params: Any = None) -> list[M]:
        answer = self._send("GET", path, params)
        try:
            return TypeAdapter(list[model]).validate_python(answer.json())  # type: ignore[valid-type]
        except (ValueError, ValidationError) as exc:
            raise _not_ours(self.url, path) from exc

    def _send(self, method: str, path: str, params: Any = None) -> httpx.Response:
        try:
            answer = self._client.request(method, path, params=params)
        except httpx.ConnectError as exc:
            raise self._unavailable(exc) from exc
        except httpx.HTTPError as exc:
            raise CatalogflowError(f"the API at {self.url} failed on {path}: {exc}") from exc
        if answer.status_code >= 400:
            raise self._error(answer, path)
        return answer

    def _unavailable(self, exc: Exception) -> ApiUnavailable:
        return ApiUnavailable(
            f"no API answers at {self.url} ({exc}); is `catalogflow api` running?"
        )

    def _error(self, answer: httpx.Response, path: str) -> CatalogflowError:
        try:
            body = ErrorBody.model_validate(answer.json())
            message = body.message
        except (ValueError, ValidationError):
            message = f"HTTP {answer.status_code} on {path}"
        code = answer.status_code
        if code == 404:
            return NotFound(message)
        if code in (400, 409, 422):
            return BadQuery(message)
        if code == 401:
            return ApiRefused(
                f"the API at {self.url} rejected the token in ${self.token_env} "
                f"(missing or unknown): {message}"
            )
        if code == 403:
            return ApiRefused(f"the API at {self.url} refused: {message}")
        return CatalogflowError(f"the API at {self.url} answered {code} on {path}: {message}")


def _parse(model: type[M], answer: httpx.Response, url: str, path: str) -> M:
    try:
        return model.model_validate(answer.json())
    except (ValueError, ValidationError) as exc:
        raise _not_ours(url, path) from exc


def _not_ours(url: str, path: str) -> CatalogflowError:
    return CatalogflowError(
        f"the answer of {url} to {path} is not a catalogflow API's; is that the right address?"
    )


def _p(segment: str) -> str:
    return quote(segment, safe="")
