"""The step runner's own promises, whatever the action type: when it tells the agent a
step starts, what it hands the action, that it calls the action once, and that an
action's bug becomes a categorised failure instead of escaping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions import (
    ActionFailure,
    ActionInput,
    ActionResult,
    FieldResult,
    output_record,
)
from catalogflow.streams.actions.model import NoCache
from catalogflow.streams.definitions import ActionScope, ActionSpec, load_definition
from catalogflow.streams.pinned import pinned_definition
from catalogflow.streams.products import apply_change
from catalogflow.streams.records import ProductSnapshot, SnapshotValue
from catalogflow.streams.steps import Failed, Produced, Skipped, run_step

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
PRODUCT = apply_change(None, next(sample_changes(1)))  # PF-000000, Dry Cat Food


class Recording:
    """An action that answers a fixed value, or raises ``raises``, and keeps its inputs."""

    type = "recording"

    def __init__(self, raises: Exception | None = None) -> None:
        self.raises = raises
        self.inputs: list[ActionInput] = []

    async def run(self, request: ActionInput) -> ActionResult:
        self.inputs.append(request)
        if self.raises is not None:
            raise self.raises
        return ActionResult(fields=(FieldResult("flavor", "Salmon"),), input_tokens=3)


def spec(**changes: Any) -> ActionSpec:
    return ActionSpec(id="step", type="recording", **changes)


async def test_a_retryable_failure_is_not_retried_by_the_step_runner() -> None:
    action = Recording(ActionFailure("PROVIDER_LIMITATION", "429 after 4 attempts", True))
    step = await run_step(action, spec(), PRODUCT)
    assert isinstance(step, Failed)
    assert step.failure.category == "PROVIDER_LIMITATION"
    assert len(action.inputs) == 1  # the model client's retry policy already ran out


async def test_an_action_that_raises_something_else_fails_as_invalid_prompt() -> None:
    step = await run_step(Recording(KeyError("attributes")), spec(), PRODUCT)
    assert isinstance(step, Failed)
    assert step.failure.category == "INVALID_PROMPT"
    assert step.failure.message == "action recording raised KeyError: 'attributes'"


async def test_the_action_gets_the_step_the_earlier_outputs_attempt_cache_and_feedback() -> None:
    earlier = output_record("first", "other", ActionResult(fields=(FieldResult("a", 1),)))
    cache = NoCache()
    action = Recording()
    step_spec = spec(settings={"x": 1}, reads=("name",))
    await run_step(
        action,
        step_spec,
        PRODUCT,
        previous_outputs=[earlier],
        attempt=2,
        cache=cache,
        feedback="too long",
    )
    (request,) = action.inputs
    assert request == ActionInput(
        sku="PF-000000",
        product=PRODUCT,
        action_id="step",
        settings={"x": 1},
        previous_outputs=(earlier,),
        attempt=2,
        reads=("name",),
        cache=cache,
        feedback="too long",
    )


async def test_the_agent_hears_of_the_start_unless_the_step_is_skipped() -> None:
    started: list[str] = []

    async def on_start() -> None:
        started.append("started")

    inside = await run_step(Recording(), spec(), PRODUCT, on_start=on_start)
    outside = await run_step(
        Recording(), spec(scope=ActionScope(skus=("PF-000009",))), PRODUCT, on_start=on_start
    )
    missing = await run_step(Recording(), spec(reads=("color",)), PRODUCT, on_start=on_start)
    gone = await run_step(Recording(), spec(), None, on_start=on_start)
    assert isinstance(inside, Produced) and isinstance(outside, Skipped)
    assert isinstance(missing, Failed) and isinstance(gone, Failed)
    assert started == ["started"] * 3  # the skipped step never started


async def test_when_only_empty_drops_every_value_the_output_says_so() -> None:
    written: SnapshotValue = {**PRODUCT["values"][0], "attribute": "flavor", "value": "Tuna"}
    product: ProductSnapshot = {**PRODUCT, "values": [*PRODUCT["values"], written]}
    step = await run_step(Recording(), spec(scope=ActionScope(only_empty=True)), product)
    assert isinstance(step, Produced)
    assert step.note == "step kept existing values of flavor"
    assert step.output["fields"] == [] and step.output["skipped"] == step.note
    assert step.output["input_tokens"] == 3  # the call was made, and is paid for


def test_a_pinned_definition_is_parsed_once_per_text() -> None:
    definition = load_definition(EXAMPLE)
    pinned = json.dumps(definition.to_dict())
    again = pinned.encode().decode()  # the same text in another task: another str object
    assert pinned_definition(pinned) == definition
    assert pinned_definition(again) is pinned_definition(pinned)
