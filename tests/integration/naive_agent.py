"""An action-plugin module that swaps catalogflow's batched action agents for the naive
design, so the crash test can show what the batched design protects against.

Load it *after* the plugin that registers the action types, e.g.
``action_plugins=tests.integration.engine_actions,tests.integration.naive_agent``.
Its ``register(registry)`` runs before the worker registers its agents
(``catalogflow.worker.build_worker`` loads plugins first), and replaces
``catalogflow.agents.actions._register_one`` so that every action type gets::

    @app.agent(topic, concurrency=action_concurrency)   # N actors, one task each

Each actor runs exactly the production per-task code (``BatchRunner`` on a batch of
one, sends confirmed before the event is acked); only the concurrency model differs.
With N actors sharing one partition, faust acks out of order and (faust-streaming
issue 606) can commit an offset past a task still in flight; kill -9 then loses it.

``NAIVE_JITTER=<seconds>`` (environment) adds a random extra sleep of up to that
much to every action call, for either agent design: uneven call times are what
real model calls look like, and what opens the window for issue 606.

Test-only. It patches a private function, so a rename in ``agents/actions.py``
breaks it loudly (AttributeError at worker start), never silently.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from catalogflow.agents import actions as action_agents
from catalogflow.streams.actions import Action, ActionInput, ActionRegistry, ActionResult
from catalogflow.streams.app import Topology
from catalogflow.streams.topics import task_topic

_ORIGINAL = action_agents._register_one


def _register_naive(topology: Topology, kind: str, action: Action) -> None:
    name = f"action.{kind}"

    @topology.app.agent(
        topology.inputs[task_topic(kind)],
        name=name,
        concurrency=topology.settings.action_concurrency,
    )
    async def run_actions(stream: Any) -> None:
        async for event in stream.events():
            runner = action_agents.BatchRunner(topology, kind, action, name)
            await runner.run([event])


class _Jittered:
    def __init__(self, inner: Action, jitter: float) -> None:
        self.type = inner.type
        self._inner = inner
        self._jitter = jitter

    async def run(self, request: ActionInput) -> ActionResult:
        await asyncio.sleep(random.uniform(0, self._jitter))
        return await self._inner.run(request)


def jitter(registry: ActionRegistry) -> None:
    """Apply ``NAIVE_JITTER`` to every registered action (no-op when unset)."""
    seconds = float(os.environ.get("NAIVE_JITTER", "0") or 0)
    if seconds > 0:
        for kind, inner in list(registry.actions.items()):
            registry.actions[kind] = _Jittered(inner, seconds)


def register(registry: ActionRegistry) -> None:
    if os.environ.get("NAIVE_AGENT", "1") != "0":
        action_agents._register_one = _register_naive
    jitter(registry)
