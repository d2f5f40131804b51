"""With a signing key, the read model leaves out the decisions the workers refuse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.records import ModerationDecision
from catalogflow.streams.signing import sign
from catalogflow.streams.topics import TopicName

from catalogflow.readmodel import tables
from catalogflow.readmodel.batch import Record, apply_batch, next_offsets
from catalogflow.readmodel.store import engine_for, upgrade

KEY = "read-model-test-key"
NAMES: dict[str, TopicName] = {"p.moderation-decisions": "moderation-decisions"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = engine_for(f"sqlite:///{tmp_path / 'rm.sqlite'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def claimed(decision_id: str) -> ModerationDecision:
    return {
        "decision_id": decision_id,
        "item_id": "SKU-1@r#1.0",
        "task_id": "SKU-1@r",
        "sku": "SKU-1",
        "decision": "APPROVE",
        "field": None,
        "locale": None,
        "edited_value": None,
        "feedback": None,
        "actor": {"id": "mallory", "role": "MODERATOR"},
        "decided_at": datetime(2026, 1, 2, tzinfo=UTC),
        "signature": None,
    }


def test_unsigned_and_badly_signed_decisions_are_left_out_signed_ones_kept(
    engine: sa.Engine,
) -> None:
    schemas = SchemaStore.shipped()
    decisions = [
        claimed("unsigned"),
        sign(claimed("wrong-key"), "another key"),
        sign(claimed("signed"), KEY),
    ]
    records = [
        Record(
            "p.moderation-decisions", 0, offset, b"SKU-1", schemas.encode("ModerationDecision", d)
        )
        for offset, d in enumerate(decisions)
    ]
    folded = apply_batch(engine, records, NAMES, "projector", signing_key=KEY)
    assert folded.dead == []  # the workers dead-letter them; the read model only leaves them out
    with engine.connect() as conn:
        kept = [row.decision_id for row in conn.execute(sa.select(tables.decisions))]
    assert kept == ["signed"]
    assert next_offsets(engine) == {("p.moderation-decisions", 0): 3}


def test_without_a_key_every_decision_is_kept(engine: sa.Engine) -> None:
    schemas = SchemaStore.shipped()
    record = Record(
        "p.moderation-decisions", 0, 0, b"SKU-1", schemas.encode("ModerationDecision", claimed("a"))
    )
    apply_batch(engine, [record], NAMES, "projector")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.decisions)).scalar() == 1
