"""How many completion tokens a model-backed action asks for (``max_completion_tokens``).

OpenAI counts a request's prompt *plus* its completion budget against the
tokens-per-minute limit when it admits the request, so a budget far above what the
answer needs wastes the limit: 1,024 reserved for a 120-token answer makes the token
limit bind at a fraction of the request limit. The budget is therefore sized per action:

* **Bound from the schema** (:func:`schema_bound`): the most tokens the JSON answer can
  take given its fields, allowed values (enums), ``maxLength`` and the action's length
  settings (``max_length`` per field or ``field@locale``, or the fields the action
  passes its prompt). Used until enough answers were seen, and to retry a cut-off one.
* **Learned** (:class:`BudgetBook`): once ``WARMUP`` answers of an action and prompt
  version came back, a high percentile of their ``usage.completion_tokens`` with a
  margin (wider while few were seen), never above the bound.
* **Overridden**: ``settings.max_completion_tokens`` fixes the budget
  (:func:`check_budget_settings` validates it at ``workflow validate``).

An answer cut off at its budget is retried once with :attr:`Budget.retry` (the
provider does that) and is an INVALID_OUTPUT failure when cut off again.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from catalogflow.streams.definitions import Problem, WorkflowDefinition

__all__ = [
    "Budget",
    "BudgetBook",
    "check_budget_settings",
    "length_limits",
    "schema_bound",
]

#: The setting that fixes an action's budget.
SETTING = "max_completion_tokens"
#: Characters per token of generated text, low on purpose: German, HTML and JSON
#: escapes tokenise denser than English prose (OpenAI's tokenisers give ~4 for English).
CHARS_PER_TOKEN_OUT = 3.0
#: A free string nothing limits (reasoning, evidence): a few sentences.
FREE_TEXT_CHARS = 600
#: Items assumed for an array without ``maxItems``.
DEFAULT_ITEMS = 20
#: Answers to see before the learned size replaces the schema bound: few, because
#: the bound can be many times the need (a 5,000-character description limit) and
#: every request reserves it; a too-small guess costs one retry, not a wrong value.
WARMUP = 2
#: Until this many answers were seen the margin is wider.
SETTLED = 20
WARM_MARGIN = 1.5
#: Recent answers the percentile is taken over.
KEPT = 200
PERCENTILE = 0.99
#: Learned budget = percentile * MARGIN + MARGIN_TOKENS: room for an answer somewhat
#: longer than any seen (a longer product text) without a cut-off and retry.
MARGIN = 1.2
MARGIN_TOKENS = 16
MIN_BUDGET = 16
#: The largest budget a setting may ask for (the largest completion limit of current
#: OpenAI models is well below this).
MAX_BUDGET = 100_000


@dataclass(frozen=True)
class Budget:
    """What to ask for: ``tokens`` first, ``retry`` after a cut-off answer."""

    tokens: int
    retry: int
    source: str  # "schema", "learned" or "setting", for logs and tests


def length_limits(settings: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, int]:
    """Property name -> most characters, from what the action told its prompt
    (``extra["fields"]``: ``{"name", "max_length"}`` mappings) and its ``max_length``
    setting (``field`` or ``field@<extra["locale"]>``; the locale-specific one wins)."""
    limits: dict[str, int] = {}
    for field in extra.get("fields") or []:
        if isinstance(field, Mapping) and _whole(field.get("max_length")):
            limits[str(field["name"])] = int(field["max_length"])
    explicit = settings.get("max_length")
    if isinstance(explicit, Mapping):
        locale = extra.get("locale")
        for key, value in explicit.items():
            if _whole(value) and "@" not in str(key):
                limits[str(key)] = int(value)
        for key, value in explicit.items():
            name, _, at = str(key).partition("@")
            if _whole(value) and at and at == locale:
                limits[name] = int(value)
    return limits


def schema_bound(schema: Mapping[str, Any], limits: Mapping[str, int] | None = None) -> int:
    """The most tokens a JSON answer of ``schema`` can take: every property, the
    longest allowed value, strings at their ``maxLength`` or the ``limits`` of their
    property (a ``value`` property inherits its parent's limit), free strings at
    ``FREE_TEXT_CHARS``."""
    return max(MIN_BUDGET, math.ceil(_bound(schema, None, dict(limits or {}))))


def _bound(node: Any, limit: int | None, limits: Mapping[str, int]) -> float:
    if not isinstance(node, Mapping):
        return 1.0
    if "enum" in node:
        return max((_json_tokens(v) for v in node["enum"]), default=1.0)
    if "const" in node:
        return _json_tokens(node["const"])
    for keyword in ("anyOf", "oneOf"):
        if isinstance(node.get(keyword), list):
            return max((_bound(o, limit, limits) for o in node[keyword]), default=1.0)
    types = node.get("type")
    kinds = set(types) if isinstance(types, list) else {types}
    if "object" in kinds or "properties" in node:
        total = 2.0  # braces
        for key, sub in (node.get("properties") or {}).items():
            own = limits.get(key)
            inherited = own if own is not None else (limit if key == "value" else None)
            total += _text_tokens(json.dumps(key)) + 1 + _bound(sub, inherited, limits)
        return total
    if "array" in kinds:
        items = float(node.get("maxItems", DEFAULT_ITEMS))
        return 2.0 + items * (_bound(node.get("items"), None, limits) + 1)
    if "string" in kinds:
        chars = float(node.get("maxLength") or limit or FREE_TEXT_CHARS)
        return chars / CHARS_PER_TOKEN_OUT + 2
    if kinds & {"number", "integer"}:
        return 8.0
    return 2.0  # boolean, null


def _json_tokens(value: Any) -> float:
    return _text_tokens(json.dumps(value, ensure_ascii=False))


def _text_tokens(text: str) -> float:
    return max(1.0, len(text) / CHARS_PER_TOKEN_OUT)


class BudgetBook:
    """The completion sizes seen per key (an action's model and prompt version), and
    the budget they call for. One per action instance, so per worker process.

    While a key has fewer than ``WARMUP`` answers, only that many calls go out with the
    schema bound at once (:meth:`sized`); the others wait for their answers instead of
    all reserving the bound, which can be many times the need."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], deque[int]] = {}
        self._probing: dict[tuple[str, ...], int] = {}
        self._changed: dict[tuple[str, ...], asyncio.Condition] = {}

    @asynccontextmanager
    async def sized(
        self, key: tuple[str, ...], bound: int, override: int | None = None
    ) -> AsyncIterator[Budget]:
        """The budget for one call, held for the call's duration (see the class)."""
        if override is not None or self._learned(key):
            yield self.budget(key, bound, override)
            return
        changed = self._changed.setdefault(key, asyncio.Condition())
        async with changed:
            await changed.wait_for(
                lambda: (
                    self._learned(key)
                    or self._probing.get(key, 0) < WARMUP - len(self._seen.get(key, ()))
                )
            )
            budget = self.budget(key, bound)
            probing = budget.source == "schema"
            if probing:
                self._probing[key] = self._probing.get(key, 0) + 1
        try:
            yield budget
        finally:
            async with changed:
                if probing:
                    self._probing[key] -= 1
                changed.notify_all()

    def _learned(self, key: tuple[str, ...]) -> bool:
        return len(self._seen.get(key, ())) >= WARMUP

    def budget(self, key: tuple[str, ...], bound: int, override: int | None = None) -> Budget:
        if override is not None:
            return Budget(override, 2 * override, "setting")
        seen = self._seen.get(key)
        if seen is None or len(seen) < WARMUP:
            return Budget(bound, 2 * bound, "schema")
        margin = MARGIN if len(seen) >= SETTLED else WARM_MARGIN
        learned = math.ceil(_percentile(sorted(seen), PERCENTILE) * margin) + MARGIN_TOKENS
        tokens = max(MIN_BUDGET, min(bound, learned))
        return Budget(tokens, max(bound, 2 * tokens), "learned")

    def observe(self, key: tuple[str, ...], completion_tokens: int) -> None:
        """An answer that was not cut off used ``completion_tokens``."""
        if completion_tokens > 0:
            self._seen.setdefault(key, deque(maxlen=KEPT)).append(completion_tokens)


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    return float(ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)])


def override_of(settings: Mapping[str, Any]) -> int | None:
    """The action's ``max_completion_tokens`` setting (validated beforehand)."""
    value: Any = settings.get(SETTING)
    return int(value) if _whole(value) else None


def check_budget_settings(definition: WorkflowDefinition, source: str) -> list[Problem]:
    """``settings.max_completion_tokens`` of every action: a whole number from
    ``MIN_BUDGET`` to ``MAX_BUDGET`` when given."""
    problems = []
    for index, spec in enumerate(definition.actions):
        if SETTING not in spec.settings:
            continue
        value = spec.settings[SETTING]
        if not _whole(value) or not MIN_BUDGET <= value <= MAX_BUDGET:
            problems.append(
                Problem(
                    source,
                    f"actions[{index}].settings.{SETTING}",
                    f"expected a whole number of tokens from {MIN_BUDGET} to {MAX_BUDGET}, "
                    f"got {value!r}",
                )
            )
    return problems


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
