"""Builds a complete worker: the topology plus every agent and view registered on it."""

from __future__ import annotations

from catalogflow.agents import catalog
from catalogflow.streams import views
from catalogflow.streams.app import Topology, build_topology
from catalogflow.streams.settings import Settings


def build_worker(settings: Settings) -> Topology:
    topology = build_topology(settings)
    catalog.register(topology)
    views.register(topology)
    return topology
