"""``catalogflow import FILE`` against a real broker and worker: the good rows of a
CSV reach the products table, the bad one is reported, a re-import changes nothing; a
nested JSON Lines export imports with dotted names, and a ``--map`` renames them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.importer import add_import_command

pytestmark = pytest.mark.kafka

CATALOG = (
    "sku,name,description,description@de_DE,categories,supplier,status,price,weight_kg\n"
    "IMP-1,Salmon Dry 2 kg,<p>Real salmon.</p>,Echter Lachs.,"
    "Pet Food/Cat/Dry Cat Food|Sale,acme,enabled,19.90,2\n"
    ",Nameless,no sku here,,,,enabled,1,1\n"
    "IMP-3,Tuna Wet 400 g,Tuna chunks.,,Pet Food/Cat/Wet Cat Food,acme,enabled,2.49,0.4\n"
    "IMP-4,Beef Treats,Chewy.,,Pet Food/Dog/Treats,nordic-feed,disabled,4,0.2\n"
)


@pytest.fixture
def cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run ``catalogflow import ARGS`` with the test's settings; (exit code, out, err)."""
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser(prog="catalogflow")
    parser.add_argument("--config", type=Path)
    add_import_command(parser.add_subparsers())

    def run(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(["import", *argv])
        code = int(args.run(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_import_puts_the_good_rows_in_the_products_table(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    cli: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CATALOG, encoding="utf-8")
    worker = start_worker()

    code, out, err = cli(str(path))
    assert code == 1  # one row rejected, the others imported
    assert "catalog.csv:3: missing sku" in err
    assert out.startswith("3 imported, 1 rejected (4 rows of catalog.csv) to ")

    worker.wait_for("/products/", lambda answer: answer["count"] == 3)
    first = worker.get("/products/IMP-1/")
    assert first["categories"] == ["Pet Food/Cat/Dry Cat Food", "Sale"]
    assert (first["supplier"], first["status"], first["version"]) == ("acme", "enabled", 1)
    by_key = {(v["attribute"], v["locale"]): v for v in first["values"]}
    assert by_key[("description", "de_DE")]["value"] == "Echter Lachs."
    assert by_key[("price", None)]["value"] == 19.9
    assert by_key[("name", None)]["author_kind"] == "IMPORT"
    assert worker.get("/products/IMP-4/")["status"] == "disabled"

    # The same file again: the same event ids, so no product changes. An update
    # queued after it (same SKU, same partition) shows when the re-import is applied.
    assert cli(str(path))[0] == 1
    update = tmp_path / "update.jsonl"
    update.write_text('{"sku": "IMP-1", "name": "Salmon Dry 2 kg (new bag)"}\n')
    assert cli(str(update), "--update")[:2] == (
        0,
        f"1 imported, 0 rejected (1 rows of update.jsonl) to {settings.topic('product-changes')}\n",
    )

    def updated(answer: Any) -> bool:
        return any(v["value"] == "Salmon Dry 2 kg (new bag)" for v in answer.get("values", []))

    after = worker.wait_for("/products/IMP-1/", updated)
    assert after["version"] == 2  # the re-import was recognised, the update applied
    assert worker.get("/products/")["count"] == 3


EXPORT = [
    {"sku": "NEST-1", "_id": "x1", "name": "Salmon Dry 2 kg",
     "attributes": {"brand": "Acme", "weight": 2, "tags": ["dry", "grain free"]}},
    {"sku": "NEST-2", "_id": "x2", "_rev": 7, "name": "Tuna Wet",
     "attributes": {"brand": "Nordic", "name@de_DE": "Thunfisch", "_source": "pim"}},
    {"sku": "NEST-3", "name": "Beef Treats", "attributes": {"brand": "Acme"},
     "variants": [{"sku": "NEST-3-S"}, {"sku": "NEST-3-L"}]},
]  # fmt: skip


def test_a_nested_export_imports_with_dotted_names_and_a_map_renames_them(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    cli: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "products.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in EXPORT), encoding="utf-8")
    worker = start_worker()

    code, out, err = cli(str(path))
    assert code == 1  # the row with a list of objects is rejected, the others imported
    assert err.splitlines() == [
        'products.jsonl:3: key "variants": a list of objects cannot become an attribute '
        '(drop it with a --map entry "variants: null")',
        "products.jsonl: left out keys starting with _ (name them in --map to import): "
        "_id, _rev, attributes._source",
    ]
    assert out.startswith("2 imported, 1 rejected (3 rows of products.jsonl) to ")
    worker.wait_for("/products/", lambda answer: answer["count"] == 2)
    one = {
        (v["attribute"], v["locale"]): v["value"] for v in worker.get("/products/NEST-1/")["values"]
    }
    assert one == {
        ("name", None): "Salmon Dry 2 kg",
        ("attributes.brand", None): "Acme",
        ("attributes.weight", None): 2,
        ("attributes.tags", None): ["dry", "grain free"],
    }
    two = worker.get("/products/NEST-2/")
    assert {(v["attribute"], v["locale"]) for v in two["values"]} >= {("attributes.name", "de_DE")}

    field_map = tmp_path / "map.yaml"
    field_map.write_text("attributes.brand: brand\nattributes.weight: weight_kg\nvariants: null\n")
    code, out, _ = cli(str(path), "--map", str(field_map), "--update")
    assert (code, out.split(" to ")[0]) == (0, "3 imported, 0 rejected (3 rows of products.jsonl)")

    def mapped(answer: Any) -> bool:
        return any(v["attribute"] == "brand" for v in answer.get("values", []))

    three = worker.wait_for("/products/NEST-3/", mapped)
    assert {(v["attribute"], v["value"]) for v in three["values"]} == {
        ("name", "Beef Treats"),
        ("brand", "Acme"),
    }
    first = worker.wait_for("/products/NEST-1/", mapped)
    assert {v["attribute"]: v["value"] for v in first["values"]}["weight_kg"] == 2.0
