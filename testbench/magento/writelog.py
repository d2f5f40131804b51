"""The write log: every product save made through the simulated API, for tests to read."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WriteLogEntry:
    """One product save made through the API (sync, or an async operation when consumed).

    ``attributes`` holds the attribute codes the request sent (top-level ``name``,
    ``price``, ``status``, ``visibility``, ``weight`` and ``custom_attributes``, plus
    ``category_ids`` when links were sent) with their values as sent; unknown codes,
    which Magento ignores, are left out."""

    method: str
    path: str
    store: str
    sku: str
    attributes: dict[str, Any]


class WriteLog:
    """The saves in order; ``entries`` is a copy, so a reader never sees one half-written."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._entries: list[WriteLogEntry] = []

    def append(self, entry: WriteLogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[WriteLogEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
