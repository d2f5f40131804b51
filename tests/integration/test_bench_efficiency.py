"""The efficiency benchmark runs end to end at a tiny size and reports sane numbers: the
catalogflow run with its cost, the three bare chains (the last replaying exactly the
HTTP requests catalogflow made), and a few seconds of continuous mode. No timing
thresholds: the numbers belong to bench/, not to a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS, RATE, SECONDS = 30, 5, 3


def test_the_efficiency_benchmark_runs_every_mode_and_reports_sane_numbers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.efficiency",
            "--mode=all",
            f"--products={PRODUCTS}",
            f"--rate={RATE}",
            f"--seconds={SECONDS}",
            f"--bootstrap={kafka_bootstrap}",
            f"--workdir={tmp_path}",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)

    chains = ("bare_hops_only", "bare_http", "bare_same_calls")
    for key in chains:
        assert results[key]["products"] == PRODUCTS
        assert results[key]["products_per_s"] > 0 and results[key]["cpu_ms_per_product"] > 0
        assert results[f"ratio_to_{key}"] > 0
    assert results["bare_hops_only"]["requests_per_product"] == {}
    assert results["bare_http"]["requests_per_product"] == {"PUT": 1, "model": 4}

    catalogflow = results["catalogflow"]
    replayed = results["recorded_requests_per_product"]
    assert results["bare_same_calls"]["requests_per_product"] == replayed
    assert replayed["model"] == catalogflow["model_calls_per_product"]
    magento = catalogflow["magento_requests_per_product"]
    assert replayed["PUT"] == magento["PUT"]
    metadata = sum(results["unattributed_requests"].values()) / PRODUCTS
    assert replayed["GET"] + metadata == pytest.approx(magento["GET"], abs=0.02)
    assert catalogflow["run_counts"] == {"SYNCED": PRODUCTS}
    assert 0 < catalogflow["seconds_to_last_write"] <= catalogflow["seconds_to_completed"]
    assert catalogflow["cpu_s_per_product"] > 0
    assert catalogflow["model_calls_per_product"] >= 1
    assert catalogflow["magento_requests_per_product"]["PUT"] >= 1
    topics = {t["topic"]: t for t in catalogflow["topics"]}
    assert topics["task-events"]["messages_per_product"] > 0
    assert topics["task-events"]["bytes_per_product"] > 0
    assert any(name.endswith("-changelog") for name in topics)
    assert catalogflow["kafka_messages_per_product"] == pytest.approx(
        sum(t["messages_per_product"] for t in topics.values()), abs=0.1
    )

    continuous = results["continuous"]
    assert continuous["published"] == RATE * SECONDS
    assert continuous["written"] == continuous["published"]
    assert 0 < continuous["p50_s"] <= continuous["p99_s"] <= continuous["max_s"]
    assert continuous["stores_per_product"]
    assert isinstance(results["missed_targets"], list)
