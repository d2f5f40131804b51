"""Client-side rate limiting for one provider model: requests and tokens per minute,
a bounded number of requests in flight, and a shared pause after a 429.

Time comes from a :class:`~catalogflow.streams.clock.Clock`, so tests run on a
``FakeClock`` (virtual time, deterministic, no real waiting) and production on
``SystemClock``.

Model of the limits (a token bucket per limit, refilled continuously):

* the refill rate is the per-minute limit / 60 per second, so a busy limiter admits
  the per-minute limit per minute and no more;
* a bucket holds at most a **burst allowance** (``burst_s`` seconds of refill, at least
  one request / one request's tokens), and it starts full at that level. Providers
  measure "per minute" limits over short windows (Azure: 1-10 s), so neither a cold
  start nor a worker that was idle for a minute may fire a minute's worth at once;
* tokens get a longer allowance, ``TOKEN_BURST_S``: OpenAI documents short windows for
  request limits only, its token headers describe a bucket that refills continuously,
  and a one-second token allowance would waste whatever part of a second's tokens no
  whole request fits in (with ~400-token requests, up to 12 % of the limit);
* besides, what is admitted in any ``burst_s`` window (counted ``WINDOW_SLACK`` longer)
  never exceeds that allowance (a bucket alone would let allowance + refill through), so
  a server that checks short windows (OpenAI, Azure, the simulator) sees no burst at all.
  For requests the window holds the allowance rounded up to whole requests, as servers
  quantize a per-minute limit (500 rpm: 9 in a second, not 8, which would cap the rate
  at 91 % of the limit); the bucket still refills at exactly the limit;
* tokens are admitted as OpenAI counts them — the caller reserves the prompt estimate
  plus the whole completion budget, and ``Slot.settle`` corrects the books to what the
  server counted once it is known;
* requests are spaced, never sent together (``MIN_SPACING``): the server checks a burst
  one request after another, so its last ones would be counted late;
* a request counts in the window from when it really left (``Slot.sent``, from an HTTP
  client hook) and, if its answer came back late for reasons other than the server's
  own work on it (``openai-processing-ms``), from as late as the server may have
  counted it (``Slot.answered``): a busy event loop or server must not turn into a 429
  one window later, and a model that takes its time generating must not slow us down;
* a request bigger than the token allowance is admitted when the bucket is full and the
  window empty, and leaves the bucket in debt, which later requests wait out;
* ``x-ratelimit-*`` headers can only lower what we believe (limits, remaining amounts),
  never raise them above the configured limits or what the headers say.

A limiter given a ``model`` name records the time callers waited for it and the limits
in force (``catalogflow_rate_limit_per_minute``, set when one changes).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from catalogflow.streams.clock import Clock, SystemClock
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.model import RATE_LIMIT, RATE_LIMITER_WAIT

__all__ = [
    "LimiterStats",
    "RateLimiter",
    "Slot",
    "parse_duration",
]


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` value: ``1s``, ``6m0s``, ``12ms``, ``1.5s``,
    ``1h2m3s``, or a bare number of seconds. ``None`` when it is not such a value."""
    value = text.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * units[match.group(2)]
        position = match.end()
    return total if position == len(value) else None


#: Seconds of refill a token bucket holds (and its window admits): Azure's longest
#: documented window, so request sizes average out over many requests while a cold
#: start or an idle minute still cannot spend a minute's tokens at once.
TOKEN_BURST_S = 10.0

#: A request counts in the short window this much longer than the window itself: the
#: server sees it a little later than we send it (connection set-up, scheduling), and
#: without slack the (k + allowance)-th request can land inside the server's window.
WINDOW_SLACK = 0.05

#: An answer slower than the fastest recent one means the request may have been counted
#: that much late: it left late (our event loop busy after the hook, the process not
#: scheduled) or the server was busy before its check. Half the window slack absorbs
#: lateness; the rest moves the request's window entry, by at most this fraction of the
#: window (so the slow answers of a real model cost little).
LATE_CHECK_CAP = 0.25

#: How many recent round trips give the fastest one.
ROUND_TRIPS_KEPT = 20

#: Consecutive requests leave at least this fraction of the steady interval (60 / rpm)
#: apart. Requests sent together reach the server's check one after another (it parses
#: and answers them in turn), so the last of a burst is counted late and crowds the next
#: window; spaced requests are counted when they arrive. Well below 1, so that after an
#: idle moment (a batch boundary) the window's unused room is caught up at about three
#: times the rate, which is what keeps a batched pipeline above 90 % of the limit.
MIN_SPACING = 0.3


