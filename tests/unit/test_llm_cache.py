"""The result cache's rows (``streams/llmcache.py``) through the real codec: an answer's
token log probabilities come back as they went in, from rows written now (two arrays)
and from rows version 1 wrote (an array of records)."""

from __future__ import annotations

import io
import json
from importlib import resources
from typing import Any

import fastavro
from catalogflow.connectors.llm.provider import Completion
from catalogflow.streams.codec import MAGIC, SchemaStore
from catalogflow.streams.llmcache import TableCache

SCHEMAS = SchemaStore.shipped()
TOKENS = [("{", -0.01), ('"flavor"', -0.2), (': "Salmon"}', -0.05)]


class CodecTable(dict[str, bytes]):
    """A table that keeps its rows encoded, as faust's store does."""

    def __setitem__(self, key: str, row: Any) -> None:
        super().__setitem__(key, SCHEMAS.encode("LlmResult", row))

    def get(self, key: str, default: Any = None) -> Any:
        data = super().get(key)
        return default if data is None else SCHEMAS.decode(data, "LlmResult")


def completion(logprobs: list[tuple[str, float]] | None) -> Completion:
    content = '{"flavor": "Salmon"}'
    return Completion(json.loads(content), content, logprobs, 10, 5, 0.001, "m", 1, 0.1)


def test_an_answer_comes_back_with_its_token_logprobs() -> None:
    cache = TableCache(CodecTable(), "PF-1")
    cache.put("k", "v1", completion(TOKENS))
    again = cache.get("k")
    assert again is not None and again.token_logprobs == TOKENS
    assert again.data == {"flavor": "Salmon"} and again.attempts == 0


def test_an_answer_without_logprobs_comes_back_without() -> None:
    cache = TableCache(CodecTable(), "PF-1")
    cache.put("k", "v1", completion(None))
    again = cache.get("k")
    assert again is not None and again.token_logprobs is None


def test_a_row_written_by_version_1_keeps_its_logprobs() -> None:
    source = resources.files("catalogflow.schemas").joinpath("history/LlmResult.v1.avsc")
    old = json.loads(source.read_text(encoding="utf-8"))
    parsed = fastavro.parse_schema(old, named_schemas={})
    canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    row = {
        "key": "k",
        "model": "m",
        "prompt_version": "v1",
        "content": '{"flavor": "Salmon"}',
        "token_logprobs": [{"token": t, "logprob": p} for t, p in TOKENS],
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.001,
        "created_at": 0,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, row)
    table = CodecTable()
    dict.__setitem__(table, "PF-1@k", MAGIC + fingerprint + body.getvalue())
    again = TableCache(table, "PF-1").get("k")
    assert again is not None and again.token_logprobs == TOKENS
