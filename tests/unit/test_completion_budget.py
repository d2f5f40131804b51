"""Completion budgets: sized from the schema and settings, learned from usage,
overridable, and large enough that no answer of the seed example is cut off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from catalogflow.connectors.llm.provider import ClientPool, Completion, LLMClient, ModelEndpoint
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions import ActionInput, output_record
from catalogflow.streams.actions.budget import (
    WARMUP,
    BudgetBook,
    check_budget_settings,
    length_limits,
    schema_bound,
)
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.actions.enrichment import ContentEnrichment, text_fields_schema
from catalogflow.streams.actions.extraction import AttributeExtraction, extraction_schema
from catalogflow.streams.actions.translation import Translation
from catalogflow.streams.definitions import DefinitionError
from catalogflow.streams.products import apply_change
from catalogflow.streams.records import ActionOutput
from catalogflow.streams.rules import matches
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread

SEED = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"


def test_the_schema_bound_grows_with_length_limits_and_allowed_values() -> None:
    fields = [{"name": "shopping_title", "max_length": 150}]
    short = schema_bound(text_fields_schema(fields), {"shopping_title": 150})
    long = schema_bound(text_fields_schema(fields), {"shopping_title": 1500})
    assert long - short == pytest.approx(1350 / 3, abs=2)  # the value, not the reasoning
    few = schema_bound(extraction_schema([{"name": "Flavor", "allowed_values": ["Beef"]}]))
    many = schema_bound(
        extraction_schema([{"name": "Flavor", "allowed_values": ["Beef", "Chicken and Rice"]}])
    )
    assert many > few
    assert schema_bound(text_fields_schema(fields)) < schema_bound(
        text_fields_schema([*fields, {"name": "meta_title", "max_length": 60}])
    )


def test_length_limits_come_from_the_prompt_fields_and_the_locale_setting() -> None:
    settings = {"max_length": {"shopping_title": 80, "shopping_title@de_DE": 90}}
    extra = {"fields": [{"name": "shopping_title", "max_length": 150}], "locale": "de_DE"}
    assert length_limits(settings, extra) == {"shopping_title": 90}
    assert length_limits(settings, {**extra, "locale": "fr_FR"}) == {"shopping_title": 80}


def test_the_budget_is_the_bound_until_answers_are_seen_then_learned_from_usage() -> None:
    book = BudgetBook()
    key = ("gpt", "v1")
    assert book.budget(key, 2000).tokens == 2000
    for used in [100, 110, 120] * 10:
        book.observe(key, used)
    learned = book.budget(key, 2000)
    assert learned.source == "learned"
    assert 120 < learned.tokens < 200  # the highest seen plus a margin
    assert learned.retry >= 2000  # a cut-off answer is asked again with the bound
    assert book.budget(key, 130).tokens == 130  # never above the bound
    assert book.budget(key, 2000, override=64).tokens == 64
    assert book.budget(key, 2000, override=64).retry == 128


async def test_only_a_few_calls_reserve_the_bound_before_the_first_answers() -> None:
    book = BudgetBook()
    key = ("gpt", "v1")
    sources: list[str] = []

    async def call() -> None:
        async with book.sized(key, 2000) as budget:
            sources.append(budget.source)
            await asyncio.sleep(0.01)
            book.observe(key, 100)

    await asyncio.gather(*(call() for _ in range(10)))
    assert sources.count("schema") == WARMUP
    assert sources.count("learned") == 10 - WARMUP


def test_a_bad_max_completion_tokens_setting_is_an_error_naming_the_field(
    tmp_path: Path,
) -> None:
    text = SEED.read_text().replace(
        "      fields: [shopping_title, shopping_description]\n\n",
        "      fields: [shopping_title, shopping_description]\n      max_completion_tokens: 0\n\n",
        1,
    )
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as error:
        load_workflow(path)
    assert "actions[1].settings.max_completion_tokens" in str(error.value)
    definition = load_workflow(SEED)
    assert check_budget_settings(definition, "seed") == []


def test_no_output_of_the_seed_example_is_cut_off_at_its_completion_budget() -> None:
    definition = load_workflow(SEED)
    products = [
        snapshot
        for snapshot in (apply_change(None, c) for c in sample_changes(160))
        if matches(definition.trigger, snapshot)
    ]
    answers: list[Completion] = []
    complete = LLMClient.complete

    async def recording(self: LLMClient, **kwargs: Any) -> Completion:
        completion = await complete(self, **kwargs)
        answers.append(completion)
        return completion

    with SimulatorThread(SimulatorConfig()) as sim:
        endpoint = ModelEndpoint(
            name="default", model="gpt-4o-mini", base_url=f"{sim.url}/v1", kind="compatible"
        )
        pool = ClientPool()
        kinds = {
            cls.type: cls(pool, endpoint)
            for cls in (AttributeExtraction, ContentEnrichment, Translation)
        }

        async def run() -> None:
            try:
                for product in products:
                    outputs: list[ActionOutput] = []
                    for spec in definition.actions:
                        result = await kinds[spec.type].run(
                            ActionInput(
                                sku=product["sku"],
                                product=product,
                                action_id=spec.id,
                                settings=spec.settings,
                                previous_outputs=tuple(outputs),
                                reads=spec.reads,
                            )
                        )
                        outputs.append(output_record(spec.id, spec.type, result))
            finally:
                await pool.aclose()

        LLMClient.complete = recording  # type: ignore[method-assign]
        try:
            asyncio.run(run())
        finally:
            LLMClient.complete = complete  # type: ignore[method-assign]
        stats = sim.stats()
    assert len(products) >= 30 and len(answers) >= 2 * len(products)
    # A cut-off answer would have taken a second attempt at a larger budget, and the
    # simulator reports a cut answer's completion tokens as exactly its budget.
    assert all(a.attempts == 1 and a.answer_tokens < a.budget for a in answers)
    assert stats["requests"] == len(answers)
    # ...and the learned budgets are far below the old fixed 1,024.
    assert sorted(a.budget for a in answers)[len(answers) // 2] < 300
