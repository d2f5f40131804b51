"""Run a throw-away Prometheus server for tests and local use, from Debian's
``prometheus`` package (``deploy/local/install.sh`` installs it when missing).

The configuration is ``deploy/prometheus/prometheus.yml`` with the caller's targets in
place of the compose service names, its own scrape interval and the alert rules by
absolute path; the server keeps its data in a temporary folder on a free port on
127.0.0.1, and ``stop`` removes it all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.errors import CatalogflowError

__all__ = ["CONFIG", "LocalPrometheus", "binary", "scrape_config"]

#: The production scrape config the tests start from (alerts.yml sits next to it).
CONFIG = Path(__file__).resolve().parents[1] / "prometheus" / "prometheus.yml"


def binary() -> Path:
    """``$CATALOGFLOW_PROMETHEUS`` or Debian's ``/usr/bin/prometheus`` (or the PATH)."""
    override = os.environ.get("CATALOGFLOW_PROMETHEUS")
    found = override or shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).exists():
        raise CatalogflowError(
            "Prometheus not found: run deploy/local/install.sh (apt-get install prometheus) "
            "or set CATALOGFLOW_PROMETHEUS to the prometheus binary"
        )
    return Path(found)


def scrape_config(
    targets: Mapping[str, Sequence[str]],
    *,
    interval: str = "1s",
    renames: Mapping[str, str] | None = None,
    source: Path = CONFIG,
) -> dict[str, Any]:
    """``source`` with each job's static targets replaced by ``targets[job]`` (a job
    without targets is dropped), ``interval`` for scraping and rule evaluation, and the
    rule files by absolute path. ``renames`` maps a metric-name prefix to another on
    every scraped series (a test's worker names faust's figures after its own app id;
    the dashboards use the production one)."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    unknown = set(targets) - {job["job_name"] for job in config["scrape_configs"]}
    if unknown:
        raise CatalogflowError(f"no scrape job {sorted(unknown)} in {source}")
    config["global"] = {**config.get("global", {}), "scrape_interval": interval}
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(source.parent / name) for name in config.get("rule_files", [])]
    jobs = []
    for job in config["scrape_configs"]:
        hosts = list(targets.get(job["job_name"], ()))
        if not hosts:
            continue
        job["static_configs"] = [{"targets": hosts}]
        if renames:
            job["metric_relabel_configs"] = [
                {
                    "source_labels": ["__name__"],
                    "regex": f"{old}_(.+)",
                    "target_label": "__name__",
                    "replacement": f"{new}_${{1}}",
                }
                for old, new in renames.items()
            ]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


@dataclass
class LocalPrometheus:
    """A server in its own temporary folder; :meth:`start` returns its base URL."""

    config: dict[str, Any]
    port: int = 0
    root: Path = field(init=False, default=Path())
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.root / "prometheus.log"

    def start(self, timeout: float = 60.0) -> str:
        self.root = Path(tempfile.mkdtemp(prefix="catalogflow-prometheus-"))
        self.port = self.port or free_port()
        config_file = self.root / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(binary()),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self._wait_ready(time.monotonic() + timeout)
        return self.url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a PromQL error raises with Prometheus's words."""
        answer = self.api("/api/v1/query", {"query": expr})
        if answer.get("status") != "success":
            raise CatalogflowError(f"query {expr!r}: {answer.get('error', answer)}")
        data: dict[str, Any] = answer["data"]
        return data["result"] if data["resultType"] == "vector" else [data]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health."""
        active: list[dict[str, Any]] = self.api("/api/v1/targets")["data"]["activeTargets"]
        return active

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and remove its folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self.root.name:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = Path()

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one HTTP API path (``/api/v1/rules``): its JSON, errors included."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422 carry Prometheus's JSON error
            answer = json.loads(exc.read() or b"{}")
        return answer

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise CatalogflowError(
                    f"prometheus exited ({self._process.returncode}):\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise CatalogflowError(f"prometheus not ready:\n{self._log_tail()}")
            time.sleep(0.2)

    def _log_tail(self) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:])
