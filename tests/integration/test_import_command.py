"""``catalogflow import FILE`` against a real broker and worker: the good rows of a
CSV reach the products table, the bad one is reported, a re-import changes nothing."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.settings import Settings

from catalogflow.importer import add_import_command
from catalogflow.workerproc import WorkerProcess

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
    assert "catalog.csv line 3: missing sku" in err
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
