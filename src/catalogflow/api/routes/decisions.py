"""The reviewer's write route: a decision on a pending moderation item (role editor).

The decision records the token's user and the role its API role maps to; a
moderator's (or an admin's) approval counts as the second, moderator approval, an
editor's never does. Checked like the CLI's (``streams.review.decision``) and
published through the same function, signed when the API holds the key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from catalogflow.api.auth import ApiRole, Caller, require
from catalogflow.api.writes import Publish, Queries, unavailable
from catalogflow.readmodel.queries import Decided
from catalogflow.readmodel.views import CommandAccepted, ErrorBody, NotFound
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import DecisionKind, Role
from catalogflow.streams.review import decision as build_decision

Editor = Annotated[Caller, require("editor")]

router = APIRouter(tags=["moderation"])

#: The Actor role a decision records for each API role that may decide.
ACTOR_ROLES: dict[ApiRole, Role] = {"editor": "EDITOR", "moderator": "MODERATOR", "admin": "ADMIN"}


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    field: str | None = Field(default=None, description="one field; none = the whole item")
    locale: str | None = Field(default=None, description="with field: only this locale")
    value: str | bool | int | float | list[str] | None = Field(
        default=None, description="the new value, for EDIT"
    )
    feedback: str | None = Field(default=None, description="for the action, for REGENERATE")


@router.post(
    "/api/moderation/{item_id}/decisions",
    status_code=202,
    response_model=CommandAccepted,
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 503)},
)
def decide(
    item_id: str,
    body: DecisionRequest,
    caller: Editor,
    publisher: Publish,
    queries: Queries,
) -> CommandAccepted:
    """Decide on a pending item: 404 for an unknown item, 409 for one already decided."""
    try:
        item = queries.pending_item(item_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Decided as exc:
        raise HTTPException(409, str(exc)) from None
    try:
        record = build_decision(
            item,
            body.decision,
            actor=caller.user,
            role=actor_role(caller.role),
            field=body.field,
            locale=body.locale,
            value=body.value,
            feedback=body.feedback,
        )
    except CatalogflowError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        publisher.decide(record)
    except CatalogflowError as exc:
        raise unavailable(exc) from None
    return CommandAccepted(
        command_id=record["decision_id"],
        kind=body.decision,
        workflow_id=item["workflow_id"],
        run_id=item["run_id"],
    )


def actor_role(role: ApiRole) -> Role:
    """The decision's role for an API role (a viewer never gets here)."""
    return ACTOR_ROLES.get(role, "EDITOR")