class _Bucket:
    """One limit (requests or tokens per minute) as a continuously refilled bucket."""

    def __init__(
        self,
        configured: int | None,
        burst_s: float,
        now: float,
        *,
        cold_start: bool = False,
        spacing: float = 0.0,
        whole_units: bool = False,
    ) -> None:
        self.configured = configured
        self.from_headers: int | None = None
        self.burst_s = burst_s
        self.spacing = spacing  # fraction of the steady interval between two takes
        self.whole_units = whole_units  # requests: the window holds whole ones
        self.last_taken = -math.inf
        # With ``cold_start`` (requests) the first second sends one request, not the
        # whole allowance: a first burst reaches the server late and bunched
        # (connection set-up) and crowds its window.
        start = min(1.0, self.allowance) if cold_start else self.allowance
        self.level = start if self.limit is not None else 0.0
        self.updated = now
        self.not_before = now  # the server said it has nothing left until then
        # [admitted at, amount] of the last window; kept while the limit is unknown too,
        # so a limit learnt from headers counts the requests already sent.
        self.recent: deque[list[float]] = deque()

    @property
    def limit(self) -> int | None:
        known = [v for v in (self.configured, self.from_headers) if v is not None]
        return min(known) if known else None

    @property
    def rate(self) -> float:
        """Units per second."""
        limit = self.limit
        return 0.0 if limit is None else limit / 60.0

    @property
    def allowance(self) -> float:
        """The most the bucket holds: ``burst_s`` of refill, at least one unit."""
        return max(1.0, self.rate * self.burst_s)

    @property
    def window_allowance(self) -> float:
        """The most one short window admits: the allowance, rounded up to whole units
        for requests (what a server that quantizes the limit allows)."""
        allowance = self.allowance
        return float(math.ceil(allowance - 1e-9)) if self.whole_units else allowance

    def refill(self, now: float) -> None:
        if self.limit is not None and now > self.updated:
            self.level = min(self.allowance, self.level + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may be taken (0: now). Needs a prior ``refill``."""
        if self.limit is None or self.limit <= 0:
            # A limit of 0 (a header saying the quota is gone) is covered by `not_before`.
            return max(0.0, self.not_before - now)
        needed = min(amount, self.allowance)
        shortfall = needed - self.level
        by_rate = shortfall / self.rate if shortfall > 1e-9 else 0.0
        by_spacing = self.last_taken + self.spacing / self.rate - now
        return max(by_rate, by_spacing, self._window_wait(amount, now), self.not_before - now)

    def _window_wait(self, amount: float, now: float) -> float:
        """Seconds until the last ``burst_s`` window has room for ``amount`` (an empty
        window always has room, so an oversized request is not refused forever)."""
        window = self._prune(now)
        spent = sum(entry[1] for entry in self.recent)
        room = self.window_allowance + 1e-9
        if spent + amount <= room:
            return 0.0
        for admitted, entry_amount in self.recent:
            spent -= entry_amount
            if spent <= 1e-9 or spent + amount <= room:
                return admitted + window - now
        return 0.0  # not reached: the loop ends with an empty window

    def _prune(self, now: float) -> float:
        """Drop window entries that no longer count at ``now``; the window's length."""
        window = self.burst_s * (1 + WINDOW_SLACK)
        while self.recent and self.recent[0][0] <= now - window:
            self.recent.popleft()
        return window

    def take(self, amount: float) -> list[float]:
        """Take ``amount`` now; the window entry (to correct it on settle)."""
        if self.limit is not None:
            self.level -= amount
        self.last_taken = self.updated
        entry = [self.updated, amount]
        self._prune(self.updated)
        self.recent.append(entry)
        return entry

    def restamp(self, entry: list[float], at: float) -> None:
        """Count the request of ``entry`` in the window from ``at`` if that is later."""
        if entry[0] >= at:
            return
        for index, held in enumerate(self.recent):
            if held is entry:
                del self.recent[index]
                break
        entry[0] = at
        self.recent.insert(bisect.bisect_right([e[0] for e in self.recent], at), entry)

    def give_back(self, amount: float) -> None:
        if self.limit is not None:
            self.level = min(self.allowance, self.level + amount)

    def observe(
        self, limit: int | None, remaining: float | None, reset: float | None, now: float
    ) -> None:
        self.refill(now)
        if limit is not None and limit > 0:
            self.from_headers = limit
            self.level = min(self.level, self.allowance)
        if remaining is not None:
            self.level = min(self.level, remaining)
            if remaining < 1 and reset is not None and reset > 0:
                # Nothing left on the server; assuming it refills linearly to the full
                # limit in `reset`, one unit is back after reset / (limit - remaining).
                full = self.limit or 1
                self.not_before = max(self.not_before, now + reset / max(1.0, full - remaining))


@dataclass(frozen=True)
class LimiterStats:
    admitted: int  # slots granted
    waited_s: float  # total time callers spent waiting for a slot (clock seconds)
    penalties: int  # penalize() calls (429s)
    in_flight: int
    peak_in_flight: int
    rpm: int | None  # the limits in force now (configured, lowered by headers)
    tpm: int | None


class Slot:
    """A granted request: holds a concurrency slot and a token reservation."""

    def __init__(
        self,
        limiter: RateLimiter,
        reserved: int,
        request_entry: list[float],
        token_entry: list[float],
    ) -> None:
        self._limiter = limiter
        self._request_entry = request_entry
        self._entry = token_entry
        self.reserved = reserved
        self.sent_at = request_entry[0]

    def sent(self) -> None:
        """The request is leaving now (an HTTP client hook says so): it counts in the
        short window from now on. Between the grant and the send the caller's event loop
        may have been busy (building prompts, a batch starting); counted from the grant,
        the request would reach the server later than we think and crowd its window."""
        limiter = self._limiter
        self.sent_at = now = limiter._clock.monotonic()
        limiter._requests.last_taken = max(limiter._requests.last_taken, now)
        limiter._requests.restamp(self._request_entry, now)
        limiter._tokens.restamp(self._entry, now)

    def answered(self, server_seconds: float | None = None) -> None:
        """The (successful) answer arrived now; ``server_seconds`` is how long the
        server says it worked on it (``openai-processing-ms``), when it says so.

        The part of the round trip the server did not spend on the answer (the network,
        our event loop, a queue before its check), beyond the fastest recent one, bounds
        how late the server may have counted the request. Beyond half the window slack
        (which absorbs the rest), the window entry moves by that much, up to
        ``LATE_CHECK_CAP`` of the window. With answers faster than the window this comes
        in time for the request one window later, the one that would share the server's
        window. A model's generation time is not lateness: the server counted the
        request when it arrived, so a slow answer with a long processing time moves
        nothing. (The bound also counts our own delay in reading the answer, hence the
        allowance.)"""
        limiter = self._limiter
        burst_s = limiter._requests.burst_s
        round_trip = limiter._clock.monotonic() - self.sent_at
        if server_seconds is not None:
            round_trip = max(0.0, round_trip - server_seconds)
        trips = limiter._round_trips
        late = round_trip - min(trips, default=round_trip) - WINDOW_SLACK * burst_s / 2
        trips.append(round_trip)
        if late > 0:
            at = self.sent_at + min(late, LATE_CHECK_CAP * burst_s)
            limiter._requests.restamp(self._request_entry, at)
            limiter._tokens.restamp(self._entry, at)

    def settle(self, actual_tokens: int) -> None:
        """Correct the reservation to what the server counted for the request (refund
        or debt). Against OpenAI that is the real prompt tokens plus the whole
        completion budget, not the tokens the answer used: the caller decides."""
        self._limiter._tokens.refill(self._limiter._clock.monotonic())
        difference = self.reserved - actual_tokens
        if difference >= 0:
            self._limiter._tokens.give_back(difference)
        else:
            self._limiter._tokens.level += difference
        self._entry[1] = actual_tokens
        self.reserved = actual_tokens


class RateLimiter:
    """Admission control for one provider model, shared by every caller of that model.

    ``async with limiter.slot(estimated_tokens) as slot:`` waits (first come, first
    served) until a concurrency slot is free, the pause of the last 429 is over, and one
    request and ``estimated_tokens`` tokens are available, and takes them; the body makes
    the call and should ``slot.settle(actual_tokens)``. ``None`` limits are not enforced
    (self-hosted servers usually have none); ``max_concurrency`` always is.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrency: int = 32,
        clock: Clock | None = None,
        *,
        burst_s: float = 1.0,
        model: str | None = None,
    ) -> None:
        """``model`` names the limiter in the metrics (waits and the limits in force);
        a limiter without one records none."""
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if burst_s <= 0:
            raise ValueError("burst_s must be positive")
        self._clock: Clock = clock or SystemClock()
        now = self._clock.monotonic()
        self._requests = _Bucket(
            rpm, burst_s, now, cold_start=True, spacing=MIN_SPACING, whole_units=True
        )
        self._tokens = _Bucket(tpm, max(burst_s, TOKEN_BURST_S), now)
        self._concurrency = asyncio.Semaphore(max_concurrency)
        self._admission = asyncio.Lock()
        self._paused_until = now
        self._round_trips: deque[float] = deque(maxlen=ROUND_TRIPS_KEPT)
        self.max_concurrency = max_concurrency
        self._admitted = 0
        self._waited = 0.0
        self._penalties = 0
        self._in_flight = 0
        self._peak = 0
        self._model = model
        self._shown: dict[str, int | None] = {"requests": None, "tokens": None}
        self._show_limits()

    @property
    def rpm(self) -> int | None:
        return self._requests.limit

    @property
    def tpm(self) -> int | None:
        return self._tokens.limit

    @property
    def stats(self) -> LimiterStats:
        return LimiterStats(
            admitted=self._admitted,
            waited_s=self._waited,
            penalties=self._penalties,
            in_flight=self._in_flight,
            peak_in_flight=self._peak,
            rpm=self.rpm,
            tpm=self.tpm,
        )

    @asynccontextmanager
    async def slot(self, estimated_tokens: int) -> AsyncIterator[Slot]:
        started = self._clock.monotonic()
        # The concurrency slot first: taking rate budget and then queueing for a slot
        # would let requests pile up and leave together, a burst the buckets meant to stop.
        async with self._concurrency:
            async with self._admission:
                while True:
                    now = self._clock.monotonic()
                    self._requests.refill(now)
                    self._tokens.refill(now)
                    wait = max(
                        self._paused_until - now,
                        self._requests.wait(1, now),
                        self._tokens.wait(estimated_tokens, now),
                    )
                    if wait <= 0:
                        break
                    await self._clock.sleep(wait)
                request_entry = self._requests.take(1)
                token_entry = self._tokens.take(estimated_tokens)
            self._admitted += 1
            waited = self._clock.monotonic() - started
            self._waited += waited
            if self._model is not None:
                metrics().inc(RATE_LIMITER_WAIT, waited, model=self._model)
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            try:
                yield Slot(self, estimated_tokens, request_entry, token_entry)
            finally:
                self._in_flight -= 1

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt what a response's ``x-ratelimit-*`` headers say (lowering only).

        Unparsable or negative values (Azure sends ``-1`` on some APIs) are ignored.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        now = self._clock.monotonic()
        for bucket, unit in ((self._requests, "requests"), (self._tokens, "tokens")):
            limit = _number(lowered.get(f"x-ratelimit-limit-{unit}"))
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{unit}"))
            reset_text = lowered.get(f"x-ratelimit-reset-{unit}")
            reset = parse_duration(reset_text) if reset_text is not None else None
            if limit is None and remaining is None:
                continue
            bucket.observe(None if limit is None else int(limit), remaining, reset, now)
        self._show_limits()

    def _show_limits(self) -> None:
        """Set the limit gauges when a limit in force changed (most answers change none)."""
        if self._model is None:
            return
        for unit, limit in (("requests", self.rpm), ("tokens", self.tpm)):
            if limit is not None and limit != self._shown[unit]:
                self._shown[unit] = limit
                metrics().set(RATE_LIMIT, float(limit), model=self._model, unit=unit)

    def penalize(self, retry_after_s: float) -> None:
        """A 429 arrived: nobody starts a request for ``retry_after_s``, and afterwards
        requests restart at the refill rate instead of all at once."""
        now = self._clock.monotonic()
        self._penalties += 1
        self._paused_until = max(self._paused_until, now + max(0.0, retry_after_s))
        self._requests.refill(now)
        self._requests.level = min(self._requests.level, 0.0)
        # No refill during the pause either: afterwards requests go one by one.
        self._requests.updated = max(self._requests.updated, self._paused_until)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
