"""The rate limiter on virtual time: pure, no network, no real waiting."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest
from catalogflow.connectors.llm.ratelimit import FakeClock, RateLimiter, parse_duration
from hypothesis import given, settings
from hypothesis import strategies as st


def most_in_window(times: Sequence[float], amounts: Sequence[float], window: float) -> float:
    """The largest total of ``amounts`` whose ``times`` fall in one ``[t, t + window)``."""
    events = sorted(zip(times, amounts, strict=True))
    best, total, first = 0.0, 0.0, 0
    for time_, amount in events:
        total += amount
        while events[first][0] <= time_ - window + 1e-9:
            total -= events[first][1]
            first += 1
        best = max(best, total)
    return best


async def run_requests(
    limiter: RateLimiter,
    clock: FakeClock,
    count: int,
    tokens: int = 1,
    hold_s: float = 0.0,
) -> list[float]:
    """Start ``count`` requests at once; the clock times at which each was admitted."""
    admitted: list[float] = []

    async def one() -> None:
        async with limiter.slot(tokens):
            admitted.append(clock.monotonic())
            await clock.sleep(hold_s)

    await asyncio.gather(*(one() for _ in range(count)))
    return admitted


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1.5s", 1.5),
        ("1h2m3s", 3723.0),
        ("0s", 0.0),
        ("20", 20.0),
        (" 7ms ", 0.007),
        ("", None),
        ("soon", None),
        ("1s2", None),
        ("-1", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    parsed = parse_duration(text)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds)


async def test_rpm_burst_and_steady_state() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    times = await run_requests(limiter, clock, 150)
    # The burst allowance is one second of refill: one request, never a minute's worth.
    assert most_in_window(times, [1] * len(times), 1.0) <= 1
    assert sum(1 for t in times if t < 1.0) == 1
    # Steady state: the configured rate less the window slack (5 %), no less.
    assert sum(1 for t in times if 60.0 <= t < 120.0) == 57
    assert limiter.stats.admitted == 150


async def test_burst_allowance_scales_with_the_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, clock=clock)
    times = await run_requests(limiter, clock, 100)
    assert sum(1 for t in times if t == 0.0) == 1  # a cold start sends one, then 10/s
    # Never more than the allowance in any 1 s window (a bucket alone would allow 19),
    assert most_in_window(times, [1] * len(times), 1.0) <= 10
    # and the full rate less the 5 % window slack: 100 requests take about 10 s.
    assert max(times) == pytest.approx(10.35)


async def test_idle_time_does_not_buy_a_minute_of_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, clock=clock)
    await run_requests(limiter, clock, 20)
    clock.advance(300)  # five idle minutes
    start = clock.monotonic()
    times = await run_requests(limiter, clock, 50)
    assert sum(1 for t in times if t == start) == 10


async def test_tpm_reservations_and_settle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock)  # 100 tokens/s, allowance 100
    times = await run_requests(limiter, clock, 40, tokens=50)
    assert most_in_window(times, [50] * len(times), 1.0) <= 100
    assert most_in_window(times, [50] * len(times), 60.0) <= 100 + 6000
    # 40 * 50 = 2000 tokens, 100 up front, windows 5 % longer than a second
    assert max(times) == pytest.approx(19.95)

    # A reservation that turns out too big is given back.
    clock2 = FakeClock()
    limiter2 = RateLimiter(tpm=6000, clock=clock2)
    async with limiter2.slot(100) as slot:
        slot.settle(10)
    async with limiter2.slot(90):
        assert clock2.monotonic() == 0.0
    # ...and one too small becomes debt that later requests wait out.
    clock3 = FakeClock()
    limiter3 = RateLimiter(tpm=6000, clock=clock3)
    async with limiter3.slot(10) as slot:
        slot.settle(310)
    async with limiter3.slot(100):
        assert clock3.monotonic() == pytest.approx(3.1)  # from 100 - 310 back to 100


async def test_request_bigger_than_the_allowance_waits_for_a_full_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=600, clock=clock)  # 10 tokens/s, allowance 10
    times = await run_requests(limiter, clock, 3, tokens=50)
    assert times == pytest.approx([0.0, 5.0, 10.0])


async def test_headers_lower_the_limits_but_never_raise_them() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, tpm=100_000, clock=clock)
    limiter.observe({"x-ratelimit-limit-requests": "60", "x-ratelimit-limit-tokens": "50000"})
    assert (limiter.rpm, limiter.tpm) == (60, 50_000)
    limiter.observe({"X-RateLimit-Limit-Requests": "10000", "x-ratelimit-limit-tokens": "-1"})
    assert (limiter.rpm, limiter.tpm) == (600, 50_000)  # never above the configuration
    limiter.observe({"x-ratelimit-limit-requests": "garbage"})
    assert limiter.rpm == 600

    unknown = RateLimiter(clock=clock)
    assert unknown.rpm is None
    unknown.observe({"x-ratelimit-limit-requests": "120"})
    assert unknown.rpm == 120


async def test_remaining_zero_waits_for_the_reset() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=6000, clock=clock)
    limiter.observe(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6s",  # 6 s for 60: one back after 0.1 s...
        }
    )
    async with limiter.slot(1):
        admitted = clock.monotonic()
    # ...but our own rate for 60 rpm is one a second, the slower of the two wins.
    assert admitted == pytest.approx(1.0)

    clock2 = FakeClock()
    limiter2 = RateLimiter(tpm=60_000, clock=clock2)
    limiter2.observe(
        {
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",  # someone else used it all: one back in 6 ms
        }
    )
    async with limiter2.slot(1000):
        assert clock2.monotonic() == pytest.approx(1.0)  # refill to 1000 at 1000/s


async def test_penalize_pauses_everyone_then_restarts_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, clock=clock)
    limiter.penalize(5.0)
    times = await run_requests(limiter, clock, 5)
    assert min(times) >= 5.0
    assert times == pytest.approx([5.1, 5.2, 5.3, 5.4, 5.5])  # no burst after the pause
    assert limiter.stats.penalties == 1

    clock2 = FakeClock()
    unlimited = RateLimiter(clock=clock2)
    unlimited.penalize(2.5)
    assert await run_requests(unlimited, clock2, 3) == [2.5, 2.5, 2.5]


async def test_penalize_while_waiting_extends_the_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)

    async def late_429() -> None:
        await clock.sleep(0.5)
        limiter.penalize(10.0)

    task = asyncio.create_task(late_429())
    times = await run_requests(limiter, clock, 2)
    await task
    assert times == [0.0, 10.5 + 1.0]


async def test_concurrency_cap() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_concurrency=3, clock=clock)
    times = await run_requests(limiter, clock, 10, hold_s=1.0)
    assert limiter.stats.peak_in_flight == 3
    assert limiter.stats.in_flight == 0
    assert sorted(times) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


def test_fake_clock_orders_concurrent_sleepers() -> None:
    async def main() -> list[tuple[str, float]]:
        clock = FakeClock(start=100.0)
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic()))

        await asyncio.gather(sleeper("a", 3), sleeper("b", 1), sleeper("c", 2), sleeper("d", 1))
        return woke

    assert asyncio.run(main()) == [("b", 101.0), ("d", 101.0), ("c", 102.0), ("a", 103.0)]


@settings(max_examples=60, deadline=None)
@given(
    rpm=st.one_of(st.none(), st.integers(min_value=1, max_value=3000)),
    tpm=st.one_of(st.none(), st.integers(min_value=100, max_value=200_000)),
    concurrency=st.integers(min_value=1, max_value=16),
    requests=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=30, allow_nan=False),  # arrival
            st.integers(min_value=1, max_value=5000),  # tokens
            st.floats(min_value=0, max_value=5, allow_nan=False),  # duration
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_no_schedule_exceeds_the_limits(
    rpm: int | None,
    tpm: int | None,
    concurrency: int,
    requests: list[tuple[float, int, float]],
) -> None:
    async def main() -> tuple[list[float], list[int], RateLimiter]:
        clock = FakeClock()
        limiter = RateLimiter(rpm=rpm, tpm=tpm, max_concurrency=concurrency, clock=clock)
        admitted: list[float] = []
        reserved: list[int] = []
        in_flight = 0

        async def one(arrival: float, tokens: int, duration: float) -> None:
            nonlocal in_flight
            await clock.sleep(arrival)
            async with limiter.slot(tokens):
                in_flight += 1
                assert in_flight <= concurrency
                admitted.append(clock.monotonic())
                reserved.append(tokens)
                await clock.sleep(duration)
                in_flight -= 1

        await asyncio.gather(*(one(*r) for r in requests))
        return admitted, reserved, limiter

    admitted, reserved, limiter = asyncio.run(main())
    assert len(admitted) == len(requests)
    assert limiter.stats.peak_in_flight <= concurrency
    for window in (1.0, 10.0, 60.0):
        if window == 1.0:  # the short window: the allowance, or one oversized request
            if rpm is not None:
                allowance = max(1.0, rpm / 60)
                assert most_in_window(admitted, [1] * len(admitted), 1.0) <= allowance + 1e-6
            if tpm is not None:
                bound = max(max(1.0, tpm / 60), max(reserved))
                assert most_in_window(admitted, reserved, 1.0) <= bound + 1e-6
        if rpm is not None:
            allowance = max(1.0, rpm / 60)
            bound = allowance + rpm / 60 * window
            assert most_in_window(admitted, [1] * len(admitted), window) <= bound + 1e-6
        if tpm is not None:
            allowance = max(1.0, tpm / 60)
            # One request bigger than the allowance may overdraw the bucket once.
            overdraw = max(0.0, max(reserved) - allowance)
            bound = allowance + tpm / 60 * window + overdraw
            assert most_in_window(admitted, reserved, window) <= bound + 1e-6
    if rpm is None and tpm is None:
        assert math.isclose(min(admitted), min(r[0] for r in requests))
