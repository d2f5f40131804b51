"""The result cache in a Faust table, next to the product it belongs to.

Every lookup counts as a hit or a miss in ``catalogflow_llm_cache_requests_total``.

Rows are keyed ``<sku>@<cache key>`` and live on the SKU's partition, so the action
agent that handles the product reads and writes them locally, and a restarted or
moved worker gets them back from the changelog.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from catalogflow.connectors.llm.provider import Completion
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.model import CACHE_REQUESTS


class TableCache:
    def __init__(self, table: Any, sku: str) -> None:
        self._table = table
        self._sku = sku

    def get(self, key: str) -> Completion | None:
        row = self._table.get(f"{self._sku}@{key}")
        metrics().inc(CACHE_REQUESTS, result="miss" if row is None else "hit")
        if row is None:
            return None
        logprobs = row["token_logprobs"]
        return Completion(
            data=json.loads(row["content"]),
            content=row["content"],
            token_logprobs=(
                [(t["token"], t["logprob"]) for t in logprobs] if logprobs is not None else None
            ),
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost=row["cost"],
            model=row["model"],
            attempts=0,
            latency_s=0.0,
        )

    def put(self, key: str, prompt_version: str, completion: Completion) -> None:
        self._table[f"{self._sku}@{key}"] = {
            "key": key,
            "model": completion.model,
            "prompt_version": prompt_version,
            "content": completion.content,
            "token_logprobs": (
                [{"token": t, "logprob": p} for t, p in completion.token_logprobs]
                if completion.token_logprobs is not None
                else None
            ),
            "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens,
            "cost": completion.cost,
            "created_at": datetime.now(UTC),
        }
