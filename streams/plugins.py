"""Loading a plug-in module: the one way action types and sync targets are added from
outside catalogflow (settings ``action_plugins`` and ``sync_plugins``)."""

from __future__ import annotations

import importlib

from catalogflow.streams.errors import ConfigError


def register_plugin(name: str, registry: object, what: str) -> None:
    """Import module ``name`` and call its ``register(registry)``; a module that cannot
    be imported or has no such function is a ConfigError naming it (``what`` says which
    kind of plug-in, e.g. "action plugin")."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{what} {name!r} cannot be imported: {exc}") from exc
    register = getattr(module, "register", None)
    if not callable(register):
        raise ConfigError(f"{what} {name!r} has no register(registry) function")
    register(registry)
