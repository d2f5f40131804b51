"""The README's main-job command, end to end: its own broker, a worker, a catalog."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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


def test_demo_console_serves_the_web_console_until_stopped(tmp_path: Path) -> None:
    """``demo.sh --console``: the seed workflow applied, the console signed into with the
    printed token, and a clean stop on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGFLOW_")}
    env["CATALOGFLOW_WEB_PORT"] = str(free_port())
    env["CATALOGFLOW_API_PORT"] = str(free_port())
    command = ["demo", "--console", "--count", "40", "--data-dir", str(tmp_path)]
    demo = subprocess.Popen(
        [sys.executable, "-m", "catalogflow", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("web console: "):
                break
        else:
            raise AssertionError("".join(lines))
        match = re.match(r"web console: (\S+)/ .*token (\S+)\)", lines[-1])
        assert match, lines[-1]
        url, token = match.groups()
        with httpx.Client(base_url=url, follow_redirects=True, timeout=30) as client:
            page = client.get("/login")
            check = re.search(r'name="login_check" value="([^"]+)"', page.text)
            assert check
            overview = client.post("/login", data={"token": token, "login_check": check[1]})
            assert overview.status_code == 200 and "Sign out" in overview.text
            deadline = time.monotonic() + 60  # the projector folds the applied workflow
            while 'data-workflow="dry-cat-food"' not in overview.text:
                assert time.monotonic() < deadline, overview.text
                time.sleep(0.5)
                overview = client.get("/")
    finally:
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=120)
    assert demo.returncode == 0, "".join(lines) + rest
    assert "stopping the console demo" in rest and "worker and broker stopped" in rest
