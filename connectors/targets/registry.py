"""The sync targets a worker knows, by the name workflows give in ``sync.targets``.

Built-in targets (Magento, the Merchant Center feed) plus each module named in the
``sync_plugins`` setting: a module with a ``register(registry)`` function that calls
:meth:`TargetRegistry.register`, the same way ``action_plugins`` adds action types.
The registry holds factories, so a command can list the names without building a
target; a worker builds each target once (:meth:`TargetRegistry.build`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from catalogflow.connectors.targets.base import SyncTarget, TargetContext, TargetFactory
from catalogflow.connectors.targets.builtin import BUILTIN_TARGETS
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.settings import Settings


@dataclass
class TargetRegistry:
    factories: dict[str, TargetFactory] = field(default_factory=dict)

    def register(self, name: str, factory: TargetFactory) -> None:
        if name in self.factories:
            raise ConfigError(f"sync target {name!r} is registered twice")
        self.factories[name] = factory

    @property
    def names(self) -> list[str]:
        return sorted(self.factories)

    def build(self, context: TargetContext) -> dict[str, SyncTarget]:
        """One target per name, for one worker."""
        return {name: factory(context) for name, factory in self.factories.items()}


def builtin_targets() -> TargetRegistry:
    """The targets every worker has (:data:`BUILTIN_TARGETS`)."""
    registry = TargetRegistry()
    for name, module in BUILTIN_TARGETS.items():
        _register_from(module, registry, "built-in sync target")
        if name not in registry.factories:
            raise ConfigError(f"built-in sync target module {module} did not register {name!r}")
    return registry


def load_targets(settings: Settings) -> TargetRegistry:
    """The built-in targets plus each ``sync_plugins`` module's ``register(registry)``."""
    registry = builtin_targets()
    for module in settings.sync_plugin_modules:
        _register_from(module, registry, "sync plugin")
    return registry


def _register_from(name: str, registry: TargetRegistry, what: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{what} {name!r} cannot be imported: {exc}") from exc
    register = getattr(module, "register", None)
    if not callable(register):
        raise ConfigError(f"{what} {name!r} has no register(registry) function")
    register(registry)
