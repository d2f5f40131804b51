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
from catalogflow.streams.records import LlmResult


class TableCache:
    def __init__(self, table: Any, sku: str) -> None:
        self._table = table
        self._sku = sku

    def get(self, key: str) -> Completion | None:
        row: LlmResult | None = self._table.get(f"{self._sku}@{key}")
        metrics().inc(CACHE_REQUESTS, result="miss" if row is None else "hit")
        if row is None:
            return None
        return Completion(
            data=json.loads(row["content"]),
            content=row["content"],
            token_logprobs=_logprobs(row),
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
            "token_logprobs": None,
            "logprob_tokens": [token for token, _ in completion.token_logprobs or ()],
            "logprob_values": [value for _, value in completion.token_logprobs or ()],
            "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens,
            "cost": completion.cost,
            "created_at": datetime.now(UTC),
        }


def _logprobs(row: LlmResult) -> list[tuple[str, float]] | None:
    """The answer's token log probabilities: two arrays since version 2 of the row,
    records before; None when the endpoint gave none (no answer has zero tokens)."""
    if row["token_logprobs"] is not None:
        return [(t["token"], t["logprob"]) for t in row["token_logprobs"]]
    if not row["logprob_tokens"]:
        return None
    return list(zip(row["logprob_tokens"], row["logprob_values"], strict=True))
