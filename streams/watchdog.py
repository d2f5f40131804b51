"""Ends a worker that has not stopped within its shutdown timeout of SIGTERM.

faust stops a worker in order: the consumer, the agents (each finishing what it holds),
then the producer, which waits until every message sent is confirmed. One agent
awaiting a confirmation that never comes keeps that stop waiting (aiokafka keeps a
batch it cannot place for ``request_timeout``, 20 minutes by faust's default), and the
worker ignores SIGTERM until whatever runs it kills it without a word. The watchdog
bounds the stop: armed when the signal arrives, it ends the process with
:data:`EXIT_STUCK` and one CRITICAL line once ``shutdown_timeout`` has passed. Ending
it loses nothing: events not committed are replayed by the next worker (every step is
idempotent).

It runs on a thread of its own, so an event loop that is busy or blocked cannot hold
it up.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

#: Exit code of a worker its watchdog ended (EX_SOFTWARE: it failed to stop by itself).
EXIT_STUCK = 70


class StopWatchdog:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        """Start counting; a second signal does not restart the count."""
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.timeout, self._expire)
        self._timer.daemon = True  # never what keeps a finished worker alive
        self._timer.start()

    def _expire(self) -> None:
        log.critical(
            "worker did not stop within %.0fs of the stop signal (shutdown_timeout); "
            "exiting now, its uncommitted events will be replayed",
            self.timeout,
        )
        logging.shutdown()  # flush the line before the process is gone
        os._exit(EXIT_STUCK)
