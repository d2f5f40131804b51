"""A deterministic sample pet-food catalog, for the demo and the tests.

It has the seed example's shape: products in "Dry Cat Food" among other categories,
with descriptions that state (or leave out) flavour and life stage.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import AttributeValue, ProductChanged, Value
from catalogflow.streams.settings import Settings

CATEGORIES = (
    "Pet Food/Cat/Dry Cat Food",
    "Pet Food/Cat/Wet Cat Food",
    "Pet Food/Dog/Dry Dog Food",
    "Pet Food/Dog/Treats",
)
BRANDS = ("Whiskerly", "Purrfect Bowl", "NorthPaw", "Happy Tails")
FLAVORS = ("Chicken", "Salmon", "Tuna", "Beef", "Turkey", "Lamb")
LIFECYCLES = ("Kitten", "Adult", "Senior")
SUPPLIERS = ("acme-pet-supply", "nordic-feed", "petco-wholesale")


def sample_changes(count: int, seed: int = 7, start: int = 0) -> Iterator[ProductChanged]:
    """Yield ``count`` ProductChanged records (CREATED), the same ones for the same seed."""
    rng = random.Random(seed)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for number in range(start, start + count):
        category = CATEGORIES[number % len(CATEGORIES)]
        animal = "cat" if "/Cat/" in category else "dog"
        brand, flavor = rng.choice(BRANDS), rng.choice(FLAVORS)
        stage = rng.choice(LIFECYCLES) if animal == "cat" else "Adult"
        weight = rng.choice((0.4, 1.5, 2.0, 4.0, 10.0))
        sku = f"PF-{number:06d}"
        name = f"{brand} {category.rsplit('/', 1)[1]} {weight:g} kg"
        description = (
            f"<p>{brand} recipe with real {flavor.lower()} for {stage.lower()} {animal}s. "
            f"Complete and balanced nutrition in a {weight:g} kg bag.</p>"
        )
        yield {
            "event_id": f"sample-{seed}-{number}",
            "sku": sku,
            "change_type": "CREATED",
            "author": {"kind": "IMPORT", "id": "sample-catalog", "name": None},
            "source": "import",
            "source_timestamp": now,
            "values": [
                _value("name", name),
                _value("description", description),
                _value("brand", brand),
                _value("weight_kg", weight),
                _value("price", round(rng.uniform(3, 60), 2)),
                # Shop data a feed needs; derived, so the random draws above stay the same.
                _value("url_key", f"{name.lower().replace(' ', '-')}-{sku.lower()}"),
                _value("image", f"/p/f/{sku.lower()}.jpg"),
                _value("qty", (number * 7) % 40),
            ],
            "categories": [category],
            "supplier": rng.choice(SUPPLIERS),
            "status": "enabled",
            "family": "pet_food",
        }


def _value(attribute: str, value: Value) -> AttributeValue:
    return {"attribute": attribute, "locale": None, "scope": None, "value": value}


def publish_sample(settings: Settings, count: int, seed: int) -> int:
    """Publish ``sample_changes(count, seed)`` to product-changes; the number sent."""
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    ensure_topics(settings)
    producer = RecordProducer(settings)
    for number, change in enumerate(sample_changes(count, seed), start=1):
        producer.send("product-changes", change["sku"], change)
        if number % 500 == 0:
            print(f"  queued {number}/{count}")
    return producer.flush()
