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
or a replay of unchanged input never calls (or pays for) the model again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from catalogflow.connectors.llm.provider import Completion, ModelEndpoint
from catalogflow.streams.actions import ActionFailure, ActionInput, ActionResult
from catalogflow.streams.actions.budget import BudgetBook, length_limits, override_of, schema_bound
from catalogflow.streams.actions.prompts import Prompt, PromptError, context_for, product_block

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
        async with self.budgets.sized(sizes, bound, override_of(request.settings)) as budget:
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
