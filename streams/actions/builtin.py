"""The action types catalogflow ships, wired to the worker's default model endpoint."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from catalogflow.connectors.llm.provider import ClientPool, ModelEndpoint
from catalogflow.streams.actions import ActionRegistry
from catalogflow.streams.actions.budget import check_budget_settings
from catalogflow.streams.actions.categories import CategoryMapping
from catalogflow.streams.actions.enrichment import ContentEnrichment
from catalogflow.streams.actions.extraction import AttributeExtraction
from catalogflow.streams.actions.model import ModelAction, Models, check_batch_settings
from catalogflow.streams.actions.prompts import PromptError, check_template
from catalogflow.streams.actions.quality import QualityScoring, produced_fields
from catalogflow.streams.actions.translation import Translation
from catalogflow.streams.actions.validation import Validation
from catalogflow.streams.definitions import (
    DefinitionError,
    Problem,
    WorkflowDefinition,
    load_definition,
)
from catalogflow.streams.settings import Settings


def default_endpoint(settings: Settings) -> ModelEndpoint:
    return ModelEndpoint(
        name="default",
        model=settings.llm_model,
        base_url=settings.llm_base_url or None,
        kind=settings.llm_kind,
        api_key_env=settings.llm_api_key_env,
        rpm=settings.llm_rpm or None,
        tpm=settings.llm_tpm or None,
        timeout_s=settings.llm_timeout,
        price_input_per_million=settings.llm_price_input,
        price_output_per_million=settings.llm_price_output,
        batch_price_factor=settings.llm_batch_price_factor,
        max_concurrency=settings.action_concurrency,
    )


def register_builtin(
    registry: ActionRegistry, settings: Settings, models: Models | None = None
) -> None:
    """The built-in types, calling ``models`` (default: the openai clients)."""
    clients = models if models is not None else ClientPool()
    endpoint = default_endpoint(settings)
    for action in (
        AttributeExtraction(clients, endpoint),
        ContentEnrichment(clients, endpoint),
        Translation(clients, endpoint),
        CategoryMapping(clients, endpoint),
        QualityScoring(clients, endpoint),
    ):
        registry.register(action)
    registry.register(Validation())


#: The fields each AI action type produces, as later templates name them in ``outputs``.
_PRODUCES: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "attribute_extraction": lambda s: [str(a["name"]) for a in s.get("attributes", [])],
    "content_enrichment": lambda s: [str(f) for f in s.get("fields", [])],
    "translation": lambda s: [
        f"{f}_{locale}" for f in s.get("fields", []) for locale in s.get("locales", [])
    ],
    "category_mapping": lambda s: ["categories"],
    "quality_scoring": produced_fields,
}
_PROMPTED: dict[str, type[ModelAction]] = {
    cls.type: cls
    for cls in (
        AttributeExtraction,
        ContentEnrichment,
        Translation,
        CategoryMapping,
        QualityScoring,
    )
}


def check_prompts(definition: WorkflowDefinition, source: str) -> list[Problem]:
    """Every prompt of the workflow rendered against what its action may use: an
    undeclared field or a template that does not render is an invalid-prompt problem."""
    problems = []
    earlier: list[str] = []
    for index, spec in enumerate(definition.actions):
        cls = _PROMPTED.get(spec.type)
        if cls is not None:
            extra = {
                "fields": [{"name": f, "max_length": 1} for f in spec.settings.get("fields", [])],
                "locale": "xx_XX",
            }
            try:
                check_template(cls.prompt(spec.settings), spec.reads, earlier, spec.settings, extra)
            except PromptError as exc:
                problems.append(
                    Problem(source, f"actions[{index}].settings.prompt", f"invalid prompt: {exc}")
                )
        produces = _PRODUCES.get(spec.type)
        if produces is not None:
            earlier.extend(produces(spec.settings))
    return problems


def load_workflow(
    path: Path,
    extra_action_types: Collection[str] = (),
    sync_targets: Collection[str] | None = None,
) -> WorkflowDefinition:
    """A definition file, validated including its prompts (``DefinitionError`` lists
    every problem); ``sync_targets`` as in :func:`parse_definition`."""
    definition = load_definition(path, extra_action_types, sync_targets)
    problems = (
        check_prompts(definition, str(path))
        + check_budget_settings(definition, str(path))
        + check_batch_settings(definition, str(path))
    )
    if problems:
        raise DefinitionError(problems)
    return definition
