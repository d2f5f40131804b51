"""Prompt templates: Jinja2 over the product and earlier outputs, strict about names.

A template may use ``product.<field>`` for the source fields its action declares in
``reads`` (plus ``sku``, ``categories``, ``supplier``, ``status``), ``outputs.<field>``
for what earlier actions produce, and ``settings``. Validation renders it against
exactly that context, so a misspelt or undeclared field is an invalid-prompt error
when the workflow is validated, not halfway through a run. The prompt version is the
hash of the template text and the output schema: it is recorded on every result and
is part of the result-cache key.

A template text is compiled once and kept (:func:`compiled`): templates come from the
built-in actions and the definition versions a worker runs, a handful at a time, and
compiling one costs far more than rendering it.

Values render as text a person would write, not as Python reprs: a list is its items
joined with ", ", a mapping its ``key: value`` pairs joined with "; ", None nothing
(:func:`readable`, the environment's ``finalize``). The ``readable`` filter chooses
other separators, e.g. ``{{ product.categories | readable(" | ") }}``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from catalogflow.streams.actions import ActionInput
from catalogflow.streams.definitions import parse_field_ref


def readable(value: Any, sep: str = ", ", pair_sep: str = "; ", kv: str = ": ") -> str:
    """``value`` as prompt text: list items joined by ``sep``, mapping entries as
    ``key<kv>value`` joined by ``pair_sep`` (nested values alike), None as ""."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return pair_sep.join(f"{k}{kv}{readable(v, sep, pair_sep, kv)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return sep.join(readable(v, sep, pair_sep, kv) for v in items)
    return str(value)


_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=readable,
)
_ENV.filters["readable"] = readable
_BUILTINS = ("sku", "categories", "supplier", "status", "family")
#: Template texts kept compiled: the built-in ones plus those of the definition versions
#: in use (a system and a user template per action and version).
_COMPILED_TEMPLATES = 256


class PromptError(ValueError):
    """The template does not parse or refers to something it may not use."""


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str

    def version(self, schema: Mapping[str, Any]) -> str:
        text = json.dumps([self.system, self.user, schema], sort_keys=True)
        return "p-" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def render(self, context: Mapping[str, Any]) -> tuple[str, str]:
        try:
            return (
                compiled(self.system).render(context),
                compiled(self.user).render(context),
            )
        except jinja2.UndefinedError as exc:
            missing = re.search(
                r"has no attribute '([^']+)'|'([^']+)' is undefined", exc.message or ""
            )
            name = next((g for g in missing.groups() if g), None) if missing else None
            raise PromptError(
                f"the template uses {name!r}, which it cannot see: a product field must be in "
                "the action's reads, an output must come from an earlier action"
                if name
                else f"the template uses something it cannot see: {exc.message}"
            ) from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"template does not render: {exc}") from None


@functools.lru_cache(maxsize=_COMPILED_TEMPLATES)
def compiled(text: str) -> jinja2.Template:
    """The template ``text`` compiled, once per text (raises ``jinja2.TemplateError``
    when it does not parse; a failure is not kept)."""
    return _ENV.from_string(text)


def field_key(text: str) -> str:
    """``description@de_DE`` → ``description_de_DE``: a name a template can use."""
    ref = parse_field_ref(text)
    return "_".join(part for part in (ref.field, ref.locale, ref.scope) if part)


def context_for(request: ActionInput, reads: Iterable[str]) -> dict[str, Any]:
    """What a template sees at run time."""
    product: dict[str, Any] = {name: request.product.get(name) for name in _BUILTINS}
    product["categories"] = list(request.product.get("categories") or [])
    for text in reads:
        ref = parse_field_ref(text)
        if ref.field not in _BUILTINS:
            product[field_key(text)] = request.value(ref.field, ref.locale, ref.scope)
    outputs: dict[str, Any] = {}
    for output in request.previous_outputs:
        for produced in output["fields"]:
            key = produced["field"] + (f"_{produced['locale']}" if produced["locale"] else "")
            outputs[key] = produced["value"]
    return {"product": product, "outputs": outputs, "settings": dict(request.settings)}


def check_template(
    prompt: Prompt,
    reads: Iterable[str],
    earlier_outputs: Iterable[str],
    settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Render against placeholders for exactly what the action may use; raise
    :class:`PromptError` naming what is wrong."""
    product: dict[str, Any] = {name: f"<{name}>" for name in _BUILTINS}
    product["categories"] = ["<category>"]
    for text in reads:
        product[field_key(text)] = f"<{text}>"
    outputs = {name: f"<{name}>" for name in earlier_outputs}
    context: dict[str, Any] = {"product": product, "outputs": outputs, "settings": dict(settings)}
    context["product_block"] = product_block(context)
    prompt.render(context | dict(extra or {}))


def product_block(context: Mapping[str, Any]) -> str:
    """The product as ``field: value`` lines inside ``<product>`` tags: the built-in
    templates put the product there so a model (or the simulator) can tell data
    from instructions."""
    lines = []
    for name, value in context["product"].items():
        if value not in (None, "", []):
            lines.append(f"{name}: {readable(value)}")
    for name, value in context["outputs"].items():
        if value not in (None, "", []):
            lines.append(f"{name}: {readable(value)}")
    return "<product>\n" + "\n".join(lines) + "\n</product>"
