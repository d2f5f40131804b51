"""The one small interface every action type implements, and the registry of them.

An action takes a product, its workflow step and what earlier steps produced, and
returns field outputs. It never sees Kafka. It reports a failure by raising
:class:`ActionFailure` with a category; anything else it raises is a bug, which the
step runner (:mod:`catalogflow.streams.steps`) records as an invalid-configuration
failure instead of crashing the stream. The step runner calls ``run`` once per step
and attempt, and only for a product in the step's scope whose ``reads`` have values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from catalogflow.streams.definitions import FieldRef, parse_field_ref
from catalogflow.streams.errors import CatalogflowError, ConfigError
from catalogflow.streams.plugins import register_plugin
from catalogflow.streams.records import ActionOutput, FailureCategory, ProductSnapshot, Value
from catalogflow.streams.rules import field_value, is_empty
from catalogflow.streams.settings import Settings

if TYPE_CHECKING:  # model.py imports this module: the type only, no import circle
    from catalogflow.streams.actions.model import Models


class ActionFailure(CatalogflowError):
    """The action could not produce output for this product; ``retryable`` says
    whether trying again later (``retry-failed``) can help (a 429 can, missing source
    data cannot). Nothing retries it automatically: a model client retries its own
    calls before it raises."""

    def __init__(self, category: FailureCategory, message: str, retryable: bool = False):
        super().__init__(f"{category}: {message}")
        self.category: FailureCategory = category
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class ActionInput:
    sku: str
    product: ProductSnapshot
    action_id: str
    settings: Mapping[str, Any]
    previous_outputs: tuple[ActionOutput, ...]  # oldest first
    attempt: int = 0
    reads: tuple[str, ...] = ()  # the source fields the workflow step declares
    cache: Any = None  # a ResultCache for model answers, when the worker has one
    feedback: str | None = None  # a reviewer's comment when the step is regenerated

    def value(self, attribute: str, locale: str | None = None, scope: str | None = None) -> Value:
        """An earlier action's output for the field, else the product's current value."""
        for output in reversed(self.previous_outputs):
            for produced in output["fields"]:
                if produced["field"] == attribute and produced["locale"] == locale:
                    return produced["value"]
        return field_value(self.product, FieldRef(attribute, locale, scope))

    def ref_value(self, text: str) -> Value:
        """The value of a field reference such as ``description@de_DE``."""
        ref = parse_field_ref(text)
        return self.value(ref.field, ref.locale, ref.scope)

    def missing(self, reads: Iterable[str]) -> list[str]:
        """The source fields among ``reads`` that are empty for this product."""
        return [str(parse_field_ref(text)) for text in reads if is_empty(self.ref_value(text))]


@dataclass(frozen=True)
class FieldResult:
    field: str
    value: Value
    locale: str | None = None
    reasoning: str | None = None
    confidence: float | None = None
    evidence: str | None = None
    needs_review: bool = False  # a check failed: never approve this value automatically


@dataclass(frozen=True)
class ActionResult:
    fields: tuple[FieldResult, ...]
    model: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


class Action(Protocol):
    """An action type. ``run`` may be called again for the same input after a crash
    (at-least-once); it must not have side effects outside its result."""

    type: str

    async def run(self, request: ActionInput) -> ActionResult: ...


def output_record(
    action_id: str, action_type: str, result: ActionResult, skipped: str | None = None
) -> ActionOutput:
    """The ActionOutput record the routing slip accumulates (``skipped``: why the action
    did not run or wrote nothing for this product)."""
    return {
        "action_id": action_id,
        "action_type": action_type,
        "fields": [
            {
                "field": f.field,
                "locale": f.locale,
                "value": f.value,
                "reasoning": f.reasoning,
                "confidence": f.confidence,
                "evidence": f.evidence,
                "approved": not f.needs_review,
            }
            for f in result.fields
        ],
        "model": result.model,
        "prompt_version": result.prompt_version,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost": result.cost,
        "skipped": skipped,
    }


@dataclass
class ActionRegistry:
    actions: dict[str, Action] = field(default_factory=dict)

    def register(self, action: Action) -> None:
        if action.type in self.actions:
            raise ConfigError(f"action type {action.type!r} is registered twice")
        self.actions[action.type] = action

    def get(self, action_type: str) -> Action | None:
        return self.actions.get(action_type)

    @property
    def types(self) -> list[str]:
        return sorted(self.actions)


def load_registry(settings: Settings, models: Models | None = None) -> ActionRegistry:
    """Built-in action types plus each plugin module's ``register(registry)``.

    Plugins (setting ``action_plugins``, comma-separated module names) are how a team
    adds its own action types without forking catalogflow. ``models`` is where the
    built-in AI actions call their models: the openai clients unless a test gives a
    twin.
    """
    from catalogflow.streams.actions.builtin import register_builtin

    registry = ActionRegistry()
    register_builtin(registry, settings, models)
    for name in settings.plugins:
        register_plugin(name, registry, "action plugin")
    return registry
