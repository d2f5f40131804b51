"""Injected faults: 429, 500, latency, and the database deadlocks a save can meet."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, get_args

from catalogflow.testbench.magento.errors import MagentoSimulatorError, WebapiError

FaultName = Literal["429", "500", "deadlock", "lock_wait", "latency"]
FAULT_NAMES: frozenset[str] = frozenset(get_args(FaultName))

MSG_DEADLOCK = "Database deadlock found when trying to get lock"
MSG_LOCK_WAIT = "Database lock wait timeout exceeded"


@dataclass
class Fault:
    kind: str
    remaining: int
    path_contains: str
    seconds: float
    method: str = ""  # only requests with this HTTP method (e.g. PUT: saves, not reads)


class Faults:
    """Faults waiting to be served, each to its next ``remaining`` matching requests."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: list[Fault] = []

    def inject(
        self, kind: str, count: int, path_contains: str, seconds: float, method: str = ""
    ) -> None:
        if kind not in FAULT_NAMES:
            raise MagentoSimulatorError(
                f"unknown fault {kind!r} (known: {', '.join(sorted(FAULT_NAMES))})"
            )
        if count < 1 or seconds < 0:
            raise MagentoSimulatorError("a fault needs count >= 1 and seconds >= 0")
        with self._lock:
            self._faults.append(Fault(kind, count, path_contains, seconds, method.upper()))

    def clear(self) -> None:
        """Drop every fault not yet taken: the shop is healthy again."""
        with self._lock:
            self._faults.clear()

    def take(
        self, kinds: set[str], path: str, *, method: str = "", raise_it: bool = False
    ) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.kind in kinds
                    and fault.path_contains in path
                    and fault.method in ("", method.upper())
                ):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    if raise_it:
                        message = MSG_DEADLOCK if fault.kind == "deadlock" else MSG_LOCK_WAIT
                        raise WebapiError(400, message, retryable=True)
                    return fault
            return None
