"""Reads a running worker's HTTP views, for the worker harness, the tests and the benchmarks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from catalogflow.streams.errors import CatalogflowError


class WorkerClient:
    """Reads a worker's HTTP views: the decoded JSON answer, error answers included."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> Any:
        body = self._fetch(path)
        try:
            return json.loads(body)
        except ValueError:
            raise CatalogflowError(
                f"worker at {self.url} gave no JSON for {path}; is that a catalogflow worker?"
            ) from None

    def get_text(self, path: str) -> str:
        """A page that is not JSON (``/metrics``), as text."""
        return self._fetch(path).decode()

    def _fetch(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=self.timeout) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        except OSError as exc:
            raise CatalogflowError(f"worker at {self.url} did not answer {path}: {exc}") from exc
        return body
