"""The evidence check and the deterministic pre-pass: a value the text excludes
("chicken-free") is never stated by it, and a quote that excludes it is no evidence."""

from __future__ import annotations

import pytest
from catalogflow.streams.actions.evidence import affirms, check_evidence, stated_values

TEXT = "<p>A chicken-free recipe: the protein is real salmon. For adult cats.</p>"


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("Made with real beef.", "Beef", True),
        ("A chicken-free recipe.", "Chicken", False),
        ("Chicken free, grain free.", "Chicken", False),
        ("No chicken, no grain.", "Chicken", False),
        ("Free from beef and pork.", "Beef", False),
        ("Made without lamb.", "Lamb", False),
        ("No soy; real chicken is the first ingredient.", "Chicken", True),
        ("Not chicken-free: chicken liver inside.", "Chicken", True),
        ("Salmonella-tested.", "Salmon", False),
    ],
)
def test_affirms(text: str, value: str, expected: bool) -> None:
    assert affirms(text, value) is expected


def test_an_excluded_value_is_not_stated_by_the_text() -> None:
    assert list(stated_values(["Chicken", "Salmon"], [TEXT])) == ["Salmon"]


def test_a_quote_that_excludes_the_value_is_no_evidence() -> None:
    assert check_evidence("Chicken", "A chicken-free recipe", [TEXT]) == (
        "the quoted evidence excludes Chicken"
    )
    assert check_evidence("Salmon", "the protein is real salmon", [TEXT]) is None
