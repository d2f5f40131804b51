"""Write routes for workflows, runs and dead letters (role admin): each publishes the
event the CLI would (through :mod:`catalogflow.api.writes`) and answers 202 with the
command's id once the broker has it. Unknown workflows, runs and dead letters are 404."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from catalogflow.api.auth import Caller, require
from catalogflow.api.deps import settings_of
from catalogflow.api.writes import Publish, Publisher, Queries, unavailable
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import CommandAccepted, ErrorBody, NotFound
from catalogflow.streams.definitions import DefinitionError, parse_definition
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import CommandKind, FailureCategory
from catalogflow.streams.replay import logical_topic
from catalogflow.streams.settings import Settings

Admin = Annotated[Caller, require("admin")]

router = APIRouter(tags=["commands"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 503)
}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is a 400, not ignored


class ApplyRequest(Body):
    definition: str = Field(description="the workflow definition, as YAML text")
    allow_types: list[str] = Field(
        default_factory=list, description="action types from plug-ins to accept unchecked"
    )


class RunRequest(Body):
    budget: float | None = Field(
        default=None, gt=0, description="the run pauses itself when its model cost reaches it"
    )


class RetryRequest(Body):
    category: FailureCategory | None = None
    action: str | None = Field(default=None, description="an action id; `sync` = write-back")


@router.post("/api/workflows", status_code=202, response_model=CommandAccepted, responses=ERRORS)
def apply(
    body: ApplyRequest,
    caller: Admin,
    publisher: Publish,
) -> CommandAccepted:
    """Validate a definition and publish it as the workflow's next version (an
    unchanged definition keeps its version). The id is ``<workflow>.v<version>``."""
    try:
        definition = parse_definition(body.definition, "api", body.allow_types)
    except DefinitionError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        version, _new = publisher.apply(definition, "api", caller.user)
    except CatalogflowError as exc:
        raise unavailable(exc) from None
    return CommandAccepted(
        command_id=f"{definition.id}.v{version['version']}",
        kind="APPLY",
        workflow_id=definition.id,
    )


@router.post(
    "/api/workflows/{workflow_id}/runs",
    status_code=202,
    response_model=CommandAccepted,
    responses=ERRORS,
)
def run(
    workflow_id: str,
    caller: Admin,
    publisher: Publish,
    queries: Queries,
    body: RunRequest | None = None,
) -> CommandAccepted:
    """Start a run of the workflow's latest applied version."""
    _known_workflow(queries, workflow_id)
    command_id = uuid.uuid4().hex
    budget = body.budget if body is not None else None
    try:
        run_id = publisher.run(workflow_id, caller.user, budget, command_id)
    except CatalogflowError as exc:
        raise unavailable(exc) from None
    return CommandAccepted(
        command_id=command_id, kind="RUN", workflow_id=workflow_id, run_id=run_id
    )


def send_control(
    kind: CommandKind, run_id: str, caller: Caller, publisher: Publisher, queries: ReadModelQueries
) -> CommandAccepted:
    """PAUSE, RESUME or STOP to a run (the console's buttons call this too)."""
    workflow_id = _workflow_of(queries, run_id)
    command_id = uuid.uuid4().hex
    try:
        publisher.control(workflow_id, run_id, kind, caller.user, command_id)
    except CatalogflowError as exc:
        raise unavailable(exc) from None
    return CommandAccepted(command_id=command_id, kind=kind, workflow_id=workflow_id, run_id=run_id)


def _control(kind: CommandKind) -> object:
    def control(
        run_id: str,
        caller: Admin,
        publisher: Publish,
        queries: Queries,
    ) -> CommandAccepted:
        return send_control(kind, run_id, caller, publisher, queries)

    control.__name__ = kind.lower()
    control.__doc__ = f"Send {kind} to a run."
    return control


for _kind, _path in (("PAUSE", "pause"), ("RESUME", "resume"), ("STOP", "stop")):
    router.add_api_route(
        f"/api/runs/{{run_id}}/{_path}",
        _control(_kind),  # type: ignore[arg-type]  # a route function built per command
        methods=["POST"],
        status_code=202,
        response_model=CommandAccepted,
        responses=ERRORS,
    )


@router.post(
    "/api/runs/{run_id}/retry-failed",
    status_code=202,
    response_model=CommandAccepted,
    responses=ERRORS,
)
def retry_failed(
    run_id: str,
    caller: Admin,
    publisher: Publish,
    queries: Queries,
    body: RetryRequest | None = None,
) -> CommandAccepted:
    """Run the run's Error tasks again from where they failed (optionally one failure
    category, one action)."""
    workflow_id = _workflow_of(queries, run_id)
    wanted = body or RetryRequest()
    command_id = uuid.uuid4().hex
    try:
        publisher.retry(
            workflow_id, run_id, caller.user, wanted.category, wanted.action, command_id
        )
    except CatalogflowError as exc:
        raise unavailable(exc) from None
    return CommandAccepted(
        command_id=command_id, kind="RETRY_FAILED", workflow_id=workflow_id, run_id=run_id
    )


@router.post(
    "/api/dead-letters/{dead_letter_id}/replay",
    status_code=202,
    response_model=CommandAccepted,
    responses=ERRORS,
)
def replay(
    dead_letter_id: str,
    caller: Admin,
    publisher: Publish,
    queries: Queries,
    settings: Annotated[Settings, Depends(settings_of)],
) -> CommandAccepted:
    """Send a dead letter's original key and value bytes back to its source topic."""
    try:
        letter = queries.dead_letter_record(dead_letter_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    try:
        logical_topic(settings, letter["source_topic"])  # ours, or a 400
    except CatalogflowError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        publisher.replay(letter)
    except CatalogflowError as exc:
        raise unavailable(exc) from None
    return CommandAccepted(command_id=uuid.uuid4().hex, kind="REPLAY")


def _known_workflow(queries: ReadModelQueries, workflow_id: str) -> None:
    try:
        queries.workflow(workflow_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _workflow_of(queries: ReadModelQueries, run_id: str) -> str:
    try:
        return queries.run(run_id).workflow_id
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
