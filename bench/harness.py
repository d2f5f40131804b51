"""Pieces every benchmark here needs: progress lines, stopping on SIGTERM and Ctrl-C,
a local broker of its own, child processes that are always stopped, and the CPU time a
process has used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

#: The repository root: children started with ``-m bench.…`` run from here.
ROOT = Path(__file__).resolve().parent.parent


def say(text: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(text, file=sys.stderr, flush=True)


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C, so every ``finally`` and ExitStack callback runs."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt while inside (SIGINT even when started
    in the background, where it is inherited as ignored); the old handlers after."""
    previous_term = signal.signal(signal.SIGTERM, interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def start_broker(data_dir: Path, cleanup: ExitStack, heap_mb: int = 1024) -> str:
    """A local Kafka broker on a free port, stopped by ``cleanup``; its bootstrap address."""
    from catalogflow.localbroker.launcher import BrokerConfig, LocalBroker

    broker = LocalBroker(BrokerConfig(data_dir=data_dir, heap_mb=heap_mb))
    say("starting the local Kafka broker …")
    try:
        bootstrap = broker.start()
    finally:
        cleanup.callback(broker.stop)  # also stops a half-started JVM (pid file)
    say(f"Kafka at {bootstrap} ({broker.last_start_seconds:.1f} s)")
    return bootstrap


class ChildProcess:
    """A Python module run as a child process in its own session, its output in a log;
    ``stop`` sends SIGTERM and, after ``timeout``, SIGKILL."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module, self.env, self.log_path = module, env, log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.module} was not started")
        return self._proc.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, "PYTHONPATH": pythonpath, **self.env},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` and of its children it has waited for
    (``/proc/<pid>/stat`` utime, stime, cutime, cstime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command: state is field 3 of stat(5); utime..cstime are fields 14-17.
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until(what: str, done: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    """Poll ``done`` until it returns true; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
