"""The end state every fault scenario must reach, checked by one function.

Once the run is COMPLETED and the workers have committed everything they consume:

* every matching product has exactly one task, in a terminal state, whose history
  holds one terminal transition per attempt (a replay never ends a task twice);
* the run's totals are those tasks' statuses;
* the Magento simulator's write log holds exactly one write per product, store scope
  and attribute for every approved value of a SYNCED task, and nothing else: no value
  written twice, nothing written for a task that was not synced, nothing a conflict
  left alone;
* the read model (the projector's, stopped once caught up) holds the same tasks and is
  identical, table by table, to a fresh rebuild from the topics (the comparison of
  tests/integration/test_projector.py: ``digest`` and ``next_offsets``);
* the dead letters are exactly the ones the scenario expects (by reason).

:func:`end_state` gathers the numbers, asserts all of it with messages that print them,
and returns them; :meth:`EndState.summary` is the scenario's one summary line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from catalogflow.streams.engine import TERMINAL
from catalogflow.streams.sync import store_codes

from catalogflow.readmodel import tables
from catalogflow.readmodel.batch import next_offsets
from catalogflow.readmodel.rebuild import rebuild
from catalogflow.readmodel.store import digest, engine_for
from tests.faults.harness import PRODUCTS, REPLAYED, REPORT, Installation
from tests.integration.test_crash import wait_until_replayed
from tests.integration.test_projector import wait_caught_up
from tests.integration.test_scale_out import wait_serving
from tests.integration.test_sync import counts

#: (sku, store code, attribute code): one value as the write log records it.
WriteKey = tuple[str, str, str]


@dataclass
class EndState:
    scenario: str
    products: int
    tasks: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    #: Tasks whose history ends an attempt more than once (or never).
    terminal_repeats: int = 0
    run_counts: dict[str, int] = field(default_factory=dict)
    writes: int = 0  # (sku, store, attribute) values written (not nulls)
    duplicates: int = 0  # values written more than once
    missing: int = 0  # approved values of SYNCED tasks never written
    unexpected: int = 0  # values written that no SYNCED task approved (or a conflict kept)
    dead_letters: Counter[str] = field(default_factory=Counter)
    read_model_tasks: Counter[str] = field(default_factory=Counter)
    read_model_diff: list[str] = field(default_factory=list)  # tables unlike the rebuild
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items()))
        letters = dict(self.dead_letters) or 0
        extra = "".join(f"; {k} {v}" for k, v in self.extra.items())
        return (
            f"faults/{self.scenario}: {self.products} products, {self.tasks} terminal tasks "
            f"({statuses}), {self.writes} writes, duplicates {self.duplicates}, "
            f"missing {self.missing}, unexpected {self.unexpected}, dead letters {letters}, "
            f"read model = rebuild: {not self.read_model_diff}, {self.seconds:.0f} s{extra}"
        )


def end_state(
    inst: Installation,
    scenario: str,
    *,
    statuses: Mapping[str, int] | None = None,
    dead_letters: Mapping[str, int] | None = None,
    kept: Collection[WriteKey] = (),
    extra: Mapping[str, Any] | None = None,
) -> EndState:
    """Check the end state of ``inst``'s run; return its numbers (and record its line).

    ``statuses``: the tasks' statuses expected (default: every product SYNCED);
    ``dead_letters``: the dead letters expected, by reason (default: none); ``kept``:
    values a person's edit kept (a conflict): approved, never written.
    """
    expected = dict(statuses or {"SYNCED": PRODUCTS})
    state = EndState(scenario, PRODUCTS, extra=dict(extra or {}))
    run = inst.wait_completed()
    wait_until_replayed(inst.settings, timeout=180, names=REPLAYED)
    wait_serving(*inst.workers.values())
    run = inst.run()
    tasks = run_tasks(inst)
    state.run_counts = counts(run)

    # Tasks: one per product, terminal, each attempt ended once.
    skus = Counter(t["sku"] for t in tasks)
    state.tasks = sum(1 for t in tasks if t["status"] in TERMINAL)
    state.statuses = Counter(t["status"] for t in tasks)
    for task in tasks:
        ends = [h for h in task["history"] if h["status"] in TERMINAL]
        if len(ends) != task["attempt"] + 1:
            state.terminal_repeats += 1

    # Writes: the approved values of every SYNCED task, once each, and nothing else.
    # (A null restores a store view's inheritance, the writer's answer to Magento's
    # store-view save bug, not a value written.)
    written = Counter(
        (w.sku, w.store, a)
        for w in inst.shop.simulator.writes
        for a, value in w.attributes.items()
        if value is not None
    )
    state.writes = sum(written.values())
    state.duplicates = sum(1 for n in written.values() if n > 1)
    approved = approved_values(tasks, store_codes(inst.settings.magento_store_codes))
    should = approved - set(kept)
    state.missing = len(should - set(written))
    state.unexpected = len(set(written) - should)

    # The read model: caught up, then compared with a rebuild from the topics.
    engine = inst.read_model()
    try:
        wait_caught_up(inst.read_settings, engine, timeout=120)
        wait_caught_up(inst.read_settings, engine, timeout=60)  # its own dead letters too
        assert inst.projector is not None
        assert inst.projector.stop() == 0, inst.projector.log()[-3000:]
        state.read_model_tasks = task_statuses(engine, inst.run_id)
        state.dead_letters = dead_letter_reasons(engine)
        rebuilt = engine_for(f"sqlite:///{inst.tmp_path / 'rebuilt.sqlite'}")
        try:
            rebuild(inst.read_settings, rebuilt)
            ours, theirs = digest(engine), digest(rebuilt)
            state.read_model_diff = sorted(t for t in ours if ours[t] != theirs.get(t))
            if next_offsets(engine) != next_offsets(rebuilt):
                state.read_model_diff.append("projector_offsets")
        finally:
            rebuilt.dispose()
    finally:
        engine.dispose()
    state.seconds = inst.seconds()
    REPORT.append(state.summary())
    print(f"\n{state.summary()}")

    line = state.summary()
    assert max(skus.values(), default=0) == 1, (
        f"a product has two tasks {skus.most_common(3)}: {line}"
    )
    assert len(skus) == PRODUCTS and state.tasks == PRODUCTS, f"tasks lost or unfinished: {line}"
    assert dict(state.statuses) == expected, f"expected {expected}: {line}"
    assert state.terminal_repeats == 0, f"a task ended an attempt twice or never: {line}"
    assert run["status"] == "COMPLETED" and run["tasks_created"] == PRODUCTS, f"{run}: {line}"
    assert state.run_counts == expected, f"run totals {state.run_counts}: {line}"
    assert state.duplicates == 0, f"written twice {written.most_common(3)}: {line}"
    assert state.missing == 0, (
        f"approved, never written {sorted(should - set(written))[:3]}: {line}"
    )
    assert state.unexpected == 0, f"written unasked {sorted(set(written) - should)[:3]}: {line}"
    assert state.read_model_tasks == expected, f"read model {state.read_model_tasks}: {line}"
    assert not state.read_model_diff, f"read model unlike a rebuild: {line}"
    assert dict(state.dead_letters) == dict(dead_letters or {}), f"dead letters: {line}"
    return state


def run_tasks(inst: Installation, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The run's task states from every worker (each serves the partitions it holds).

    A rebalance after the run ended (a killed static member's session running out)
    leaves some partitions held by no worker for a moment, and their tasks in no view:
    asked again until every product's task is seen or ``timeout`` passes, so only a
    task that is really missing stays missing."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, dict[str, Any]] = {}
        for worker in inst.workers.values():
            for task in worker.get(f"/runs/{inst.run_id}/tasks/")["tasks"]:
                found.setdefault(task["task_id"], task)
        if len({t["sku"] for t in found.values()}) >= PRODUCTS or (time.monotonic() > deadline):
            return list(found.values())
        time.sleep(1.0)
        wait_serving(*inst.workers.values())


def approved_values(tasks: list[dict[str, Any]], stores: Mapping[str, str]) -> set[WriteKey]:
    """What the SYNCED tasks should have written: every approved field with a value,
    as (sku, store code, lowercase attribute code); locale-less values go to ``all``."""
    values = set()
    for task in tasks:
        if task["status"] != "SYNCED":
            continue
        for output in task["outputs"]:
            for f in output["fields"]:
                if f["approved"] and f["value"] is not None:
                    store = "all" if f["locale"] is None else stores[f["locale"]]
                    values.add((task["sku"], store, f["field"].lower()))
    return values


def task_statuses(engine: sa.Engine, run_id: str) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.tasks.c.status, sa.func.count())
            .where(tables.tasks.c.run_id == run_id)
            .group_by(tables.tasks.c.status)
        ).all()
    return Counter({str(status): int(n) for status, n in rows})


def dead_letter_reasons(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.dead_letters.c.reason, sa.func.count()).group_by(
                tables.dead_letters.c.reason
            )
        ).all()
    return Counter({str(reason): int(n) for reason, n in rows})
