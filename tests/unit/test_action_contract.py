"""Every registered action type held to the step contract (``streams/steps.py``): the
built-in types, and a plug-in loaded through the ``action_plugins`` setting, run through
the same checks by the step runner the agents and ``workflow dry-run`` use.

A new action type needs a case in CASES, or the first test fails: it is not done until
it keeps the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions import (
    Action,
    ActionFailure,
    ActionInput,
    ActionRegistry,
    ActionResult,
    FieldResult,
    load_registry,
    output_record,
)
from catalogflow.streams.actions.model import ModelAction
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.definitions import ActionScope, ActionSpec, parse_field_ref
from catalogflow.streams.engine import advance, new_task
from catalogflow.streams.products import apply_change
from catalogflow.streams.records import (
    ActionOutput,
    FailureCategory,
    ProductSnapshot,
    SnapshotValue,
    Value,
)
from catalogflow.streams.rules import field_value
from catalogflow.streams.settings import Settings
from catalogflow.streams.steps import Failed, Produced, Skipped, run_step

from tests.scripted_model import Answer, ScriptedModels

PLUGIN = "tests.integration.engine_actions"
#: PF-000000: Dry Cat Food, "NorthPaw recipe with real salmon for adult cats. …"
PRODUCT = apply_change(None, next(sample_changes(1)))
DESCRIPTION = "NorthPaw recipe with real salmon for adult cats."
TREE = ["Pet Food/Cat/Dry Cat Food", "Pet Food/Dog/Dry Dog Food"]


def earlier(action_id: str, action_type: str, *fields: FieldResult) -> ActionOutput:
    return output_record(action_id, action_type, ActionResult(fields=fields))


@dataclass(frozen=True)
class Case:
    """How one action type produces ``produces`` (a field reference) for PRODUCT, and
    which settings on top make it fail with ``failure``."""

    settings: Mapping[str, Any]
    produces: str
    failing: Mapping[str, Any]
    failure: FailureCategory
    reads: tuple[str, ...] = ()
    answers: Mapping[str, Answer] = field(default_factory=dict)
    previous: tuple[ActionOutput, ...] = ()


#: Settings that every model action refuses: an endpoint field that does not exist.
BAD_MODEL = {"model": {"no_such_field": 1}}

CASES = {
    "attribute_extraction": Case(
        settings={"attributes": [{"name": "texture", "description": "kibble or wet"}]},
        reads=("description",),
        answers={
            "attribute_extraction": {
                "attributes": {
                    "texture": {
                        "value": "recipe",
                        "evidence": DESCRIPTION,
                        "reasoning": "the description calls it a recipe",
                    }
                }
            }
        },
        produces="texture",
        failing=BAD_MODEL,
        failure="INVALID_PROMPT",
    ),
    "content_enrichment": Case(
        settings={"fields": ["shopping_title"]},
        reads=("name", "description"),
        answers={
            "content_enrichment": {
                "fields": {
                    "shopping_title": {"value": "NorthPaw Salmon", "reasoning": "brand, flavour"}
                }
            }
        },
        produces="shopping_title",
        failing=BAD_MODEL,
        failure="INVALID_PROMPT",
    ),
    "translation": Case(
        settings={"fields": ["name"], "locales": ["de_DE"]},
        answers={
            "translation_de_DE": {
                "fields": {"name": {"value": "NorthPaw Trockenfutter", "reasoning": "German"}}
            }
        },
        produces="name@de_DE",
        failing=BAD_MODEL,
        failure="INVALID_PROMPT",
    ),
    "category_mapping": Case(
        settings={"category_tree": TREE},
        reads=("name",),
        answers={"category_mapping": {"categories": TREE[:1], "reasoning": "a cat food"}},
        produces="categories",
        failing=BAD_MODEL,
        failure="INVALID_PROMPT",
    ),
    "validation": Case(
        settings={"rules": {"max_length": {"name": 5}, "on_fail": "review"}},
        produces="name",
        failing={"rules": {"max_length": {"name": 5}, "on_fail": "error"}},
        failure="INVALID_OUTPUT",
    ),
    "quality_scoring": Case(
        settings={
            "required_fields": ["name", "brand"],
            "banned_words": ["cheap"],
            "rubric": "Names the flavour and the life stage.",
        },
        answers={"quality_rubric": {"score": 90, "reason": "names salmon and adult cats"}},
        produces="quality_score",
        failing=BAD_MODEL,
        failure="INVALID_PROMPT",
    ),
    # The plug-in types of the engine tests (tests/integration/engine_actions.py).
    "test_extract": Case(
        settings={},
        reads=("description",),
        produces="flavor",
        failing={"fail": {"PF-000000": "PROVIDER_LIMITATION"}},
        failure="PROVIDER_LIMITATION",
    ),
    "test_enrich": Case(
        settings={},
        previous=(earlier("extract", "test_extract", FieldResult("flavor", "Salmon")),),
        produces="shopping_title",
        failing={"fail": {"PF-000000": "INVALID_OUTPUT"}},
        failure="INVALID_OUTPUT",
    ),
    "test_translate": Case(
        settings={},
        previous=(earlier("enrich", "test_enrich", FieldResult("shopping_title", "Salmon")),),
        produces="shopping_title@de_DE",
        failing={"fail": {"PF-000000": "SYNC_ISSUE"}},
        failure="SYNC_ISSUE",
    ),
}
MODEL_TYPES = [kind for kind, case in CASES.items() if case.answers]


class Counting:
    """The registered action, counting how often the step runner calls it."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.type = action.type
        self.calls = 0

    async def run(self, request: ActionInput) -> ActionResult:
        self.calls += 1
        return await self.action.run(request)


