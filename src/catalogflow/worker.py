"""Builds a complete worker: the topology plus every agent and view registered on it."""

from __future__ import annotations

from catalogflow.agents import actions, catalog, commands, moderation, progress, sink
from catalogflow.connectors.llm.provider import ClientPool
from catalogflow.streams import views
from catalogflow.streams.actions import load_registry
from catalogflow.streams.app import Topology, build_topology
from catalogflow.streams.settings import Settings
from catalogflow.streams.shutdown import close_on_shutdown


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
