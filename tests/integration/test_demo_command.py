"""The README's main-job command, end to end: its own broker, a worker, a catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from catalogflow.localbroker.launcher import free_port

pytestmark = pytest.mark.kafka


def catalogflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalogflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_runs_a_catalog_through_its_own_broker_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGFLOW_")}
    env["CATALOGFLOW_WEB_PORT"] = str(free_port())
    env["CATALOGFLOW_API_PORT"] = str(free_port())

    demo = catalogflow("demo", "--count", "200", "--data-dir", str(tmp_path), env=env)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Kafka 4." in demo.stdout
    assert "is running at 127.0.0.1:" in demo.stdout
    assert "built the products table: 200 products" in demo.stdout
    (curl,) = [line for line in demo.stdout.splitlines() if "curl " in line]
    assert curl.strip().startswith("curl -H 'Authorization: Bearer ")
    assert "http://127.0.0.1:" in curl and "/api/runs/dry-cat-food.v" in curl
    assert "API: http://127.0.0.1:" in demo.stdout
    assert "worker and broker stopped" in demo.stdout
    status = catalogflow("broker", "status", "--data-dir", str(tmp_path / "kafka"), env=env)
    assert status.returncode == 3, status.stdout
