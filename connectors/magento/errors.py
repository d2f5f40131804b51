"""The one error the Magento connector raises, with the category a SyncResult reports.

Magento answers errors as ``{"message": "...%1...", "parameters": [...]}`` (positional)
or ``{"message": "...%name...", "parameters": {...}}`` (named); :func:`render_message`
substitutes them so the text a person reads is the one the Magento admin would show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from catalogflow.streams.errors import CatalogflowError

ErrorCategory = Literal[
    "MISSING_REQUIRED_ATTRIBUTE",
    "INVALID_OPTION_VALUE",
    "DUPLICATE_URL_KEY",
    "AUTH",
    "CONNECTION",
    "OTHER",
]
ERROR_CATEGORIES: tuple[ErrorCategory, ...] = get_args(ErrorCategory)

_PLACEHOLDER = re.compile(r"%(\d+|[A-Za-z_][A-Za-z0-9_]*)")


class MagentoError(CatalogflowError):
    """Magento refused a call, or could not be reached.

    ``category`` says why, in SyncResult's terms; ``status`` is the HTTP status (None:
    no answer); ``retryable`` is true when the same call may succeed later (the
    connection, 5xx, 429, deadlocks) after the client's own retries ran out.
    """

    def __init__(
        self,
        category: ErrorCategory,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.category: ErrorCategory = category
        self.message = message
        self.status = status
        self.retryable = retryable


def render_message(message: str, parameters: Any) -> str:
    """Magento's phrase with ``%1``… taken from a list and ``%name`` from a mapping."""
    if isinstance(parameters, list):
        by_key = {str(i + 1): value for i, value in enumerate(parameters)}
    elif isinstance(parameters, Mapping):
        by_key = {str(k): value for k, value in parameters.items()}
    else:
        return message

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        return str(by_key[key]) if key in by_key else match.group(0)

    return _PLACEHOLDER.sub(substitute, message)
