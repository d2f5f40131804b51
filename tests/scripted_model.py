"""The scripted twin of the model client, for unit tests of model-backed actions.

It answers each call from a script keyed by the schema name the action asks with
(``content_enrichment``, ``translation_de_DE``, …), records every call, and holds its
answers to the schema as the real client does, so a test cannot pass on an answer a
real model call would have refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from catalogflow.connectors.llm.provider import Completion, ModelEndpoint, estimate_tokens
from catalogflow.streams.actions import ActionFailure
from catalogflow.streams.actions.model import Model

#: What the script gives for one schema name: the answer's data, or the failure to raise.
Answer = Mapping[str, Any] | ActionFailure


@dataclass(frozen=True)
class ModelCall:
    endpoint: ModelEndpoint
    system: str
    user: str
    schema_name: str
    max_output_tokens: int


class ScriptedModels:
    """A ``Models`` whose every model answers from ``script``; ``calls`` lists what the
    actions asked, in order."""

    def __init__(self, script: Mapping[str, Answer]) -> None:
        self.script = dict(script)
        self.calls: list[ModelCall] = []

    def get(self, endpoint: ModelEndpoint) -> Model:
        return ScriptedModel(self, endpoint)


class ScriptedModel:
    def __init__(self, models: ScriptedModels, endpoint: ModelEndpoint) -> None:
        self.models = models
        self.endpoint = endpoint

    async def complete(
        self,
        *,
        system: str,
        user: str,
        schema_name: str,
        schema: dict[str, Any],
        max_output_tokens: int = 1024,
        retry_output_tokens: int | None = None,
    ) -> Completion:
        self.models.calls.append(
            ModelCall(self.endpoint, system, user, schema_name, max_output_tokens)
        )
        answer = self.models.script.get(schema_name)
        if answer is None:
            raise LookupError(f"the script has no answer for schema {schema_name!r}")
        if isinstance(answer, ActionFailure):
            raise answer
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(answer)
        )
        if error is not None:
            raise ActionFailure("INVALID_OUTPUT", f"answer breaks the schema: {error.message}")
        content = json.dumps(answer)
        input_tokens = estimate_tokens(system + user)
        output_tokens = estimate_tokens(content)
        cost = (
            input_tokens * self.endpoint.price_input_per_million
            + output_tokens * self.endpoint.price_output_per_million
        ) / 1_000_000
        return Completion(
            data=json.loads(content),
            content=content,
            token_logprobs=None,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            model=self.endpoint.model,
            attempts=1,
            latency_s=0.0,
            budget=max_output_tokens,
            answer_tokens=output_tokens,
        )
