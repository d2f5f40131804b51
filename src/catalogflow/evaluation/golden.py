"""Reading a golden file: one JSON object per line with ``sku``, ``product`` (a
ProductChanged record as JSON) and ``expected`` (field → value, null for "no value")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalogflow.dryrun import fold
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.records import ProductSnapshot, Value


@dataclass(frozen=True)
class GoldenItem:
    sku: str
    kind: str  # what the text tests ("plain", "no_flavor", ...); "" when not given
    product: ProductSnapshot
    expected: Mapping[str, Value]


def load_golden(path: Path, limit: int | None = None) -> list[GoldenItem]:
    """The file's items in file order (the first ``limit`` of them); a line that is not
    a golden item is a ConfigError naming the line and what is wrong with it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the golden file {path}: {exc.strerror}") from exc
    items: list[GoldenItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        item = _item(_json(line, where), where)
        if item.sku in seen:
            raise ConfigError(f"{where}: sku {item.sku!r} is in the golden file twice")
        seen.add(item.sku)
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise ConfigError(f"the golden file {path} has no products")
    return items


def _json(line: str, where: str) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a golden item is a JSON object, got {type(raw).__name__}")
    return raw


def _item(raw: dict[str, Any], where: str) -> GoldenItem:
    missing = [key for key in ("sku", "product", "expected") if key not in raw]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    sku, product, expected = raw["sku"], raw["product"], raw["expected"]
    if not isinstance(sku, str) or not sku:
        raise ConfigError(f"{where}: sku must be a non-empty string")
    if not isinstance(product, dict) or product.get("sku") != sku:
        raise ConfigError(f"{where}: product must be a ProductChanged object for sku {sku!r}")
    if not isinstance(expected, dict) or not expected:
        raise ConfigError(f"{where}: expected must map field names to values (null: none)")
    try:
        (snapshot,) = fold([product])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: product is not a ProductChanged record: {exc!r}") from exc
    return GoldenItem(sku, str(raw.get("kind", "")), snapshot, expected)
