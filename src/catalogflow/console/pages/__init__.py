"""One module per console page (or group of pages), each an APIRouter; a new page is a
module and a line here."""

from __future__ import annotations

from fastapi import APIRouter

from catalogflow.console.pages import history, moderation, overview, results, signin, workflow

PAGES: list[APIRouter] = [
    signin.router,
    overview.router,
    workflow.router,
    results.router,
    moderation.router,
    history.router,
]
