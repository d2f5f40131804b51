"""Builds a complete worker: the topology plus every agent and view registered on it,
and the faust worker that runs it."""

from __future__ import annotations

import faust

from catalogflow.agents import actions, catalog, commands, moderation, progress, sink
from catalogflow.connectors.llm.provider import ClientPool
from catalogflow.streams import views
from catalogflow.streams.actions import load_registry
from catalogflow.streams.app import Topology, build_topology
from catalogflow.streams.settings import Settings
from catalogflow.streams.shutdown import close_on_shutdown
from catalogflow.streams.watchdog import StopWatchdog


def build_worker(settings: Settings) -> Topology:
    topology = build_topology(settings, load_registry(settings))
    catalog.register(topology)
    commands.register(topology)
    actions.register(topology)
    moderation.register(topology)
    sink.register(topology)
    progress.register(topology)
    views.register(topology)
    _close_llm_clients(topology)
    return topology


def _close_llm_clients(topology: Topology) -> None:
    """Close the openai clients of the AI actions when the worker stops (the built-in
    actions share one pool; a plugin action may hold its own)."""
    pools: dict[int, ClientPool] = {}
    for action in topology.registry.actions.values():
        pool = getattr(action, "clients", None)
        if isinstance(pool, ClientPool):
            pools[id(pool)] = pool
    for pool in pools.values():
        close_on_shutdown(topology.app, "the LLM clients", pool.aclose)


class CatalogflowWorker(faust.Worker):
    """faust's worker, whose stop on SIGTERM or SIGINT is bounded by the settings'
    ``shutdown_timeout`` (:mod:`catalogflow.streams.watchdog`).

    It hooks mode's ``_on_sigterm``/``_on_sigint`` (mode 0.7.1 installs them with
    ``loop.add_signal_handler``; there is no public hook for "a stop signal came"). On
    an upgrade: ``tests/integration/test_startup_race.py`` stops workers with SIGTERM
    and ``testbench/workerproc.py`` fails a test whose worker outlives the timeout.
    """

    def __init__(self, topology: Topology, loglevel: str) -> None:
        super().__init__(topology.app, loglevel=loglevel)
        self.watchdog = StopWatchdog(topology.settings.shutdown_timeout)

    def _on_sigterm(self) -> None:
        self.watchdog.arm()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self.watchdog.arm()
        super()._on_sigint()
