"""What every model-backed action shares: which endpoint to call, rendering the
prompt, the completion budget, and the result cache in front of the model.

Actions speak to models only through :class:`Models` and :class:`Model`: the provider's
``ClientPool`` and ``LLMClient`` (the openai client) are the real ones; unit tests give
an action a scripted twin instead (``tests/scripted_model.py``).

The completion budget (``max_completion_tokens``) is sized per action and prompt
version by :mod:`catalogflow.streams.actions.budget`: from the schema and the action's
length settings until a few answers came back, then from their ``usage``.

The cache key covers the endpoint, the model, the prompt version and the rendered
prompt itself, so any change to what the model would see is a new key, and a re-run
or a replay of unchanged input never calls (or pays for) the model again. Whether the
answer came live or through the Batch API is not part of it: it is the same answer.

``settings.model: {batch: true}`` sends an action's calls through the Batch API
(``connectors/llm/batch.py``); :func:`check_batch_settings` allows it in one-time
workflows only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from catalogflow.connectors.llm.provider import Completion, ModelEndpoint
from catalogflow.streams.actions import ActionFailure, ActionInput, ActionResult
from catalogflow.streams.actions.budget import BudgetBook, length_limits, override_of, schema_bound
from catalogflow.streams.actions.prompts import Prompt, PromptError, context_for, product_block
from catalogflow.streams.definitions import Problem, WorkflowDefinition

#: Endpoint fields an action's ``settings.model`` may override (never a key itself).
_OVERRIDABLE = {f.name for f in dataclasses.fields(ModelEndpoint)} - {"name"}


class Model(Protocol):
    """One model behind one endpoint. ``complete`` returns an answer validated against
    ``schema``, or raises :class:`ActionFailure` with its category; it tries the call
    as often as its retry policy says, so the caller never retries it."""

    async def complete(
        self,
        *,
        system: str,
        user: str,
        schema_name: str,
        schema: dict[str, Any],
        max_output_tokens: int = ...,
        retry_output_tokens: int | None = ...,
    ) -> Completion: ...


class Models(Protocol):
    """Where an action finds the model of an endpoint (one per worker process)."""

    def get(self, endpoint: ModelEndpoint) -> Model: ...


class ResultCache(Protocol):
    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, prompt_version: str, completion: Completion) -> None: ...


class NoCache:
    def get(self, key: str) -> Completion | None:
        return None

    def put(self, key: str, prompt_version: str, completion: Completion) -> None:
        pass


@dataclass(frozen=True)
class ModelAnswer:
    completion: Completion
    prompt_version: str
    cached: bool


def endpoint_for(default: ModelEndpoint, settings: Mapping[str, Any]) -> ModelEndpoint:
    """The worker's default endpoint with the action's ``model`` settings on top:
    a model name, or a mapping of endpoint fields (``base_url``, ``kind``, limits,
    prices, ``api_key_env`` — the name of the variable, never the key)."""
    chosen = settings.get("model")
    if chosen is None:
        return default
    if isinstance(chosen, str):
        return dataclasses.replace(default, model=chosen, name=chosen)
    unknown = sorted(set(chosen) - _OVERRIDABLE)
    if unknown:
        raise ActionFailure(
            "INVALID_PROMPT", f"settings.model has unknown keys {', '.join(unknown)}"
        )
    return dataclasses.replace(default, **chosen)


def _whole(value: Any, least: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: The Batch API's endpoint fields (besides ``batch``): what each value must be.
_BATCH_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "batch_size": ("a whole number from 1 to 50000", lambda v: _whole(v) and v <= 50_000),
    "batch_resubmits": ("a whole number from 0", lambda v: _whole(v, least=0)),
    "batch_max_in_flight": ("a whole number from 1", _whole),
    "batch_linger_s": ("a number of seconds above 0", lambda v: _number(v) and v > 0),
    "batch_poll_s": ("a number of seconds above 0", lambda v: _number(v) and v > 0),
    "batch_price_factor": ("a number above 0, at most 1", lambda v: _number(v) and 0 < v <= 1),
}


def check_batch_settings(definition: WorkflowDefinition, source: str) -> list[Problem]:
    """``settings.model.batch`` and the ``batch_*`` fields of every action: values of
    the right kind, and the Batch API only in a one-time workflow (a continuous one's
    changes would wait up to 24 hours for their answers)."""
    problems = []
    for index, spec in enumerate(definition.actions):
        chosen = spec.settings.get("model")
        if not isinstance(chosen, Mapping):
            continue
        path = f"actions[{index}].settings.model"
        batch = chosen.get("batch", False)
        if not isinstance(batch, bool):
            wrong = f"expected true or false, got {batch!r}"
            problems.append(Problem(source, f"{path}.batch", wrong))
        elif batch and definition.mode != "one_time":
            problems.append(
                Problem(
                    source,
                    f"{path}.batch",
                    "the Batch API is for one-time workflows: a continuous workflow's "
                    "changes would wait up to 24 hours for their answers; remove batch "
                    "or make the workflow's mode one_time",
                )
            )
        for name, (expected, good) in _BATCH_FIELDS.items():
            if name in chosen and not good(chosen[name]):
                problems.append(
                    Problem(source, f"{path}.{name}", f"expected {expected}, got {chosen[name]!r}")
                )
    return problems


class ModelAction:
    """Base of the AI action types: subclasses build the prompt and the schema and
    interpret the answer."""

    type = ""
    default_prompt = Prompt(system="", user="")

    def __init__(self, clients: Models, default_endpoint: ModelEndpoint) -> None:
        self.clients = clients
        self.default_endpoint = default_endpoint
        self.budgets = BudgetBook()

    async def run(self, request: ActionInput) -> ActionResult:
        raise NotImplementedError

    @classmethod
    def prompt(cls, settings: Mapping[str, Any]) -> Prompt:
        """The action's template: its ``settings.prompt`` (system and/or user), else
        the built-in one."""
        custom = settings.get("prompt") or {}
        return Prompt(
            system=custom.get("system", cls.default_prompt.system),
            user=custom.get("user", cls.default_prompt.user),
        )

    async def ask(
        self,
        request: ActionInput,
        reads: tuple[str, ...],
        schema_name: str,
        schema: dict[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> ModelAnswer:
        endpoint = endpoint_for(self.default_endpoint, request.settings)
        prompt = self.prompt(request.settings)
        context = context_for(request, reads) | dict(extra or {})
        context["product_block"] = product_block(context)
        try:
            system, user = prompt.render(context)
        except PromptError as exc:
            raise ActionFailure("INVALID_PROMPT", str(exc)) from exc
        if request.feedback:
            # A new prompt, so a new cache key: regenerating never returns the old answer.
            user += f"\n\nA reviewer rejected your previous answer: {request.feedback}"
        version = prompt.version(schema)
        key = hashlib.sha256(
            "\x1f".join(
                (endpoint.kind, endpoint.base_url or "", endpoint.model, version, system, user)
            ).encode()
        ).hexdigest()
        cache = request.cache or NoCache()
        hit = cache.get(key)
        if hit is not None:
            return ModelAnswer(hit, version, cached=True)
        sizes = (endpoint.kind, endpoint.base_url or "", endpoint.model, version)
        bound = schema_bound(schema, length_limits(request.settings, extra or {}))
        override = override_of(request.settings)
        if endpoint.batch and override is None:
            # A batch's answers come back together, so learning the budget from two
            # first answers would hold every other call back for a whole batch; and
            # the Batch API's queue limit counts prompt tokens, not the budget.
            override = bound
        async with self.budgets.sized(sizes, bound, override) as budget:
            completion = await self.clients.get(endpoint).complete(
                system=system,
                user=user,
                schema_name=schema_name,
                schema=schema,
                max_output_tokens=budget.tokens,
                retry_output_tokens=budget.retry,
            )
            self.budgets.observe(sizes, completion.answer_tokens)
        cache.put(key, version, completion)
        return ModelAnswer(completion, version, cached=False)
