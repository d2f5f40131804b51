"""The moderation queue: each pending item's source and generated values side by side
(a word diff where a text existed), reasoning, confidence and evidence per field;
approve, reject, edit and regenerate per field and per item; batch decisions over
the current filter; riskiest first; the decisions so far, with who and when.

Decisions go through the API's own ``decide`` (the same checks, the same signed
event). The read model learns of a decision only once the pipeline has folded it,
so the console remembers the whole-item decisions it sent for a few minutes: the
queue marks those items as sent and a batch skips them, so nothing is decided twice
(a second decision would be a dead letter)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from catalogflow.api.auth import ApiRole, Caller
from catalogflow.api.routes.decisions import DecisionRequest, decide
from catalogflow.api.writes import Publish, Queries
from catalogflow.console.session import PostedForm, Session, form_posted, signed_in
from catalogflow.console.templating import render
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import MAX_PAGE, ModerationQueueItem
from catalogflow.streams.records import DecisionKind

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Session, signed_in("viewer")]
EditorForm = Annotated[PostedForm, form_posted("editor")]

PAGE_SIZE = 20
DECISIONS = ("APPROVE", "REJECT", "EDIT", "REGENERATE")
#: How long a sent whole-item decision is remembered (the pipeline folds it in seconds).
REMEMBER_S = 600.0


@dataclass(frozen=True)
class Sent:
    decision: str
    user: str
    role: ApiRole
    at: float

    def settles(self, second_approval: bool, role: ApiRole) -> bool:
        """Whether a person of ``role`` is done with the item once this was sent: an
        editor's approval of an item that needs a moderator's leaves it to one."""
        if self.decision != "APPROVE" or not second_approval:
            return True
        moderator_sent = Caller(self.user, self.role).may("moderator")
        return moderator_sent or not Caller("", role).may("moderator")


class SentDecisions:
    """Whole-item decisions this process sent, by item id, until they age out."""

    def __init__(self) -> None:
        self._sent: dict[str, Sent] = {}
        self._lock = threading.Lock()

    def add(self, item_id: str, decision: str, session: Session) -> None:
        with self._lock:
            self._prune()
            self._sent[item_id] = Sent(decision, session.user, session.role, time.monotonic())

    def blocking(self, item_id: str, second_approval: bool, role: ApiRole) -> Sent | None:
        """What was sent for the item, if that leaves nothing for ``role`` to decide."""
        with self._lock:
            self._prune()
            sent = self._sent.get(item_id)
        return sent if sent is not None and sent.settles(second_approval, role) else None

    def _prune(self) -> None:
        cutoff = time.monotonic() - REMEMBER_S
        for item_id in [i for i, s in self._sent.items() if s.at < cutoff]:
            del self._sent[item_id]


def sent_of(request: Request) -> SentDecisions:
    state = request.app.state
    if not hasattr(state, "sent_decisions"):
        state.sent_decisions = SentDecisions()
    sent: SentDecisions = state.sent_decisions
    return sent


@router.get("/moderation", response_class=HTMLResponse)
def queue(
    request: Request,
    session: Viewer,
    queries: Queries,
    workflow_id: str | None = None,
    action_id: str | None = None,
    cursor: str | None = None,
) -> Response:
    workflow_id, action_id = workflow_id or None, action_id or None
    page = queries.moderation_queue(workflow_id, action_id, cursor, PAGE_SIZE)
    sent = sent_of(request)
    return render(
        request,
        "moderation.html",
        session,
        page=page,
        sent={
            i.item_id: s
            for i in page.items
            if (s := sent.blocking(i.item_id, i.requires_second_approval, session.role))
        },
        workflow_id=workflow_id or "",
        action_id=action_id or "",
        workflows=[w.workflow_id for w in queries.workflows()],
        sources={i.item_id: _sources(i) for i in page.items},
    )


@router.post("/moderation/batch", response_class=HTMLResponse)
def batch(form: EditorForm, request: Request, publisher: Publish, queries: Queries) -> Response:
    """One decision (APPROVE or REJECT) on every pending item of the current filter,
    except those already decided from this console."""
    given = form.get("decision")
    if given not in ("APPROVE", "REJECT"):
        raise HTTPException(400, "a batch decision is APPROVE or REJECT")
    kind: DecisionKind = "APPROVE" if given == "APPROVE" else "REJECT"
    workflow_id, action_id = form.get("workflow_id"), form.get("action_id")
    sent = sent_of(request)
    decided = skipped = 0
    for item in list(_all_pending(queries, workflow_id, action_id)):
        if sent.blocking(item.item_id, item.requires_second_approval, form.session.role):
            skipped += 1
            continue
        try:
            decide(
                item.item_id,
                DecisionRequest(decision=kind),
                form.session.caller,
                publisher,
                queries,
            )
        except HTTPException as exc:
            if exc.status_code != 409:  # 409: decided meanwhile, by someone else
                raise
            skipped += 1
            continue
        sent.add(item.item_id, kind, form.session)
        decided += 1
    query = "&".join(
        f"{k}={v}" for k, v in (("workflow_id", workflow_id), ("action_id", action_id)) if v
    )
    if request.headers.get("HX-Request") == "true":
        return render(
            request,
            "moderation_batch.html",
            form.session,
            decision=kind,
            decided=decided,
            skipped=skipped,
        )
    return RedirectResponse(f"/moderation?{query}", status_code=303)


@router.post("/moderation/{item_id}/decide", response_class=HTMLResponse)
def decide_item(
    item_id: str, form: EditorForm, request: Request, publisher: Publish, queries: Queries
) -> Response:
    kind = form.get("decision")
    if kind not in DECISIONS:
        raise HTTPException(400, f"decision must be one of {', '.join(DECISIONS)}")
    field, locale = form.get("field"), form.get("locale")
    whole_item = field is None and kind != "EDIT"
    sent = sent_of(request)
    pending = queries.pending_item(item_id)
    second_approval = pending["requires_second_approval"]
    already = sent.blocking(item_id, second_approval, form.session.role)
    if whole_item and already is not None:
        raise HTTPException(409, f"{already.decision} was sent for this item already")
    value: Any = None
    if kind == "EDIT":
        value = _typed(form.fields.get("value", ""), form.get("value_kind"))
    body = DecisionRequest(
        decision=kind,  # type: ignore[arg-type]  # checked above
        field=field,
        locale=locale,
        value=value,
        feedback=form.get("feedback"),
    )
    decide(item_id, body, form.session.caller, publisher, queries)
    if whole_item:
        sent.add(item_id, kind, form.session)
    if request.headers.get("HX-Request") != "true":
        return RedirectResponse("/moderation", status_code=303)
    template = "moderation_sent.html" if whole_item else "moderation_field_sent.html"
    return render(
        request,
        template,
        form.session,
        item_id=item_id,
        sku=pending["sku"],
        decision=kind,
        field=field,
        locale=locale,
        value=value,
        feedback=body.feedback,
    )


def _all_pending(
    queries: ReadModelQueries, workflow_id: str | None, action_id: str | None
) -> Iterator[ModerationQueueItem]:
    cursor = None
    while True:
        page = queries.moderation_queue(workflow_id, action_id, cursor, MAX_PAGE)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _sources(item: ModerationQueueItem) -> dict[str, Any]:
    """``field@locale`` (or ``field``) -> the product's value now, for the side by side."""
    out: dict[str, Any] = {}
    for source in item.source_values:
        key = f"{source.attribute}@{source.locale}" if source.locale else source.attribute
        out.setdefault(key, source.value)
    return out


def _typed(text: str, kind: str | None) -> str | bool | int | float | list[str]:
    """A form's text as the type of the value it replaces (the form says which)."""
    text = text.strip()
    if kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind == "bool":
        if text.lower() not in ("yes", "no", "true", "false"):
            raise HTTPException(400, "this field is yes or no")
        return text.lower() in ("yes", "true")
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise HTTPException(400, f"this field is a number, got {text!r}") from None
    return text
