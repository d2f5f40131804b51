"""The console's Jinja2 environment: every value autoescaped, and the filters the
templates share. Product and model text is shown only through ``{{ }}``, never marked
safe, so supplier HTML or script arrives in the browser as text."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from catalogflow import __version__
from catalogflow.console.session import CSRF_FIELD, CSRF_HEADER, Session
from catalogflow.console.worddiff import word_diff

HERE = Path(__file__).resolve().parent  # the real folder (an editable install links files)
#: Below this a field's confidence is flagged in the Results tab and the queue.
LOW_CONFIDENCE = 0.7


def _confidence(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _value_kind(value: Any) -> str:
    """How an edit form's text becomes the field's type again (pages/moderation.py)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "list" if isinstance(value, list) else "text"


def _field_name(field: str, locale: str | None) -> str:
    return f"{field}@{locale}" if locale else field


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    confidence=_confidence,
    when=_when,
    value=_value,
    value_kind=_value_kind,
    word_diff=word_diff,
    field_name=_field_name,
)
environment.globals.update(
    LOW_CONFIDENCE=LOW_CONFIDENCE, CSRF_FIELD=CSRF_FIELD, version=__version__
)
templates = Jinja2Templates(env=environment)


def render(
    request: Request,
    name: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page or fragment; ``session`` gives the nav, the role checks and the CSRF token."""
    headers = {CSRF_HEADER: session.csrf} if session is not None else {}
    return templates.TemplateResponse(
        request,
        name,
        {
            "session": session,
            "htmx_headers": json.dumps(headers),
            "fragment": request.headers.get("HX-Request") == "true",
            **context,
        },
        status_code=status_code,
    )
