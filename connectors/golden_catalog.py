"""A golden set for the seed example: dry cat food products with the Flavor and
Lifecycle a careful reader would extract, generated together so the truth is known.

The texts are written to test a model, not to be easy: besides plain ones that state
one flavour and one life stage (the deterministic pre-pass takes those without a model
call), they leave the flavour or the life stage out, name a fish that is not an allowed
value, name two flavours with one of them the main one, exclude one ("chicken-free"),
or say the life stage only in other words ("for growing cats"). Where the text
supports no value the expected value is None, so a model that fills one in has
invented it.

``python -m catalogflow.connectors.golden_catalog > examples/golden/dry-cat-food.jsonl``
writes the shipped file; a unit test keeps the two the same.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

from catalogflow.connectors.sample_catalog import BRANDS, FLAVORS, LIFECYCLES

CATEGORY = "Pet Food/Cat/Dry Cat Food"
#: The shipped file's size and seed.
COUNT = 240
SEED = 11


class GoldenProduct(TypedDict):
    """One line of a golden file: a ProductChanged record as JSON, the expected value
    per field (None: the text supports no value) and which kind of text it is."""

    sku: str
    kind: str
    product: dict[str, Any]
    expected: dict[str, str | None]


Text = tuple[str, str | None, str | None]  # description, Flavor, Lifecycle

#: Other words for a life stage, none of them the allowed value itself.
STAGE_WORDS = {
    "Kitten": ("growing cats in their first year", "young cats up to 12 months"),
    "Adult": ("grown cats from one to seven years", "cats in their prime years"),
    "Senior": ("older cats aged 7 and over", "mature cats past their eighth birthday"),
}
#: Fish that are not an allowed Flavor value: the honest answer is "no value".
OTHER_FISH = ("white fish", "ocean fish", "herring", "cod")


def _plain(rng: random.Random) -> Text:
    flavor, stage = rng.choice(FLAVORS), rng.choice(LIFECYCLES)
    return f"Made with real {flavor.lower()} for {stage.lower()} cats.", flavor, stage


def _no_flavor(rng: random.Random) -> Text:
    stage = rng.choice(LIFECYCLES)
    return f"A grain-free recipe for {stage.lower()} cats, with vitamins and minerals.", None, stage


def _no_stage(rng: random.Random) -> Text:
    flavor = rng.choice(FLAVORS)
    return f"Crunchy kibble made with real {flavor.lower()}, for cats of every age.", flavor, None


def _neither(rng: random.Random) -> Text:
    opening = rng.choice(("Crunchy kibble your cat will love.", "A tasty everyday dry food."))
    return f"{opening} Resealable bag keeps it fresh.", None, None


def _other_fish(rng: random.Random) -> Text:
    fish, stage = rng.choice(OTHER_FISH), rng.choice(LIFECYCLES)
    return f"Made with {fish} and rice for {stage.lower()} cats.", None, stage


def _two_flavors(rng: random.Random) -> Text:
    main, extra = rng.sample(FLAVORS, 2)
    stage = rng.choice(LIFECYCLES)
    return (
        f"Real {main.lower()} is the first ingredient, with a little {extra.lower()} "
        f"broth for taste. Made for {stage.lower()} cats.",
        main,
        stage,
    )


def _excluded(rng: random.Random) -> Text:
    main, left_out = rng.sample(FLAVORS, 2)
    stage = rng.choice(LIFECYCLES)
    return (
        f"A {left_out.lower()}-free recipe: the protein is real {main.lower()}. "
        f"For {stage.lower()} cats.",
        main,
        stage,
    )


def _stage_in_words(rng: random.Random) -> Text:
    flavor, stage = rng.choice(FLAVORS), rng.choice(LIFECYCLES)
    words = rng.choice(STAGE_WORDS[stage])
    return f"Made with real {flavor.lower()} for {words}.", flavor, stage


#: Each kind of text and how many of every 20 products are of it.
KINDS: dict[str, tuple[Callable[[random.Random], Text], int]] = {
    "plain": (_plain, 6),
    "no_flavor": (_no_flavor, 3),
    "no_stage": (_no_stage, 2),
    "neither": (_neither, 1),
    "other_fish": (_other_fish, 2),
    "two_flavors": (_two_flavors, 2),
    "excluded": (_excluded, 2),
    "stage_in_words": (_stage_in_words, 2),
}
_CYCLE = [kind for kind, (_, share) in KINDS.items() for _ in range(share)]


def golden_products(count: int = COUNT, seed: int = SEED) -> Iterator[GoldenProduct]:
    """``count`` golden products, the same ones for the same seed."""
    rng = random.Random(seed)
    for number in range(count):
        kind = _CYCLE[number % len(_CYCLE)]
        description, flavor, stage = KINDS[kind][0](rng)
        brand, weight = rng.choice(BRANDS), rng.choice((0.4, 1.5, 2.0, 4.0, 10.0))
        sku = f"GD-{number:04d}"
        yield {
            "sku": sku,
            "kind": kind,
            "product": {
                "event_id": f"golden-{seed}-{number}",
                "sku": sku,
                "change_type": "CREATED",
                "author": {"kind": "IMPORT", "id": "golden-set", "name": None},
                "source": "import",
                "source_timestamp": None,
                "values": [
                    _value("name", f"{brand} Dry Cat Food {weight:g} kg"),
                    _value("description", f"<p>{description}</p>"),
                    _value("brand", brand),
                    _value("weight_kg", weight),
                ],
                "categories": [CATEGORY],
                "supplier": "golden-set",
                "status": "enabled",
                "family": "pet_food",
            },
            "expected": {"Flavor": flavor, "Lifecycle": stage},
        }


def _value(attribute: str, value: str | float) -> dict[str, Any]:
    return {"attribute": attribute, "locale": None, "scope": None, "value": value}


def main() -> None:
    for product in golden_products():
        sys.stdout.write(json.dumps(product, ensure_ascii=False, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
