"""The HTTP requests catalogflow made for each product, grouped so the bare chain can
replay them: the model requests by the hop of the step that made them (1 extraction,
2 enrichment, 3 translation) and the Magento requests in order, for hop 4.

The product of a model request is the ``sku:`` line of the ``<product>`` block in its
prompt, its step the name of its ``json_schema`` response format; the product of a
Magento request is the SKU in its ``…/V1/products/<sku>`` path (requests not about one
of the products, such as attribute metadata, are left out and counted by path).

Written to a JSON file for the bare chain's child process::

    {"<sku>": {"model": {"1": [{"path": …, "body": …}], "2": […], "3": […]},
               "magento": [{"method": …, "path": …, "body": …}]}}
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the bare chain's child reads the file without the probes' imports
    from bench.efficiency_probes import MagentoRequest, ModelRequest

#: The hop of the bare chain standing in for each catalogflow step, by schema name prefix.
STEP_HOPS = {"attribute_extraction": 1, "content_enrichment": 2, "translation": 3}
MODEL_HOPS = tuple(sorted(set(STEP_HOPS.values())))
_SKU_LINE = re.compile(r"^<product>\nsku: (.+)$", re.MULTILINE)


@dataclass
class ProductCalls:
    """One product's requests: model requests per hop, Magento requests in order."""

    model: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    magento: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedCalls:
    by_sku: dict[str, ProductCalls]
    #: Requests of the run about none of the products (not replayed), by method and path.
    unattributed: dict[str, int]

    def per_product(self) -> dict[str, float]:
        """Requests per product: ``model`` and Magento by method."""
        counts: dict[str, int] = {"model": 0}
        for calls in self.by_sku.values():
            counts["model"] += sum(len(requests) for requests in calls.model.values())
            for request in calls.magento:
                counts[request["method"]] = counts.get(request["method"], 0) + 1
        products = len(self.by_sku) or 1
        return {name: round(n / products, 2) for name, n in sorted(counts.items())}


def group_by_sku(
    model: Iterable[ModelRequest], magento: Iterable[MagentoRequest], skus: Iterable[str]
) -> RecordedCalls:
    """The requests about ``skus``, in the order they arrived, grouped by product."""
    by_sku = {sku: ProductCalls() for sku in skus}
    unattributed: Counter[str] = Counter()
    for m in sorted(model, key=lambda r: r.arrived):
        calls = by_sku.get(_prompt_sku(m.body) or "")
        if calls is None:
            unattributed[f"POST {m.path}"] += 1
            continue
        calls.model.setdefault(step_hop(m.body), []).append({"path": m.path, "body": m.body})
    for r in sorted(magento, key=lambda r: r.arrived):
        calls = by_sku.get(_path_sku(r) or "")
        if calls is None:
            unattributed[f"{r.method} {r.path}"] += 1
            continue
        calls.magento.append({"method": r.method, "path": r.raw_path, "body": r.body})
    return RecordedCalls(by_sku, dict(sorted(unattributed.items())))


def step_hop(body: Any) -> int:
    """The hop of the step whose request ``body`` is, from its response format's name."""
    name = str(body.get("response_format", {}).get("json_schema", {}).get("name", ""))
    for prefix, hop in STEP_HOPS.items():
        if name.startswith(prefix):
            return hop
    raise ValueError(f"a model request of no known step (response format {name!r})")


def _prompt_sku(body: Any) -> str | None:
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        found = _SKU_LINE.search(str(message.get("content", "")))
        if found:
            return found.group(1)
    return None


def _path_sku(request: MagentoRequest) -> str | None:
    parts = request.path.split("/")
    return parts[-1] if parts[-2:-1] == ["products"] else None


def write(calls: RecordedCalls, path: Path) -> None:
    document = {
        sku: {
            "model": {str(hop): requests for hop, requests in c.model.items()},
            "magento": c.magento,
        }
        for sku, c in calls.by_sku.items()
    }
    path.write_text(json.dumps(document), encoding="utf-8")


def read(path: Path) -> dict[str, ProductCalls]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {
        sku: ProductCalls(
            model={int(hop): requests for hop, requests in c["model"].items()},
            magento=c["magento"],
        )
        for sku, c in document.items()
    }
