"""Builds a complete worker: the topology plus every agent and view registered on it."""

from __future__ import annotations

from catalogflow.agents import actions, catalog, commands, moderation, progress, sink
from catalogflow.streams import views
from catalogflow.streams.actions import load_registry
from catalogflow.streams.app import Topology, build_topology
from catalogflow.streams.settings import Settings


def build_worker(settings: Settings) -> Topology:
    topology = build_topology(settings, load_registry(settings))
    catalog.register(topology)
    commands.register(topology)
    actions.register(topology)
    moderation.register(topology)
    sink.register(topology)
    progress.register(topology)
    views.register(topology)
    return topology
