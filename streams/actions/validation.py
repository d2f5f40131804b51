"""Validation: deterministic checks of the content so far — no model call.

Rules (each optional): ``required`` fields must be non-empty; ``max_length`` per
field; ``allowed_values`` per field; the ``check_fields`` must hold none of the
``banned_words`` and no instruction to a model. Failing rules fail the task as invalid
output (``on_fail: error``, the default) — or, with ``on_fail: review``, pass the
values on with confidence 0 and the reasons, so moderation holds them. The length,
banned-word and planted-instruction rules are the ones generated text is checked
with (:mod:`catalogflow.streams.actions.textchecks`).
"""

from __future__ import annotations

from typing import Any

from catalogflow.streams.actions import ActionFailure, ActionInput, ActionResult, FieldResult
from catalogflow.streams.actions.textchecks import banned_in, instruction_in, too_long
from catalogflow.streams.rules import is_empty


class Validation:
    type = "validation"

    async def run(self, request: ActionInput) -> ActionResult:
        rules = request.settings["rules"]
        problems = problems_of(request, rules)
        if not problems:
            return ActionResult(fields=())
        if rules.get("on_fail", "error") == "error":
            raise ActionFailure("INVALID_OUTPUT", "; ".join(problems))
        flagged = sorted({p.split(":", 1)[0] for p in problems})
        return ActionResult(
            fields=tuple(
                FieldResult(
                    name,
                    request.ref_value(name),
                    reasoning="; ".join(problems),
                    confidence=0.0,
                    needs_review=True,  # held whatever the policy, as the docstring promises
                )
                for name in flagged
            )
        )


def problems_of(request: ActionInput, rules: dict[str, Any]) -> list[str]:
    problems = []
    for name in rules.get("required", []):
        if is_empty(request.ref_value(name)):
            problems.append(f"{name}: required but empty")
    for name, limit in (rules.get("max_length") or {}).items():
        value = request.ref_value(name)
        problem = too_long(value, int(limit)) if isinstance(value, str) else None
        if problem is not None:
            problems.append(f"{name}: {problem}")
    for name, allowed in (rules.get("allowed_values") or {}).items():
        value = request.ref_value(name)
        if value is not None and value not in allowed:
            problems.append(f"{name}: {value!r} is not one of {', '.join(map(str, allowed))}")
    for name in rules.get("check_fields", []):
        value = str(request.ref_value(name) or "")
        for word in banned_in(value, rules.get("banned_words", [])):
            problems.append(f"{name}: contains banned word {word!r}")
        phrase = instruction_in(value)
        if phrase is not None:
            problems.append(f"{name}: contains an instruction to a model: {phrase!r}")
    return problems
