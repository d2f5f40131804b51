"""The read endpoints over the fixture read model: the views as JSON, errors as ErrorBody."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from catalogflow import __version__
from catalogflow.readmodel.views import ErrorBody, Page, RunSummary, TaskResult
from tests.unit.api_app import TOKENS, api, bearer
from tests.unit.readmodel_rows import RUN, TASKS, sku, task_id


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(api(tmp_path), headers=bearer("admin"), raise_server_exceptions=False)


def error_of(response: object) -> ErrorBody:
    return ErrorBody.model_validate_json(response.content)  # type: ignore[attr-defined]


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/api/health", headers={"Authorization": ""}).json() == {"status": "ok"}


def test_runs_and_a_run_answer_the_views(client: TestClient) -> None:
    runs = client.get("/api/runs").json()
    assert [r["run_id"] for r in runs] == [RUN, "run-0"]
    run = RunSummary.model_validate(client.get(f"/api/runs/{RUN}").json())
    assert [a.action_id for a in run.actions] == ["-", "extract", "describe"]
    assert client.get("/api/workflows").json()[0]["workflow_id"] == "wf-describe"
    assert len(client.get("/api/workflows/wf-describe").json()["versions"]) == 2


def test_tasks_filter_and_page_through_the_query_string(client: TestClient) -> None:
    url = f"/api/runs/{RUN}/tasks"
    errors = client.get(url, params={"status": ["ERROR", "SYNCED"]}).json()
    assert [t["task_id"] for t in errors["items"]] == [task_id(i) for i in (2, 4, 6)]
    low = client.get(url, params={"confidence_below": 0.5, "action": "describe"}).json()
    assert [t["task_id"] for t in low["items"]] == [task_id(3)]
    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = Page[TaskResult].model_validate(client.get(url, params=params).json())
        seen += [t.task_id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [task_id(i) for i, *_ in TASKS]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        (f"/api/runs/{RUN}/tasks", {"limit": 1001}, "limit"),
        (f"/api/runs/{RUN}/tasks", {"limit": "ten"}, "limit"),
        (f"/api/runs/{RUN}/tasks", {"cursor": "bogus"}, "cursor"),
        (f"/api/runs/{RUN}/tasks", {"colour": "red"}, "colour"),
        (f"/api/runs/{RUN}/tasks", {"status": "DONE"}, "status"),
        (f"/api/runs/{RUN}/tasks", {"moderation_state": "MAYBE"}, "moderation_state"),
        (f"/api/runs/{RUN}/tasks", {"confidence_below": "low"}, "confidence_below"),
        (f"/api/runs/{RUN}/export.csv", {"nope": "1"}, "nope"),
        ("/api/moderation", {"cursor": "bogus"}, "cursor"),
        ("/api/dead-letters", {"limit": 0}, "limit"),
    ],
)
def test_bad_queries_are_400_naming_the_problem(
    client: TestClient, path: str, params: dict[str, str | int], named: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    body = error_of(response)
    assert body.error == "bad-request" and named in body.message


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/nope",
        "/api/runs/nope/tasks",
        "/api/runs/nope/export.csv",
        "/api/runs/nope/export.jsonl",
        "/api/workflows/nope",
        "/api/runs?workflow_id=nope",
        "/api/dead-letters/9-9",
        "/api/products/NOPE/history",
        "/api/nothing-here",
    ],
)
def test_unknown_ids_are_404_error_bodies(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert error_of(response).error == "not-found"


def test_a_wrong_method_is_an_error_body_too(client: TestClient) -> None:
    response = client.delete("/api/runs")
    assert response.status_code == 405 and error_of(response).error == "method-not-allowed"


def test_exports_hold_exactly_the_filtered_tasks(client: TestClient) -> None:
    params = {"confidence_below": 0.5}
    expected = [task_id(i) for i in (1, 2, 3)]
    text = client.get(f"/api/runs/{RUN}/export.jsonl", params=params).text
    assert [json.loads(line)["task_id"] for line in text.splitlines()] == expected
    response = client.get(f"/api/runs/{RUN}/export.csv", params=params)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted({r["task_id"] for r in rows}) == expected
    assert {r["value"] for r in rows if r["field"] == "description"} == {
        'Text 1, "quoted"',
        'Text 3, "quoted"',
    }
    empty = client.get(f"/api/runs/{RUN}/export.csv", params={"q": "no such text"})
    assert empty.status_code == 200 and len(empty.text.splitlines()) == 1  # the header


def test_moderation_history_and_dead_letters(client: TestClient) -> None:
    queue = client.get("/api/moderation").json()
    assert [i["item_id"] for i in queue["items"]] == ["item-check", "item-low", "item-late"]
    history = client.get(f"/api/products/{sku(0)}/history").json()
    assert [e["kind"] for e in history["entries"]][:3] == ["transition", "output", "decision"]
    letters = client.get("/api/dead-letters", params={"reason": "bad-magic"}).json()
    assert [d["dead_letter_id"] for d in letters["items"]] == ["0-1", "0-2"]


def test_the_openapi_document_validates_names_bearer_and_holds_no_secret(
    client: TestClient,
) -> None:
    response = client.get("/openapi.json", headers={"Authorization": ""})
    document = response.json()
    validate(document)
    assert document["info"] == {"title": "catalogflow", "version": __version__}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "422" not in response.text
    for token in TOKENS.values():
        assert token not in response.text
    assert "pbkdf2" not in response.text
