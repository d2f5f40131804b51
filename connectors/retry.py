"""One retry policy for the calls catalogflow makes to outside services (the model
provider, Magento): how many attempts a call gets, how long to wait before the next
one, which outcomes are worth another attempt, and how a server's ``Retry-After`` is
honoured.

The policy decides; the caller acts on the decision. A client describes how an attempt
failed as an :class:`Outcome` and asks :meth:`RetryPolicy.decide`, which answers with a
:class:`Decision`: try again after ``wait_s``, or give up and say why. Waiting is the
caller's, on its clock: the model client pauses its shared rate limiter after a 429 and
sleeps on its :class:`~catalogflow.connectors.llm.ratelimit.Clock` otherwise, the
Magento client sleeps on its clock.

The rules follow the openai SDK's (its ``_base_client.py``), with our limits:

* retried: no answer at all (timeout, connection error, an unreadable answer), every
  5xx, the statuses in ``retry_statuses`` (408, 409 and 429 by default), and answers the
  caller knows a later attempt can get past (``Outcome.transient``, e.g. a Magento
  deadlock); an ``x-should-retry: true|false`` header overrides all of these;
* the wait is what the server asks, ``retry-after-ms`` first, then ``retry-after`` in
  seconds or as an HTTP date; without either, exponential backoff
  ``backoff_s * 2^n`` capped at ``backoff_cap_s``, less up to ``jitter`` of it;
* a server that asks for longer than ``max_retry_after_s`` (an exhausted daily quota)
  is not waited out inside one call: the call fails at once, and the pipeline's own
  later retry (``retry-failed``, the next run) takes over;
* a call makes at most ``max_attempts`` attempts in all, whatever failed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal

__all__ = [
    "RETRY_STATUSES",
    "Decision",
    "Outcome",
    "RetryPolicy",
    "retry_after_s",
]

#: Statuses besides 5xx that a later attempt can get past: timeout, conflict, rate limit.
RETRY_STATUSES: Final = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Outcome:
    """How one attempt failed, as the policy needs to know it."""

    status: int | None = None  # the HTTP status; None: no usable answer came back
    headers: Mapping[str, str] = field(default_factory=dict)
    transient: bool = False  # the caller knows a later attempt can get past this answer


@dataclass(frozen=True)
class Decision:
    """What to do after a failed attempt.

    ``wait_s`` is how long to wait before the next attempt; it is also set when the call
    gives up after a retryable failure, so a caller can still pause what it shares with
    other calls (a rate limiter) for as long as the server asked.
    """

    retry: bool
    why: Literal["retry", "not_retryable", "attempts_used", "wait_too_long"]
    wait_s: float = 0.0
    asked_s: float | None = None  # what the server's Retry-After asked for, if it sent one


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts, backoff and which failures retry, for one kind of outside call."""

    max_attempts: int = 4
    backoff_s: float = 0.5  # the first backoff; it doubles with each retry
    backoff_cap_s: float = 20.0
    jitter: float = 0.25  # each backoff is shortened by up to this fraction, at random
    max_retry_after_s: float = 120.0  # a longer Retry-After fails the call at once
    retry_statuses: frozenset[int] = RETRY_STATUSES  # retried besides every 5xx

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_s < 0 or self.backoff_cap_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff_s, backoff_cap_s and max_retry_after_s must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (0: the first) when the server asked
        for none: ``backoff_s * 2^retry`` capped, less up to ``jitter`` of it."""
        delay = min(self.backoff_cap_s, self.backoff_s * 2.0**retry)
        return delay * (1 - self.jitter * rng.random())

    def retryable(self, outcome: Outcome) -> bool:
        """Whether a later attempt can get past this failure (``x-should-retry`` first)."""
        should = (_header(outcome.headers, "x-should-retry") or "").strip().lower()
        if should in ("true", "false"):
            return should == "true"
        status = outcome.status
        return status is None or outcome.transient or status >= 500 or status in self.retry_statuses

    def decide(self, attempt: int, outcome: Outcome, rng: random.Random, now: datetime) -> Decision:
        """After attempt number ``attempt`` (1: the first) failed with ``outcome``:
        another attempt, and after how long, or why not. ``now`` is the wall-clock time,
        for a Retry-After given as an HTTP date."""
        if not self.retryable(outcome):
            return Decision(retry=False, why="not_retryable")
        asked = retry_after_s(outcome.headers, now)
        if asked is not None and asked > self.max_retry_after_s:
            return Decision(retry=False, why="wait_too_long", wait_s=asked, asked_s=asked)
        wait = asked if asked is not None else self.backoff(attempt - 1, rng)
        if attempt >= self.max_attempts:
            return Decision(retry=False, why="attempts_used", wait_s=wait, asked_s=asked)
        return Decision(retry=True, why="retry", wait_s=wait, asked_s=asked)


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long the server asks us to wait: ``retry-after-ms``, else ``retry-after`` in
    seconds or as an HTTP date (relative to ``now``); None when it asks nothing usable."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        text = _header(headers, name)
        if text is None:
            continue
        try:
            seconds = float(text) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    text = _header(headers, "retry-after")
    if text is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name (plain dicts are case-sensitive)."""
    value = headers.get(name)
    if value is not None:
        return value
    return next((text for key, text in headers.items() if key.lower() == name), None)
