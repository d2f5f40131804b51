"""The sync targets a worker knows, by the name workflows give in ``sync.targets``.

Built-in targets (Magento, the Merchant Center feed) plus each module named in the
``sync_plugins`` setting: a module with a ``register(registry)`` function that calls
:meth:`TargetRegistry.register`, the same way ``action_plugins`` adds action types.
The registry holds factories, so a command can list the names without building a
target; a worker builds each target once (:meth:`TargetRegistry.build`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from catalogflow.connectors.targets.base import (
    SyncTarget,
    TargetContext,
    TargetFactory,
    write_limit,
)
from catalogflow.connectors.targets.builtin import BUILTIN_TARGETS
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.plugins import register_plugin
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
        """One target per name, for one worker; a bad ``concurrency`` stops the start."""
        targets = {name: factory(context) for name, factory in self.factories.items()}
        for name, target in targets.items():
            write_limit(name, target)
        return targets


def builtin_targets() -> TargetRegistry:
    """The targets every worker has (:data:`BUILTIN_TARGETS`)."""
    registry = TargetRegistry()
    for name, module in BUILTIN_TARGETS.items():
        register_plugin(module, registry, "built-in sync target")
        if name not in registry.factories:
            raise ConfigError(f"built-in sync target module {module} did not register {name!r}")
    return registry


def load_targets(settings: Settings) -> TargetRegistry:
    """The built-in targets plus each ``sync_plugins`` module's ``register(registry)``."""
    registry = builtin_targets()
    for module in settings.sync_plugin_modules:
        register_plugin(module, registry, "sync plugin")
    return registry
