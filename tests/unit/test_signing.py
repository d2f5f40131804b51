"""Signed commands and decisions: a signature holds for the record it was made for,
under the key it was made with, and nothing else; the key never shows in an error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.records import ModerationDecision, WorkflowCommand, workflow_command
from catalogflow.streams.settings import Secret, Settings
from catalogflow.streams.signing import checked, sign, signed_for, verify

KEY = "k3y-that-must-never-leak"


def command() -> WorkflowCommand:
    return workflow_command(
        command_id="c-1",
        workflow_id="wf",
        command="RUN",
        run_id="wf.v1.abc",
        issued_by="ops",
        issued_at=datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        arguments={"version": "1", "definition": "{}"},
    )


def decision() -> ModerationDecision:
    return {
        "decision_id": "d-1",
        "item_id": "SKU-1@run#1.0",
        "task_id": "SKU-1@run",
        "sku": "SKU-1",
        "decision": "APPROVE",
        "field": None,
        "locale": None,
        "edited_value": None,
        "feedback": None,
        "actor": {"id": "julia", "role": "EDITOR"},
        "decided_at": datetime(2026, 1, 1, tzinfo=UTC),
        "signature": None,
    }


def refused(record: Any, key: str = KEY) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        verify(record, key)
    assert caught.value.reason == "unsigned-command"
    assert KEY not in str(caught.value)
    return caught.value


def test_a_signed_command_and_decision_verify() -> None:
    verify(sign(command(), KEY), KEY)
    verify(sign(decision(), KEY), KEY)


def test_the_signature_survives_the_trip_through_avro() -> None:
    # issued_at has microseconds, the wire only milliseconds; the worker decodes it
    # and re-encodes the copies it fans out.
    store = SchemaStore.shipped()
    signed = sign(command(), KEY)
    decoded = store.decode(store.encode("WorkflowCommand", signed), expected=WorkflowCommand)
    verify(decoded, KEY)
    verify({**decoded, "arguments": dict(reversed(decoded["arguments"].items()))}, KEY)


def test_missing_signature_fails() -> None:
    assert "carries no signature" in str(refused(command()))
    assert "carries no signature" in str(refused(decision()))


@pytest.mark.parametrize(
    "change",
    [
        {"actor": {"id": "julia", "role": "MODERATOR"}},
        {"decision": "REJECT"},
        {"item_id": "SKU-2@run#1.0"},
    ],
)
def test_a_tampered_decision_fails(change: dict[str, Any]) -> None:
    tampered = {**sign(decision(), KEY), **change}
    assert "does not match" in str(refused(tampered))


def test_a_tampered_command_fails() -> None:
    signed = sign(command(), KEY)
    refused({**signed, "arguments": {**signed["arguments"], "budget": "1000"}})
    refused({**signed, "command": "STOP"})


def test_a_wrong_key_fails() -> None:
    refused(sign(decision(), "another-key"))
    refused(sign(decision(), KEY), key="another-key")


def test_a_garbage_signature_fails_without_crashing() -> None:
    refused({**decision(), "signature": "é" * 64})


def test_a_command_signature_does_not_pass_for_a_decision() -> None:
    signed_command = sign(command(), KEY)
    refused({**decision(), "signature": signed_command["signature"]})


def test_producers_sign_only_command_topics_and_only_with_a_key() -> None:
    keyed = Settings(signing_key=Secret(KEY))
    sent = signed_for(keyed, "moderation-decisions", decision())
    verify(sent, KEY)  # type: ignore[arg-type]  # a Mapping from the producer's seam
    assert signed_for(keyed, "partition-commands", command())["signature"]
    assert signed_for(Settings(), "workflow-commands", command())["signature"] is None
    progress = {"run_id": "r"}
    assert signed_for(keyed, "run-progress", progress) is progress


def test_workers_check_only_with_a_key() -> None:
    seen: list[str] = []

    def validate(record: ModerationDecision) -> None:
        seen.append(record["decision_id"])

    checked(Settings(), validate)(decision())  # no key: unsigned accepted
    with pytest.raises(InvalidMessage):
        checked(Settings(signing_key=Secret(KEY)), validate)(decision())
    checked(Settings(signing_key=Secret(KEY)), validate)(sign(decision(), KEY))
    assert seen == ["d-1", "d-1"]
