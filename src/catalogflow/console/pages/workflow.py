"""The workflow page: the chain left to right (trigger, each action, sync) as cards
with the latest run's counts, the run controls (admin), the trigger rules with the
live match count and the cost estimate, and a dry run on a few sample products.

The buttons call the JSON API's own route functions, so a click publishes exactly
the command ``POST /api/...`` would; htmx swaps the refreshed chain in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from catalogflow.api.deps import settings_of
from catalogflow.api.routes import commands
from catalogflow.api.writes import Publish, Queries
from catalogflow.console.session import PostedForm, Session, form_posted, signed_in
from catalogflow.console.templating import render
from catalogflow.dryrun import dry_run, estimate, live_products, matching
from catalogflow.progress import ActionProgress, RunProgress, action_progress, run_progress
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import RunSummary, WorkflowDetail
from catalogflow.streams.actions import load_registry
from catalogflow.streams.definitions import (
    ActionSpec,
    DefinitionError,
    WorkflowDefinition,
    parse_definition,
)
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import CommandKind
from catalogflow.streams.settings import Settings

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Session, signed_in("viewer")]
AdminForm = Annotated[PostedForm, form_posted("admin")]
EditorForm = Annotated[PostedForm, form_posted("editor")]
SettingsDep = Annotated[Settings, Depends(settings_of)]

#: Products a dry run from the page tries at most.
MAX_SAMPLE = 10
CONTROLS: dict[str, CommandKind] = {"pause": "PAUSE", "resume": "RESUME", "stop": "STOP"}


@dataclass(frozen=True)
class ActionCard:
    spec: ActionSpec
    progress: ActionProgress | None


@dataclass(frozen=True)
class Chain:
    """What the chain fragment shows (refreshed every few seconds while a run goes)."""

    detail: WorkflowDetail
    definition: WorkflowDefinition | None
    problem: str | None  # why the stored definition could not be read back
    run: RunSummary | None
    progress: RunProgress | None
    actions: list[ActionCard]
    trigger_yaml: str


def chain(queries: ReadModelQueries, workflow_id: str) -> Chain:
    detail = queries.workflow(workflow_id)
    runs = queries.runs(workflow_id)
    run = runs[0] if runs else None
    text = detail.versions[0].definition if detail.versions else ""
    definition, problem = _definition(detail, text)
    per_action = {p.action_id: p for p in action_progress(run)} if run else {}
    actions = (
        [ActionCard(s, per_action.get(s.id)) for s in definition.actions] if definition else []
    )
    return Chain(
        detail=detail,
        definition=definition,
        problem=problem,
        run=run,
        progress=run_progress(run) if run else None,
        actions=actions,
        trigger_yaml=_trigger_yaml(text),
    )


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
def workflow_page(
    request: Request, workflow_id: str, session: Viewer, queries: Queries
) -> Response:
    return render(request, "workflow.html", session, chain=chain(queries, workflow_id))


@router.get("/workflows/{workflow_id}/fragments/chain", response_class=HTMLResponse)
def chain_fragment(
    request: Request, workflow_id: str, session: Viewer, queries: Queries
) -> Response:
    return render(request, "workflow_chain.html", session, chain=chain(queries, workflow_id))


@router.get("/workflows/{workflow_id}/fragments/matches", response_class=HTMLResponse)
def matches_fragment(
    request: Request, workflow_id: str, session: Viewer, queries: Queries, settings: SettingsDep
) -> Response:
    """The live match count and the cost estimate (read from the products changelog)."""
    found = chain(queries, workflow_id)
    if found.definition is None:
        return render(request, "workflow_matches.html", session, problem=found.problem)
    try:
        products = matching(found.definition, live_products(settings))
        cost = estimate(load_registry(settings), found.definition, products)
    except CatalogflowError as exc:
        return render(request, "workflow_matches.html", session, problem=str(exc))
    return render(request, "workflow_matches.html", session, problem=None, estimate=cost)


@router.post("/workflows/{workflow_id}/run", response_class=HTMLResponse)
def run(
    request: Request, workflow_id: str, form: AdminForm, publisher: Publish, queries: Queries
) -> Response:
    budget = _budget(form.get("budget"))
    accepted = commands.run(
        workflow_id, form.session.caller, publisher, queries, commands.RunRequest(budget=budget)
    )
    return _after(request, workflow_id, form.session, queries, f"Run {accepted.run_id} started.")


@router.post("/runs/{run_id}/{control}", response_class=HTMLResponse)
def control(
    request: Request,
    run_id: str,
    control: str,
    form: AdminForm,
    publisher: Publish,
    queries: Queries,
) -> Response:
    if control == "retry-failed":
        accepted = commands.retry_failed(run_id, form.session.caller, publisher, queries)
        said = "Retry of the failed tasks sent."
    elif control in CONTROLS:
        accepted = commands.send_control(
            CONTROLS[control], run_id, form.session.caller, publisher, queries
        )
        said = f"{CONTROLS[control].title()} sent."
    else:
        raise HTTPException(404, f"no run control {control!r}")
    assert accepted.workflow_id is not None
    return _after(request, accepted.workflow_id, form.session, queries, said)


@router.post("/workflows/{workflow_id}/dry-run", response_class=HTMLResponse)
def dry_run_page(
    request: Request, workflow_id: str, form: EditorForm, queries: Queries, settings: SettingsDep
) -> Response:
    """The chain on the first few matching products, with the model for real; writes
    nothing (``catalogflow workflow dry-run``'s step runner)."""
    found = chain(queries, workflow_id)
    sample = _sample(form.get("sample"))
    if found.definition is None:
        raise HTTPException(409, found.problem or "the workflow's definition cannot be read")
    try:
        products = matching(found.definition, live_products(settings))[:sample]
        results = dry_run(load_registry(settings), found.definition.actions, products)
    except CatalogflowError as exc:
        raise HTTPException(503, str(exc)) from None
    return render(request, "workflow_dryrun.html", form.session, results=results)


def _after(
    request: Request, workflow_id: str, session: Session, queries: ReadModelQueries, said: str
) -> Response:
    if request.headers.get("HX-Request") != "true":
        return RedirectResponse(f"/workflows/{workflow_id}", status_code=303)
    return render(
        request, "workflow_chain.html", session, chain=chain(queries, workflow_id), flash=said
    )


def _definition(detail: WorkflowDetail, text: str) -> tuple[WorkflowDefinition | None, str | None]:
    types = [a.type for a in detail.workflow.actions]
    try:
        definition = parse_definition(text, detail.workflow.workflow_id, types)
    except DefinitionError as exc:
        return None, str(exc)
    return definition, None


def _trigger_yaml(text: str) -> str:
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return ""
    trigger = document.get("trigger") if isinstance(document, dict) else None
    return yaml.safe_dump(trigger, sort_keys=False, allow_unicode=True) if trigger else ""


def _budget(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        budget = float(text)
    except ValueError:
        raise HTTPException(400, f"budget must be a number, got {text!r}") from None
    if not budget > 0:
        raise HTTPException(400, "budget must be more than 0")
    return budget


def _sample(text: str | None) -> int:
    if text is None:
        return 3
    if not text.isdigit() or not 1 <= int(text) <= MAX_SAMPLE:
        raise HTTPException(400, f"sample must be a whole number from 1 to {MAX_SAMPLE}")
    return int(text)
