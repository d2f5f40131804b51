"""The step contract: one workflow step run on one product, the same for the action
agents and for ``workflow dry-run``.

:func:`run_step` owns everything between "a task reached this action" and "here is
its output record": the product must be in the catalog and inside the step's scope,
the fields the step reads must have values, the action is called once, and
``only_empty`` drops every output that would replace a value the product already has.
It knows nothing of Kafka: the agent turns the result into task events and sends, the
dry run prints it.

It makes no retries of its own. How often a model call is tried is the model
provider's retry policy; a task that still fails ends in Error and ``retry-failed``
runs the step again as the next attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from catalogflow.streams.actions import (
    Action,
    ActionFailure,
    ActionInput,
    ActionResult,
    output_record,
)
from catalogflow.streams.actions.model import ResultCache
from catalogflow.streams.definitions import ActionSpec
from catalogflow.streams.records import ActionOutput, ProductSnapshot
from catalogflow.streams.scope import keep_only_empty, out_of_scope


@dataclass(frozen=True)
class Skipped:
    """The product is outside the step's scope: the slip moves on with ``output``, an
    empty output record that says why."""

    output: ActionOutput
    reason: str


@dataclass(frozen=True)
class Failed:
    """The step could not produce output; the task ends in Error with the category."""

    failure: ActionFailure


@dataclass(frozen=True)
class Produced:
    """The step's output record; ``note`` names the values ``only_empty`` kept."""

    output: ActionOutput
    note: str | None


StepResult = Skipped | Failed | Produced


async def _nothing() -> None:
    """The default ``on_start``: a dry run has no one to tell."""


async def run_step(
    action: Action,
    spec: ActionSpec,
    product: ProductSnapshot | None,
    *,
    previous_outputs: Sequence[ActionOutput] = (),
    attempt: int = 0,
    cache: ResultCache | None = None,
    feedback: str | None = None,
    on_start: Callable[[], Awaitable[None]] = _nothing,
) -> StepResult:
    """Run ``spec`` (an action of type ``action.type``) on ``product`` (a ProductSnapshot;
    None when the catalog has none). ``on_start`` is awaited when the step is not
    skipped, before its reads are checked and the action is called: the agent reports
    the task Running there."""
    if product is None or product["deleted"]:
        await on_start()
        return Failed(ActionFailure("INCOMPLETE_SOURCE_DATA", "product not in catalog"))
    reason = out_of_scope(spec.scope, product)
    if reason is not None:
        empty = output_record(spec.id, spec.type, ActionResult(fields=()), skipped=reason)
        return Skipped(empty, reason)
    await on_start()
    request = ActionInput(
        sku=product["sku"],
        product=product,
        action_id=spec.id,
        settings=spec.settings,
        previous_outputs=tuple(previous_outputs),
        attempt=attempt,
        reads=spec.reads,
        cache=cache,
        feedback=feedback,
    )
    missing = request.missing(spec.reads)
    if missing:
        needs = f"{spec.id} needs {', '.join(missing)}, which are empty"
        return Failed(ActionFailure("INCOMPLETE_SOURCE_DATA", needs))
    try:
        result = await action.run(request)
    except ActionFailure as failure:
        return Failed(failure)
    except Exception as exc:  # the action's bug: a configuration problem, not the product's
        message = f"action {spec.type} raised {type(exc).__name__}: {exc}"
        return Failed(ActionFailure("INVALID_PROMPT", message))
    note = None
    if spec.scope.only_empty:
        kept, dropped = keep_only_empty(result.fields, product)
        result = replace(result, fields=kept)
        if dropped:
            note = f"{spec.id} kept existing values of {', '.join(dropped)}"
    wrote_nothing = note if not result.fields else None
    return Produced(output_record(spec.id, spec.type, result, skipped=wrote_nothing), note)
