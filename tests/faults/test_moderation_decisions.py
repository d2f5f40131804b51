"""Scenario 6: moderation decisions arriving twice, out of order, for unknown items and
for items already decided, and two reviewers deciding the same item at once. The first
decision that reaches a waiting item decides it; every later one, and every one for an
item that never existed, is a dead letter naming why ("no such item is waiting for
review"): nothing is applied twice, every decision is recorded in the read model, no
worker crashes, and the run ends exactly right (tests/faults/end_state.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from catalogflow.streams.records import ModerationDecision
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.readmodel import tables
from tests.faults.end_state import end_state
from tests.faults.harness import PRODUCTS, installation
from tests.integration.test_projector import count
from tests.integration.test_sync import counts, seed_workflow

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

GROUP = max(2, PRODUCTS // 20)  # items per kind of trouble


def test_duplicate_late_unknown_and_racing_decisions_are_applied_once_and_recorded(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    with installation(settings, start_worker, tmp_path) as inst:
        inst.start_run(seed_workflow(review=("translate",)))
        inst.wait_run(
            lambda r: counts(r) == {"AWAITING_MODERATION": PRODUCTS}, "every task waiting"
        )
        items = pending_items(inst.settings, run_id=inst.run_id)
        assert len(items) == PRODUCTS
        late, backdated, racing, twice = (items[i * GROUP : (i + 1) * GROUP] for i in range(4))
        rest = items[4 * GROUP :]

        first: list[ModerationDecision] = []
        again: list[ModerationDecision] = []  # each reaches an item decided already
        for item in late:  # rejected, then approved after all
            first.append(decision(item, "REJECT", actor="rita"))
            again.append(decision(item, "APPROVE", actor="anna"))
        for item in backdated:  # rejected, then an approval dated an hour earlier
            first.append(decision(item, "REJECT", actor="rita"))
            earlier = decision(item, "APPROVE", actor="anna")
            earlier["decided_at"] -= timedelta(hours=1)
            again.append(earlier)
        for item in twice:  # the same decision delivered twice, and a second approval
            once = decision(item, "APPROVE", actor="anna")
            first.append(once)
            again += [once, decision(item, "APPROVE", actor="anna")]
        first += [decision(item, "APPROVE", actor="anna") for item in rest]
        unknown: list[ModerationDecision] = []
        for n, item in enumerate(rest[:3]):
            never = decision(item, "APPROVE", actor="anna")
            never["item_id"] = f"no-such-item-{n}"
            unknown.append(never)
        send_decisions(inst.settings, [*unknown, *first])
        send_decisions(inst.settings, again)

        # Two reviewers decide the same items at the same moment, each on their own
        # producer: one decision decides, the other finds the item decided.
        barrier = threading.Barrier(2)

        def reviewer(name: str) -> None:
            mine = [decision(item, "APPROVE", actor=name) for item in racing]
            barrier.wait()
            send_decisions(inst.settings, mine)

        threads = [threading.Thread(target=reviewer, args=(n,)) for n in ("anna", "erik")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        decided_again = len(again) + len(racing) + len(unknown)
        distinct = len({d["decision_id"] for d in [*first, *again, *unknown]}) + 2 * len(racing)
        state = end_state(
            inst,
            "moderation-decisions",
            statuses={"SYNCED": PRODUCTS - 2 * GROUP, "REJECTED": 2 * GROUP},
            dead_letters={"invalid-record": decided_again},
            extra={"decisions": distinct, "decided again or unknown": decided_again},
        )
        engine = inst.read_model()
        try:
            recorded = count(engine, tables.decisions)
            with engine.connect() as conn:
                details = conn.execute(sa.select(tables.dead_letters.c.detail)).scalars().all()
        finally:
            engine.dispose()
        assert recorded == distinct, f"{recorded} decisions recorded of {distinct}: {state}"
        assert all("no such item is waiting for review" in d for d in details), details
        for worker in inst.workers.values():
            assert "Traceback" not in worker.log_path.read_text(errors="replace")
