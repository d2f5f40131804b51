"""The API's write routes without a broker: request bodies are checked (a bad one is a
400 ErrorBody naming the problem), the right thing is published with the caller as
the actor, and unknown or decided ids are 404 / 409. The publisher and the read model
are replaced through the routes' two dependencies (``publisher_of``, ``queries_of``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.records import (
    CommandKind,
    DeadLetter,
    ModerationDecision,
    ModerationItem,
    WorkflowVersion,
)
from catalogflow.streams.settings import Settings
from fastapi.testclient import TestClient

from catalogflow.api.app import create_app
from catalogflow.api.auth import entry_line
from catalogflow.api.deps import queries_of
from catalogflow.api.writes import publisher_of
from catalogflow.readmodel.queries import Decided
from catalogflow.readmodel.views import NotFound
from tests.unit.test_codec import SAMPLES

TOKENS = {role: f"token-of-{role}" for role in ("viewer", "editor", "moderator", "admin")}
ITEM: ModerationItem = SAMPLES["ModerationItem"]  # type: ignore[assignment]
DEFINITION = (Path(__file__).parents[2] / "examples" / "dry-cat-food.yaml").read_text()


@dataclass
class RecordingPublisher:
    sent: list[tuple[str, Any]] = field(default_factory=list)

    def apply(
        self, definition: WorkflowDefinition, source: str, applied_by: str
    ) -> tuple[WorkflowVersion, bool]:
        self.sent.append(("apply", (definition.id, applied_by)))
        version: WorkflowVersion = {"workflow_id": definition.id, "version": 3}  # type: ignore[typeddict-item]
        return version, True

    def run(self, workflow_id: str, issued_by: str, budget: float | None, command_id: str) -> str:
        self.sent.append(("run", (workflow_id, issued_by, budget, command_id)))
        return f"{workflow_id}.v1.abcd"

    def control(
        self, workflow_id: str, run_id: str, command: CommandKind, issued_by: str, command_id: str
    ) -> None:
        self.sent.append(("control", (workflow_id, run_id, command, issued_by)))

    def retry(
        self,
        workflow_id: str,
        run_id: str,
        issued_by: str,
        category: str | None,
        action: str | None,
        command_id: str,
    ) -> None:
        self.sent.append(("retry", (run_id, category, action)))

    def decide(self, decision: ModerationDecision) -> None:
        self.sent.append(("decide", decision))

    def replay(self, letter: DeadLetter) -> None:
        self.sent.append(("replay", letter["source_topic"]))


class FakeQueries:
    """The few read-model answers the write routes ask for."""

    def pending_item(self, item_id: str) -> ModerationItem:
        if item_id == "decided":
            raise Decided(f"moderation item {item_id!r} is already decided")
        if item_id != ITEM["item_id"]:
            raise NotFound(f"no moderation item {item_id!r}")
        return ITEM

    def workflow(self, workflow_id: str) -> object:
        if workflow_id != "dry-cat":
            raise NotFound(f"no workflow {workflow_id!r}")
        return object()

    def run(self, run_id: str) -> Any:
        if run_id != "dry-cat.v1.abcd":
            raise NotFound(f"no run {run_id!r}")
        return type("Run", (), {"workflow_id": "dry-cat"})()

    def dead_letter_record(self, dead_letter_id: str) -> DeadLetter:
        if dead_letter_id not in ("dl-1", "dl-foreign"):
            raise NotFound(f"no dead letter {dead_letter_id!r}")
        topic = "catalogflow.product-changes" if dead_letter_id == "dl-1" else "other.topic"
        return {**SAMPLES["DeadLetter"], "source_topic": topic}  # type: ignore[typeddict-item]


@pytest.fixture
def published() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(published: RecordingPublisher) -> Iterator[TestClient]:
    tokens = ",".join(entry_line(f"{role}-user", role, t) for role, t in TOKENS.items())  # type: ignore[arg-type]
    app = create_app(Settings(api_tokens=tokens), engine=sa.create_engine("sqlite://"))
    app.dependency_overrides[publisher_of] = lambda: published
    app.dependency_overrides[queries_of] = FakeQueries
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def post(client: TestClient, path: str, role: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[role]}", **kwargs.pop("headers", {})}
    return client.post(path, headers=headers, **kwargs)


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    return str(body["message"])


DECIDE = f"/api/moderation/{ITEM['item_id']}/decisions"


def test_a_decision_records_the_caller_and_the_role_of_the_token(
    client: TestClient, published: RecordingPublisher
) -> None:
    for role, actor_role in (("editor", "EDITOR"), ("moderator", "MODERATOR"), ("admin", "ADMIN")):
        answer = post(client, DECIDE, role, json={"decision": "APPROVE"})
        assert answer.status_code == 202, answer.text
        kind, record = published.sent[-1]
        assert kind == "decide"
        assert record["actor"] == {"id": f"{role}-user", "role": actor_role}
        assert answer.json()["command_id"] == record["decision_id"]
        assert answer.json()["run_id"] == ITEM["run_id"]


def test_an_edit_carries_its_value(client: TestClient, published: RecordingPublisher) -> None:
    body = {"decision": "EDIT", "field": "description", "locale": "en_US", "value": "New"}
    assert post(client, DECIDE, "editor", json=body).status_code == 202
    record = published.sent[-1][1]
    assert (record["field"], record["locale"], record["edited_value"]) == (
        "description",
        "en_US",
        "New",
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"decision": "MAYBE"}, "decision"),
        ({"decision": "APPROVE", "colour": "red"}, "colour"),
        ({"decision": "EDIT"}, "--field"),  # an edit names its field (review.decision)
        ({"decision": "APPROVE", "field": "nope"}, "no field nope"),
        ({"decision": "REGENERATE"}, "feedback"),
        ({}, "decision"),
    ],
)
def test_a_bad_decision_is_a_400_naming_the_problem(
    client: TestClient, published: RecordingPublisher, body: dict[str, Any], named: str
) -> None:
    assert named in error_of(post(client, DECIDE, "editor", json=body), 400)
    assert published.sent == []


def test_a_malformed_json_body_is_a_400(client: TestClient, published: RecordingPublisher) -> None:
    response = post(
        client, DECIDE, "editor", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error_of(response, 400)
    error_of(post(client, "/api/workflows", "admin", content=b"[1,"), 400)
    assert published.sent == []


def test_unknown_and_decided_items(client: TestClient, published: RecordingPublisher) -> None:
    error_of(
        post(client, "/api/moderation/nope/decisions", "editor", json={"decision": "APPROVE"}), 404
    )
    error_of(
        post(client, "/api/moderation/decided/decisions", "editor", json={"decision": "APPROVE"}),
        409,
    )
    assert published.sent == []


def test_roles(client: TestClient, published: RecordingPublisher) -> None:
    error_of(post(client, DECIDE, "viewer", json={"decision": "APPROVE"}), 403)
    error_of(client.post(DECIDE, json={"decision": "APPROVE"}), 401)
    for role in ("viewer", "editor", "moderator"):
        error_of(post(client, "/api/runs/dry-cat.v1.abcd/pause", role), 403)
    assert published.sent == []


def test_apply_run_control_retry_and_replay(
    client: TestClient, published: RecordingPublisher
) -> None:
    applied = post(client, "/api/workflows", "admin", json={"definition": DEFINITION})
    assert applied.status_code == 202, applied.text
    assert applied.json()["command_id"] == "dry-cat-food.v3"
    run = post(client, "/api/workflows/dry-cat/runs", "admin", json={"budget": 2.5})
    assert run.status_code == 202 and run.json()["run_id"] == "dry-cat.v1.abcd"
    for path in ("pause", "resume", "stop"):
        assert post(client, f"/api/runs/dry-cat.v1.abcd/{path}", "admin").status_code == 202
    retry = post(
        client, "/api/runs/dry-cat.v1.abcd/retry-failed", "admin", json={"category": "SYNC_ISSUE"}
    )
    assert retry.status_code == 202
    assert post(client, "/api/dead-letters/dl-1/replay", "admin").status_code == 202
    assert [kind for kind, _ in published.sent] == [
        "apply",
        "run",
        "control",
        "control",
        "control",
        "retry",
        "replay",
    ]
    assert published.sent[0][1] == ("dry-cat-food", "admin-user")
    assert published.sent[1][1][:3] == ("dry-cat", "admin-user", 2.5)
    assert [s[1][2] for s in published.sent[2:5]] == ["PAUSE", "RESUME", "STOP"]
    assert published.sent[5][1] == ("dry-cat.v1.abcd", "SYNC_ISSUE", None)


def test_bad_commands(client: TestClient, published: RecordingPublisher) -> None:
    assert "budget" in error_of(
        post(client, "/api/workflows/dry-cat/runs", "admin", json={"budget": -1}), 400
    )
    error_of(post(client, "/api/workflows/nope/runs", "admin"), 404)
    error_of(post(client, "/api/runs/nope/pause", "admin"), 404)
    error_of(post(client, "/api/dead-letters/nope/replay", "admin"), 404)
    assert "not one of this deployment's" in error_of(
        post(client, "/api/dead-letters/dl-foreign/replay", "admin"), 400
    )
    error_of(
        post(client, "/api/runs/dry-cat.v1.abcd/retry-failed", "admin", json={"category": "X"}),
        400,
    )
    error_of(post(client, "/api/workflows", "admin", json={"definition": "id: [unclosed"}), 400)
    assert published.sent == []
