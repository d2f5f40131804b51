"""Builds a complete worker: the topology plus every agent and view registered on it,
its metrics on ``/metrics``, and the faust worker that runs it."""

from __future__ import annotations

from collections.abc import Set
from typing import Any, cast

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP
from prometheus_client import REGISTRY, CollectorRegistry

from catalogflow.agents import actions, catalog, commands, moderation, progress, sink
from catalogflow.connectors.llm.provider import ClientPool
from catalogflow.streams import lag, views, workerstate
from catalogflow.streams.actions import load_registry
from catalogflow.streams.app import Topology, build_topology
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.workers import ASSIGNED_PARTITIONS
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
    expose_metrics(topology.app)
    workerstate.register(topology.app)
    lag.register(topology.app, settings)
    return topology


def expose_metrics(app: faust.App) -> CollectorRegistry:
    """faust's own Prometheus sensor (events, commits, send latency, table operations,
    rebalances) and the domain metrics on one page, ``/metrics`` of faust's web server;
    and the assigned-partitions gauge kept current on every assignment.

    faust's sensor registers its figures, named after the app id, on the registry it is
    given. Each app gets a registry of its own that also collects the default one (where
    :class:`~catalogflow.streams.metrics.prometheus.PrometheusMetrics` records), so a
    second app in one process (tests build several) does not register them twice.
    """
    registry = CollectorRegistry()
    registry.register(REGISTRY)
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry)

    async def count_assigned(_app: Any, assigned: Set[TP], **_: Any) -> None:
        partitions = input_partitions(assigned, app.tables.changelog_topics)
        metrics().set(ASSIGNED_PARTITIONS, float(partitions))

    # cast: as in streams/shutdown.py, mode spells the handler type with mypy_extensions.
    app.on_partitions_assigned.connect(cast(Any, count_assigned))
    return registry


def input_partitions(assigned: Set[TP], changelogs: Set[str]) -> int:
    """The partitions of input topics in an assignment; the changelog partitions a worker
    holds for its tables (actives and standbys) are not counted, as in ``/health/``."""
    return sum(1 for tp in assigned if tp.topic not in changelogs)


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
