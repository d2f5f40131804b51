"""The role matrix: every endpoint and every role; the allowed pass, the rest get 403,
no token 401, and nothing logged during the whole test holds a token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from catalogflow.api.auth import ROLES, ApiRole
from tests.unit.api_app import TOKENS, api, bearer

#: The minimum role of every operation (None: no token needed). A new endpoint without
#: a line here fails ``test_every_endpoint_has_a_minimum_role``.
MINIMUM: dict[tuple[str, str], ApiRole | None] = {
    ("GET", "/api/health"): None,
    ("GET", "/api/workflows"): "viewer",
    ("GET", "/api/workflows/{workflow_id}"): "viewer",
    ("GET", "/api/runs"): "viewer",
    ("GET", "/api/runs/{run_id}"): "viewer",
    ("GET", "/api/runs/{run_id}/tasks"): "viewer",
    ("GET", "/api/runs/{run_id}/export.csv"): "viewer",
    ("GET", "/api/runs/{run_id}/export.jsonl"): "viewer",
    ("GET", "/api/moderation"): "viewer",
    ("GET", "/api/dead-letters"): "admin",
    ("GET", "/api/dead-letters/{dead_letter_id}"): "admin",
    ("GET", "/api/products/{sku}/history"): "viewer",
    # engineer C's write routes
    ("POST", "/api/workflows"): "admin",
    ("POST", "/api/workflows/{workflow_id}/runs"): "admin",
    ("POST", "/api/runs/{run_id}/pause"): "admin",
    ("POST", "/api/runs/{run_id}/resume"): "admin",
    ("POST", "/api/runs/{run_id}/stop"): "admin",
    ("POST", "/api/runs/{run_id}/retry-failed"): "admin",
    ("POST", "/api/moderation/{item_id}/decisions"): "editor",
    ("POST", "/api/dead-letters/{dead_letter_id}/replay"): "admin",
}

#: Ids of the fixture rows, for the path parameters.
IDS = {
    "workflow_id": "wf-describe",
    "run_id": "run-1",
    "item_id": "item-low",
    "dead_letter_id": "0-1",
    "sku": "SKU-000",
}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(api(tmp_path), raise_server_exceptions=False)


def operations(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, from its OpenAPI document: FastAPI builds it
    from the app's routes (which 0.165 includes lazily, so ``app.routes`` is not flat)."""
    document = client.get("/openapi.json").json()
    return sorted(
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    )


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = path.format(**IDS)
    body: dict[str, object] | None = {} if method == "POST" else None
    return client.request(method, url, headers=headers, json=body).status_code


def test_every_endpoint_has_a_minimum_role(client: TestClient) -> None:
    assert operations(client) == sorted(MINIMUM)


def test_the_role_matrix(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes: dict[tuple[str, str, ApiRole], int] = {}
    for method, path in operations(client):
        minimum = MINIMUM[(method, path)]
        no_token = call(client, method, path, {})
        if minimum is None:
            assert no_token == 200, (method, path)
            continue
        assert no_token == 401, (method, path)
        assert call(client, method, path, {"Authorization": "Bearer not-a-token"}) == 401
        for role in ROLES:
            status = call(client, method, path, bearer(role))
            outcomes[(method, path, role)] = status
            allowed = ROLES.index(role) >= ROLES.index(minimum)
            if allowed:
                assert status not in (401, 403) and status < 500, (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
    # the read routes succeed outright for the allowed roles (writes: past auth is enough)
    for (method, path, role), status in outcomes.items():
        minimum = MINIMUM[(method, path)]
        if method == "GET" and minimum and ROLES.index(role) >= ROLES.index(minimum):
            assert status == 200, (method, path, role, status)
    logged = caplog.text
    for token in TOKENS.values():
        assert token not in logged
    assert "not-a-token" not in logged and "pbkdf2" not in logged