def registry(models: ScriptedModels) -> ActionRegistry:
    """The registry a worker builds, with the plug-in, calling the scripted models."""
    return load_registry(Settings.load(environ={}).replace(action_plugins=PLUGIN), models)


def setup(kind: str, **changes: Any) -> tuple[Counting, ActionSpec, ScriptedModels]:
    case = CASES[kind]
    models = ScriptedModels(case.answers)
    action = registry(models).get(kind)
    assert action is not None
    values = {"settings": case.settings, "reads": case.reads, **changes}
    return Counting(action), ActionSpec(id="step", type=kind, **values), models


def with_value(product: ProductSnapshot, ref_text: str, value: Value) -> ProductSnapshot:
    """``product`` with ``value`` at the field reference, as a person had written it."""
    ref = parse_field_ref(ref_text)
    others = [
        v
        for v in product["values"]
        if (v["attribute"], v["locale"], v["scope"]) != (ref.field, ref.locale, ref.scope)
    ]
    written: SnapshotValue = {
        "attribute": ref.field,
        "locale": ref.locale,
        "scope": ref.scope,
        "value": value,
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
        "author_kind": "PERSON",
    }
    return {**product, "values": [*others, written]}


def produced_refs(output: ActionOutput) -> list[str]:
    return [f["field"] + (f"@{f['locale']}" if f["locale"] else "") for f in output["fields"]]


def test_every_registered_action_type_has_a_contract_case() -> None:
    assert sorted(CASES) == registry(ScriptedModels({})).types


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_in_scope_it_produces_an_output_record_a_task_can_carry(kind: str) -> None:
    action, spec, _ = setup(kind)
    step = await run_step(action, spec, PRODUCT, previous_outputs=CASES[kind].previous)
    assert isinstance(step, Produced), step
    output = step.output
    assert (output["action_id"], output["action_type"], output["skipped"]) == ("step", kind, None)
    assert CASES[kind].produces in produced_refs(output)
    task = new_task(
        run_id="w.v1.r",
        workflow_id="w",
        workflow_version=1,
        sku="PF-000000",
        steps=["step"],
        definition_json="{}",
        input_hash="h",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        origin={"topic": "partition-commands", "partition": 0, "offset": 0},
    )
    schemas = SchemaStore.shipped()
    carried = schemas.decode(schemas.encode("Task", advance(task, output)), expected="Task")
    assert carried["outputs"] == [output]


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_out_of_scope_it_is_skipped_with_the_reason_and_not_called(kind: str) -> None:
    action, spec, models = setup(kind, scope=ActionScope(categories=("Pet Food/Dog",)))
    step = await run_step(action, spec, PRODUCT, previous_outputs=CASES[kind].previous)
    assert isinstance(step, Skipped), step
    assert step.output["fields"] == []
    assert step.output["skipped"] == step.reason == "not in categories Pet Food/Dog"
    assert action.calls == 0 and models.calls == []


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_an_empty_read_fails_as_incomplete_source_data_before_any_call(kind: str) -> None:
    action, spec, models = setup(kind, reads=(*CASES[kind].reads, "color@de_DE"))
    step = await run_step(action, spec, PRODUCT, previous_outputs=CASES[kind].previous)
    assert isinstance(step, Failed), step
    assert step.failure.category == "INCOMPLETE_SOURCE_DATA"
    assert "color@de_DE" in step.failure.message
    assert action.calls == 0 and models.calls == []


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_a_product_gone_from_the_catalog_fails_as_incomplete_source_data(kind: str) -> None:
    action, spec, _ = setup(kind)
    step = await run_step(action, spec, {**PRODUCT, "deleted": True})
    assert isinstance(step, Failed), step
    assert step.failure.category == "INCOMPLETE_SOURCE_DATA"
    assert action.calls == 0


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_only_empty_keeps_a_value_the_product_already_has(kind: str) -> None:
    case = CASES[kind]
    action, spec, _ = setup(kind, scope=ActionScope(only_empty=True))
    product = with_value(PRODUCT, case.produces, "written by a person")
    step = await run_step(action, spec, product, previous_outputs=case.previous)
    assert isinstance(step, Produced), step
    assert case.produces not in produced_refs(step.output)
    assert step.note is not None and case.produces in step.note
    assert field_value(product, parse_field_ref(case.produces)) == "written by a person"


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_a_failure_ends_the_step_with_its_category(kind: str) -> None:
    case = CASES[kind]
    action, spec, _ = setup(kind, settings={**case.settings, **case.failing})
    step = await run_step(action, spec, PRODUCT, previous_outputs=case.previous)
    assert isinstance(step, Failed), step
    assert step.failure.category == case.failure
    assert action.calls == 1


@pytest.mark.parametrize("kind", MODEL_TYPES)
async def test_a_model_failure_keeps_its_category_and_the_model_is_asked_once(kind: str) -> None:
    action, spec, models = setup(kind)
    assert isinstance(action.action, ModelAction)
    down = ActionFailure("PROVIDER_LIMITATION", "server error (500) after 4 attempts", True)
    models.script = {name: down for name in models.script}
    step = await run_step(action, spec, PRODUCT)
    assert isinstance(step, Failed), step
    assert step.failure.category == "PROVIDER_LIMITATION"
    assert len(models.calls) == 1
