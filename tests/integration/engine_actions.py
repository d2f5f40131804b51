"""Deterministic action types for engine tests, loaded by the worker as a plugin
(``action_plugins=tests.integration.engine_actions``). Each reads what the step
before it produced, so a test can see the chain carry outputs forward.

Settings every type understands: ``delay`` (seconds to sleep, a stand-in for a slow
model), ``slow`` (a map of SKU → extra seconds for that product: a straggler),
``fail`` (a map of SKU → failure category to raise for that product; a
PROVIDER_LIMITATION failure says retrying may help) and ``recover_on_retry`` (SKUs
whose failure goes away from the second attempt of the task on).
"""

from __future__ import annotations

import asyncio
import re

from catalogflow.connectors.sample_catalog import FLAVORS
from catalogflow.streams.actions import (
    ActionFailure,
    ActionInput,
    ActionRegistry,
    ActionResult,
    FieldResult,
)


class _TestAction:
    type = ""

    async def run(self, request: ActionInput) -> ActionResult:
        extra = float(request.settings.get("slow", {}).get(request.sku, 0))
        await asyncio.sleep(float(request.settings.get("delay", 0)) + extra)
        failing = request.settings.get("fail", {})
        recovers = request.sku in request.settings.get("recover_on_retry", ()) and request.attempt
        if request.sku in failing and not recovers:
            category = failing[request.sku]
            retryable = category == "PROVIDER_LIMITATION"
            raise ActionFailure(category, f"{self.type} told to fail", retryable=retryable)
        return ActionResult(fields=(self.produce(request),), model="test", input_tokens=1)

    def produce(self, request: ActionInput) -> FieldResult:
        raise NotImplementedError


class Extract(_TestAction):
    type = "test_extract"

    def produce(self, request: ActionInput) -> FieldResult:
        text = str(request.value("description") or "")
        found = [f for f in FLAVORS if re.search(rf"\b{f.lower()}\b", text)]
        if not found:
            raise ActionFailure("INCOMPLETE_SOURCE_DATA", "description names no flavour")
        return FieldResult(
            "flavor",
            found[0],
            reasoning=f"description says {found[0].lower()}",
            confidence=float(request.settings.get("confidence", {}).get(request.sku, 1.0)),
            evidence=found[0].lower(),
        )


class Enrich(_TestAction):
    type = "test_enrich"

    def produce(self, request: ActionInput) -> FieldResult:
        flavor = request.value("flavor")
        if flavor is None:
            raise ActionFailure("INCOMPLETE_SOURCE_DATA", "no flavor from the step before")
        return FieldResult("shopping_title", f"{request.value('name')} | {flavor}")


class Translate(_TestAction):
    type = "test_translate"

    def produce(self, request: ActionInput) -> FieldResult:
        title = request.value("shopping_title")
        if title is None:
            raise ActionFailure("INCOMPLETE_SOURCE_DATA", "no shopping_title to translate")
        return FieldResult("shopping_title", f"DE {title}", locale="de_DE")


TYPES = (Extract.type, Enrich.type, Translate.type)


def register(registry: ActionRegistry) -> None:
    for action in (Extract(), Enrich(), Translate()):
        registry.register(action)
