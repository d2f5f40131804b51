"""Query parameters a route does not know are a 400 naming them, not silently ignored."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from catalogflow.readmodel.views import BadQuery


def only(*names: str) -> Any:
    """A dependency refusing any query parameter but ``names``."""
    allowed = frozenset(names)

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadQuery(f"unknown query parameter {unknown[0]!r} (known: {known})")

    return Depends(check)
