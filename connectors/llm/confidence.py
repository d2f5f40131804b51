"""Confidence of one value in a model's JSON answer, from the answer's token logprobs.

The value is located by parsing the answer with a scanner that tracks character
positions (so the same text elsewhere in the answer, inside another field or in the
reasoning, cannot be mistaken for it). The tokens overlapping the value's characters —
for a string, its quotes included, since closing the string is the model's decision
that the value ends there — are the tokens that decided it.

Formula: ``exp(min logprob)`` over those tokens, the probability of the value's least
certain token. A value is only as trustworthy as its weakest choice, and unlike the
joint probability ``exp(sum)`` this does not sink with length, so one moderation
threshold means the same for a one-word colour and a paragraph of description. For a
one-token value (the usual case for an enum label under structured outputs) the two
are equal; for longer values ``exp(sum) <= exp(min)``, so this is the optimistic of the
two — thresholds should be set with that in mind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

__all__ = ["value_confidence", "value_span"]

_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


def value_confidence(
    content: str,
    token_logprobs: Sequence[tuple[str, float]] | None,
    path: Sequence[str | int],
) -> float | None:
    """Probability (0..1) of the value at ``path`` in the JSON ``content``.

    ``None`` when there are no logprobs, when the tokens do not spell out ``content``
    exactly (e.g. a byte-level token split a character), or when ``path`` is not in it.
    """
    if not token_logprobs:
        return None
    if "".join(token for token, _ in token_logprobs) != content:
        return None
    span = value_span(content, path)
    if span is None:
        return None
    start, end = span
    lowest: float | None = None
    position = 0
    for token, logprob in token_logprobs:
        token_end = position + len(token)
        if token_end > start and position < end:
            lowest = logprob if lowest is None else min(lowest, logprob)
        position = token_end
        if position >= end:
            break
    if lowest is None or math.isnan(lowest):
        return None
    return math.exp(min(0.0, lowest))


def value_span(content: str, path: Sequence[str | int]) -> tuple[int, int] | None:
    """The ``[start, end)`` character span of the JSON value at ``path`` (object keys
    and array indexes) in ``content``, or ``None`` if it is absent or not JSON.

    With a repeated key the last one counts, as in ``json.loads``.
    """
    try:
        json.loads(content)  # the scan below may stop early; the whole must be JSON
        start = _skip_whitespace(content, 0)
        return _find(content, start, list(path))
    except (ValueError, IndexError):
        return None


def _skip_whitespace(content: str, position: int) -> int:
    while position < len(content) and content[position] in _WHITESPACE:
        position += 1
    return position


def _value_end(content: str, position: int) -> int:
    """Where the JSON value starting at ``position`` ends (raises ValueError if invalid)."""
    _, end = _DECODER.raw_decode(content, position)
    return end


def _find(content: str, position: int, path: list[str | int]) -> tuple[int, int] | None:
    if not path:
        return position, _value_end(content, position)
    step, rest = path[0], path[1:]
    opening = content[position]
    if opening == "{" and isinstance(step, str):
        return _find_member(content, position, step, rest)
    if opening == "[" and isinstance(step, int) and not isinstance(step, bool):
        return _find_item(content, position, step, rest)
    return None


def _find_member(
    content: str, position: int, key: str, rest: list[str | int]
) -> tuple[int, int] | None:
    found: tuple[int, int] | None = None
    position = _skip_whitespace(content, position + 1)
    if content[position] == "}":
        return None
    while True:
        if content[position] != '"':
            raise ValueError("expected a key")
        name, position = _DECODER.raw_decode(content, position)
        position = _skip_whitespace(content, position)
        if content[position] != ":":
            raise ValueError("expected ':'")
        position = _skip_whitespace(content, position + 1)
        end = _value_end(content, position)
        if name == key:
            found = _find(content, position, rest)
        position = _skip_whitespace(content, end)
        if content[position] == "}":
            return found
        if content[position] != ",":
            raise ValueError("expected ',' or '}'")
        position = _skip_whitespace(content, position + 1)


def _find_item(
    content: str, position: int, index: int, rest: list[str | int]
) -> tuple[int, int] | None:
    position = _skip_whitespace(content, position + 1)
    if content[position] == "]":
        return None
    current = 0
    while True:
        end = _value_end(content, position)
        if current == index:
            return _find(content, position, rest)
        current += 1
        position = _skip_whitespace(content, end)
        if content[position] == "]":
            return None
        if content[position] != ",":
            raise ValueError("expected ',' or ']'")
        position = _skip_whitespace(content, position + 1)
