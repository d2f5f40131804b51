"""The Magento simulator's per-method fault switch, used to fail only global saves."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from catalogflow.testbench.magento.simulator import MagentoSimConfig, MagentoSimulatorThread


def _call(url: str, token: str, method: str, body: object = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_fault_for_put_on_the_global_scope_spares_reads_and_store_view_saves() -> None:
    shop = MagentoSimulatorThread(MagentoSimConfig())
    shop.start()
    try:
        sim = shop.simulator
        sim.add_product("CAT-1", {"price": 3.5}, name="Cat food")
        token = sim.issue_integration_token()
        sim.inject("429", count=100, path_contains="/rest/all/V1/products/CAT-1", method="put")
        product = f"{shop.url}/rest/%s/V1/products/CAT-1"
        save = {"product": {"name": "Katzenfutter"}}
        assert _call(product % "all", token, "GET") == 200
        assert _call(product % "de", token, "PUT", save) == 200
        assert _call(product % "all", token, "PUT", save) == 429
        assert [(w.store, w.method) for w in sim.writes] == [("de", "PUT")]
        sim.clear_faults()
        assert _call(product % "all", token, "PUT", save) == 200
    finally:
        shop.stop()
