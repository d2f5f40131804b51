"""Runs ``catalogflow worker`` as a child process and waits until it serves.

Used by the demo command and by the integration tests, so both exercise the same
worker a deployment runs, in its own process (which kill -9 tests need).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings
from catalogflow.streams.watchdog import EXIT_STUCK
from catalogflow.testbench.workerclient import WorkerClient

#: How long after its shutdown timeout a worker may take to leave the process table
#: (the watchdog's own exit, the interpreter's teardown).
EXIT_GRACE = 5.0


class WorkerProcess:
    def __init__(
        self, settings: Settings, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.env = env or {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to serve (start-up race tests)."""
        env = {**os.environ, **self.env, **self.settings.to_env()}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "catalogflow", "worker", "--loglevel", "info"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the launched process answers ``/health/``."""
        assert self._proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            health = self._health()
            if health is not None:
                if health.get("pid") == self._proc.pid:
                    return
                self.stop()
                raise CatalogflowError(
                    f"another process (pid {health.get('pid')}) already serves {self.url}; "
                    "stop it or choose another web_port"
                )
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise CatalogflowError(
                    f"worker did not come up; last log lines:\n{self.log_tail()}"
                )
            time.sleep(0.3)

    def _health(self) -> dict[str, Any] | None:
        """The ``/health/`` answer of whatever serves our port, or None if nothing does."""
        try:
            answer = WorkerClient(self.url, timeout=5).get("/health/")
        except CatalogflowError:
            return None
        return answer if isinstance(answer, dict) else None

    def get(self, path: str) -> Any:
        return WorkerClient(self.url).get(path)

    def get_text(self, path: str) -> str:
        return WorkerClient(self.url).get_text(path)

    def wait_for(self, path: str, done: Any, timeout: float = 120.0) -> Any:
        """Poll ``path`` until ``done(answer)`` is true; return the last answer."""
        deadline = time.monotonic() + timeout
        answer: Any = None
        while time.monotonic() < deadline:
            try:
                answer = self.get(path)
            except CatalogflowError:
                answer = None
            if answer is not None and done(answer):
                return answer
            time.sleep(0.5)
        raise CatalogflowError(
            f"timed out waiting on {path}; last answer {answer!r}; worker log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM and wait (faust commits and leaves the group).

        Raises if the worker is still there after its ``shutdown_timeout`` (then it is
        killed) or if its watchdog had to end it: every test that stops a worker checks
        that SIGTERM stops it.
        """
        if self._proc is None or self._proc.poll() is not None:
            self._close()
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(self.settings.shutdown_timeout + EXIT_GRACE)
        except subprocess.TimeoutExpired:
            self._proc.send_signal(signal.SIGUSR1)  # mode logs every task's stack
            time.sleep(2)
            self._proc.kill()
            self._proc.wait()
            self._close()
            raise CatalogflowError(
                f"worker ignored SIGTERM for {self.settings.shutdown_timeout:.0f}s "
                f"(shutdown_timeout) and was killed; last log lines:\n{self.log_tail()}"
            ) from None
        self._close()
        if code == EXIT_STUCK:
            raise CatalogflowError(
                f"worker did not stop by itself within {self.settings.shutdown_timeout:.0f}s "
                f"of SIGTERM; its watchdog ended it; last log lines:\n{self.log_tail()}"
            )

    def kill(self) -> None:
        """SIGKILL: no commit, no goodbye — the crash that fault tests simulate."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
