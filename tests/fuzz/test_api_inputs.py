"""The API over bad requests: malformed and deeply nested JSON, wrong types, unknown
fields, oversized bodies, bytes that are not UTF-8, hostile path and query parameters
and page cursors. Each answer is a 2xx or a 4xx ``ErrorBody`` whose message says what
was wrong — never a 500. The write routes run against the recording publisher and
fake queries of ``tests/unit/test_api_writes.py``, the read routes against the fixture
read model of ``tests/unit/api_app.py``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from catalogflow.streams.settings import Settings
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from catalogflow.api.app import create_app
from catalogflow.api.auth import entry_line
from catalogflow.api.deps import queries_of
from catalogflow.api.writes import publisher_of
from tests.fuzz.hostile import HOSTILE_TEXTS, texts
from tests.unit.api_app import api, bearer
from tests.unit.readmodel_rows import RUN, WORKFLOW
from tests.unit.test_api_writes import DECIDE, TOKENS, FakeQueries, RecordingPublisher

FEW = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

WRITES = [
    DECIDE,
    "/api/workflows",
    "/api/workflows/dry-cat/runs",
    "/api/runs/dry-cat.v1.abcd/pause",
    "/api/runs/dry-cat.v1.abcd/retry-failed",
    "/api/dead-letters/dl-1/replay",
]


def _json(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | strings,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
        max_leaves=10,
    )


json_values = _json(texts)
#: Small enough to go into a URL.
short_json = _json(st.text(max_size=30))


@pytest.fixture(scope="module")
def writes() -> Iterator[TestClient]:
    tokens = ",".join(entry_line(f"{role}-user", role, t) for role, t in TOKENS.items())  # type: ignore[arg-type]
    app = create_app(Settings(api_tokens=tokens), engine=sa.create_engine("sqlite://"))
    published = RecordingPublisher()
    app.dependency_overrides[publisher_of] = lambda: published
    app.dependency_overrides[queries_of] = FakeQueries
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def reads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(api(tmp_path_factory.mktemp("api")), raise_server_exceptions=False) as client:
        yield client


def answered(response: Any) -> str | None:
    """The error message of a 4xx (None for a 2xx); a 500 or another shape fails."""
    assert response.status_code < 500, response.text
    if response.status_code < 400:
        return None
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"].strip(), body
    return str(body["message"])


def post(client: TestClient, path: str, content: bytes, role: str = "admin") -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[role]}", "Content-Type": "application/json"}
    return client.post(path, content=content, headers=headers)


@FEW
@given(st.sampled_from(WRITES), json_values)
def test_any_json_body_is_accepted_or_a_4xx_naming_the_problem(
    writes: TestClient, path: str, body: Any
) -> None:
    answered(post(writes, path, json.dumps(body).encode()))


@FEW
@given(st.sampled_from(WRITES), st.binary(max_size=200))
def test_any_bytes_as_a_body_are_a_4xx_or_accepted(
    writes: TestClient, path: str, body: bytes
) -> None:
    answered(post(writes, path, body))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"decision": "APPROVE", "field": "\xff\xfe"}',
        b'{"decision": "APPROVE"' + b', "x": 1' * 10_000 + b"}",
        b'{"decision": "EDIT", "field": "description", "value": ' + b"9" * 5_000 + b"}",
        b'{"decision": "EDIT", "field": "description", "value": NaN}',
        b'{"budget": Infinity}',
        b'{"definition": "' + b"x" * 2_000_000 + b'"}',
    ],
)
@pytest.mark.parametrize("path", WRITES)
def test_nested_oversized_and_not_utf8_bodies_are_4xx(
    writes: TestClient, path: str, body: bytes
) -> None:
    answered(post(writes, path, body))


@FEW
@given(
    st.sampled_from(["decision", "field", "locale", "value", "feedback"]),
    st.one_of(st.integers(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
)
def test_a_decision_field_of_the_wrong_type_is_a_400_naming_it(
    writes: TestClient, name: str, value: Any
) -> None:
    body = {"decision": "EDIT", "field": "description", "value": "x", name: value}
    if name == "value" and isinstance(value, int):
        return  # a number is a value an edit may set
    message = answered(post(writes, DECIDE, json.dumps(body).encode(), "editor"))
    assert message is not None and name in message


@FEW
@given(st.sampled_from(WRITES[:2] + WRITES[4:5]), st.text(min_size=1, max_size=20))
def test_an_unknown_field_is_a_400_naming_it(writes: TestClient, path: str, key: str) -> None:
    known = {"decision", "field", "locale", "value", "feedback", "definition", "allow_types"}
    known |= {"category", "action"}
    if key in known:
        return
    body = {"decision": "APPROVE", "definition": "id: x", key: 1}
    message = answered(post(writes, path, json.dumps(body).encode()))
    assert message is not None and key[:10] in message


def _hostile_segment() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_TEXTS[3:19]), st.text(min_size=1, max_size=60))


@FEW
@given(
    st.sampled_from(
        [
            "/api/moderation/{}/decisions",
            "/api/workflows/{}/runs",
            "/api/runs/{}/stop",
            "/api/runs/{}/retry-failed",
            "/api/dead-letters/{}/replay",
        ]
    ),
    _hostile_segment(),
)
def test_a_hostile_id_in_a_write_path_is_a_4xx(writes: TestClient, path: str, part: str) -> None:
    answered(post(writes, path.format(quote(part, safe="")), b'{"decision": "APPROVE"}'))


@FEW
@given(
    st.sampled_from(
        [
            "/api/workflows/{}",
            "/api/runs/{}",
            "/api/runs/{}/tasks",
            "/api/products/{}/history",
            "/api/dead-letters/{}",
        ]
    ),
    _hostile_segment(),
)
def test_a_hostile_id_in_a_read_path_is_a_4xx_or_found(
    reads: TestClient, path: str, part: str
) -> None:
    answered(reads.get(path.format(quote(part, safe="")), headers=bearer("admin")))


QUERY_NAMES = ["status", "failure_category", "confidence_below", "q", "limit", "cursor", "nope"]


@FEW
@given(st.lists(st.tuples(st.sampled_from(QUERY_NAMES), _hostile_segment()), max_size=4))
def test_hostile_query_parameters_are_a_4xx_or_a_page(
    reads: TestClient, hostile: list[tuple[str, str]]
) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = list(hostile)
    for path in (f"/api/runs/{RUN}/tasks", "/api/moderation", "/api/dead-letters"):
        answered(reads.get(path, params=params, headers=bearer("admin")))
    runs: list[tuple[str, str | int | float | bool | None]] = [("workflow_id", WORKFLOW), *params]
    answered(reads.get("/api/runs", params=runs, headers=bearer("admin")))


def _cursor(parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@FEW
@given(
    st.one_of(
        short_json.map(_cursor),
        st.tuples(st.sampled_from(["t", "m", "d"]), short_json, short_json, short_json).map(
            lambda t: _cursor(list(t))
        ),
        st.tuples(
            st.sampled_from(["m"]), st.integers(), st.text(max_size=30), st.text(max_size=30)
        ).map(lambda t: _cursor(list(t))),
    )
)
@example(base64.urlsafe_b64encode(b"[" * 5_000).decode())  # json.loads: RecursionError
def test_a_forged_cursor_is_a_400_not_a_500(reads: TestClient, cursor: str) -> None:
    for path in (f"/api/runs/{RUN}/tasks", "/api/moderation", "/api/dead-letters"):
        answered(reads.get(path, params={"cursor": cursor}, headers=bearer("admin")))


def test_the_fixture_read_model_answers_a_plain_page(reads: TestClient) -> None:
    assert answered(reads.get(f"/api/runs/{RUN}/tasks", headers=bearer("admin"))) is None


def test_a_workflow_definition_of_megabytes_is_a_400_naming_the_problem(
    writes: TestClient, tmp_path: Path
) -> None:
    definition = "id: w\nmode: one_time\nactions:\n" + "- {id: a, type: nope}\n" * 5_000
    message = answered(
        post(writes, "/api/workflows", json.dumps({"definition": definition}).encode())
    )
    assert message is not None and "actions[4999].type" in message
