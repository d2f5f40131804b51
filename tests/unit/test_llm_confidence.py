"""Confidence of one JSON value from token logprobs."""

from __future__ import annotations

import json
import math

import pytest
from catalogflow.connectors.llm.confidence import value_confidence, value_span


def tokens(*pieces: str | tuple[str, float]) -> list[tuple[str, float]]:
    """Tokens with logprob 0 (certain) unless given as ``(text, logprob)``."""
    return [(p, 0.0) if isinstance(p, str) else p for p in pieces]


def text(token_logprobs: list[tuple[str, float]]) -> str:
    return "".join(t for t, _ in token_logprobs)


def test_nested_path_takes_the_tokens_of_that_value_only() -> None:
    answer = tokens(
        '{"a": {"b": [1, {"c": "',
        ("red", math.log(0.6)),
        '"}]}, "d": "',
        ("red", math.log(0.1)),
        '"}',
    )
    content = text(answer)
    start, end = value_span(content, ["a", "b", 1, "c"]) or (0, 0)
    assert content[start:end] == '"red"'
    assert value_confidence(content, answer, ["a", "b", 1, "c"]) == pytest.approx(0.6)
    assert value_confidence(content, answer, ["d"]) == pytest.approx(0.1)
    assert value_confidence(content, answer, ["a", "b", 0]) == pytest.approx(1.0)


def test_repeated_text_elsewhere_does_not_confuse_it() -> None:
    # The value's text also appears in the reasoning, and as a key.
    answer = tokens(
        '{"reasoning": "Says ',
        ("Salmon", math.log(0.2)),
        ' twice", "Salmon": 1, "flavor": "',
        ("Salmon", math.log(0.9)),
        '"}',
    )
    content = text(answer)
    assert value_confidence(content, answer, ["flavor"]) == pytest.approx(0.9)
    assert value_confidence(content, answer, ["Salmon"]) == pytest.approx(1.0)
    assert value_confidence(content, answer, ["reasoning"]) == pytest.approx(0.2)


def test_the_weakest_token_decides() -> None:
    answer = tokens(
        '{"color": "',
        ("Navy", math.log(0.7)),
        (" Blue", math.log(0.95)),
        '"}',
    )
    assert value_confidence(text(answer), answer, ["color"]) == pytest.approx(0.7)


def test_boundary_tokens_that_straddle_the_value_count() -> None:
    # Real tokenizers merge the opening quote with the colon and the closing one
    # with the brace: those tokens decide where the value starts and ends.
    answer = [('{"size":"', 0.0), ("X", math.log(0.8)), ("L", 0.0), ('"}', math.log(0.5))]
    assert value_confidence(text(answer), answer, ["size"]) == pytest.approx(0.5)


def test_escaped_strings() -> None:
    value = 'He said "hi" \\ \u00e9\n'
    content = json.dumps({"quote": value, "after": "x"})
    start, end = value_span(content, ["quote"]) or (0, 0)
    assert json.loads(content[start:end]) == value
    assert content[end:].startswith(", ")
    # A key containing escapes is matched by its decoded name.
    content = '{"a\\"b": 1, "a\\u0022b2": 2}'
    start, end = value_span(content, ['a"b']) or (0, 0)
    assert content[start:end] == "1"
    start, end = value_span(content, ['a"b2']) or (0, 0)
    assert content[start:end] == "2"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.5", 12.5), ("-3", -3), ("1e-3", 0.001), ("0", 0), ("true", True), ("null", None)],
)
def test_scalars(raw: str, expected: object) -> None:
    content = f'{{"n" :  {raw} , "m": [{raw}]}}'
    paths: list[list[str | int]] = [["n"], ["m", 0]]
    for path in paths:
        start, end = value_span(content, path) or (0, 0)
        assert content[start:end] == raw
        assert json.loads(content[start:end]) == expected
    answer = tokens('{"n" :  ', (raw, math.log(0.4)), f' , "m": [{raw}]}}')
    assert value_confidence(content, answer, ["n"]) == pytest.approx(0.4)


def test_containers_and_duplicates() -> None:
    content = '{"list": [ "a" , {"k": null} ], "k": 1, "k": 2}'
    start, end = value_span(content, ["list"]) or (0, 0)
    assert content[start:end] == '[ "a" , {"k": null} ]'
    start, end = value_span(content, ["list", 1, "k"]) or (0, 0)
    assert content[start:end] == "null"
    start, end = value_span(content, ["k"]) or (0, 0)
    assert content[start:end] == "2"  # the last one, as json.loads does
    start, end = value_span(content, []) or (0, 0)
    assert (start, end) == (0, len(content))


@pytest.mark.parametrize(
    "path",
    [["missing"], ["list", 5], ["list", "0"], ["k", "x"], ["list", -1], ["list", True]],
)
def test_absent_paths(path: list[str | int]) -> None:
    content = '{"list": [1, 2], "k": 1}'
    assert value_span(content, path) is None
    assert value_confidence(content, tokens(content), path) is None


def test_no_logprobs_or_tokens_that_do_not_spell_the_content() -> None:
    content = '{"a": "b"}'
    assert value_confidence(content, [], ["a"]) is None
    assert value_confidence(content, None, ["a"]) is None
    assert value_confidence(content, tokens('{"a": ', '"c"}'), ["a"]) is None
    # byte-level tokens of a split character do not spell the text
    assert value_confidence('{"a": "é"}', tokens('{"a": "', "\\xc3", "\\xa9", '"}'), ["a"]) is None


def test_not_json() -> None:
    assert value_span('{"a": 1', ["a"]) is None
    assert value_span('{"a": 1} trailing', ["a"]) is None
    assert value_span("", ["a"]) is None
