"""The rate limiter on virtual time: pure, no network, no real waiting."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Sequence

import pytest
from catalogflow.connectors.llm.ratelimit import (
    LATE_CHECK_CAP,
    MIN_SPACING,
    TOKEN_BURST_S,
    WINDOW_SLACK,
    RateLimiter,
    parse_duration,
)
from catalogflow.streams.clock import FakeClock
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
    # The one-second allowance, caught up at MIN_SPACING of the steady 0.1 s, not at once,
    assert [t - start for t in times[:10]] == pytest.approx([0.03 * k for k in range(10)])
    # and then nothing until the first of them leaves the (slack-lengthened) window.
    assert times[10] - start == pytest.approx(1.05)


def spacing_and_window(times: Sequence[float]) -> tuple[float, float]:
    """The least gap between consecutive admissions, and the most admissions in any
    window of one second plus the slack."""
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return min(gaps), most_in_window(ordered, [1] * len(ordered), 1.0 + WINDOW_SLACK)


@pytest.mark.parametrize("rpm", [60, 600, 3000])
async def test_requests_are_paced_and_use_the_rate(rpm: int) -> None:
    """The pacing property, on virtual time: requests of 0.5 s each, enough of them in
    flight to reach the limit, never closer than MIN_SPACING of the steady interval,
    never more than the allowance in a window (even one WINDOW_SLACK longer than the
    server's), and at least 95 % of the configured rate over the run."""
    clock = FakeClock()
    in_flight = max(4, rpm // 60)  # N * L / 60 = rpm / 120 needed
    limiter = RateLimiter(rpm=rpm, max_concurrency=in_flight, clock=clock)
    times = await run_requests(limiter, clock, max(120, rpm // 6), hold_s=0.5)
    least_gap, most = spacing_and_window(times)
    assert least_gap >= MIN_SPACING * 60 / rpm - 1e-9
    assert most <= rpm / 60
    achieved = (len(times) - 1) / (max(times) - min(times)) * 60
    assert achieved >= 0.95 * rpm


async def run_batches(
    limiter: RateLimiter,
    clock: FakeClock,
    total: int,
    batch: int,
    concurrency: int,
    latency_s: float,
    between_s: float,
) -> tuple[list[float], list[float]]:
    """The action agent's shape (agents/actions.py): a batch runs with bounded
    concurrency and the next starts only when all of it is done (plus ``between_s``
    to confirm and fetch). Admission and completion times."""
    admitted: list[float] = []
    finished: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate, limiter.slot(1):
            admitted.append(clock.monotonic())
            await clock.sleep(latency_s)
            finished.append(clock.monotonic())

    for start in range(0, total, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, total - start))))
        await clock.sleep(between_s)
    return admitted, finished


@pytest.mark.parametrize(("batch", "floor"), [(64, 0.92), (256, 0.94)])
async def test_batch_barrier_keeps_the_rate_above_90_percent(batch: int, floor: float) -> None:
    """Worker defaults (batch 64, concurrency 16) at 600 rpm and 0.5 s per call: the
    idle moment at each batch boundary is caught up by the spaced catch-up, so the run
    stays above 90 % of the limit (the benchmark, bench/rate_limit.py, measures the
    real pipeline), with the same pacing and window guarantees."""
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, max_concurrency=16, clock=clock)
    admitted, finished = await run_batches(limiter, clock, 400, batch, 16, 0.5, 0.05)
    least_gap, most = spacing_and_window(admitted)
    assert least_gap >= MIN_SPACING * 0.1 - 1e-9
    assert most <= 10
    rate = (len(finished) - 1) / (max(finished) - min(finished)) * 60
    assert rate >= floor * 600


async def test_a_request_counts_from_when_it_was_sent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)  # one request per window
    async with limiter.slot(1) as slot:
        clock.advance(0.4)  # granted at 0, but our event loop was busy until 0.4
        slot.sent()
    async with limiter.slot(1):
        assert clock.monotonic() == pytest.approx(0.4 + 1.05)


async def test_a_late_answer_moves_the_window_entry() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    async with limiter.slot(1) as slot:  # sets the fastest round trip: 0.5 s
        slot.sent()
        clock.advance(0.5)
        slot.answered()
    async with limiter.slot(1) as slot:
        assert clock.monotonic() == pytest.approx(1.05)
        slot.sent()
        clock.advance(0.7)  # 0.2 s slower: maybe counted 0.2 s late by the server
        slot.answered()
    async with limiter.slot(1):
        # Half the slack (25 ms) is absorbed, the rest of the 0.2 s moves the entry.
        assert clock.monotonic() == pytest.approx(1.05 + 0.2 - 0.025 + 1.05)

    clock2 = FakeClock()
    limiter2 = RateLimiter(rpm=60, clock=clock2)
    async with limiter2.slot(1) as slot:
        clock2.advance(0.5)
        slot.answered()
    async with limiter2.slot(1) as slot:
        clock2.advance(0.5 + 0.6)  # much slower: the move is capped
        slot.answered()
    async with limiter2.slot(1):
        assert clock2.monotonic() == pytest.approx(1.05 + LATE_CHECK_CAP + 1.05)


async def test_a_slow_answer_the_server_spent_generating_moves_nothing() -> None:
    """A model's generation time (openai-processing-ms) is not late counting: the
    server counted the request when it arrived, so the next window opens on time."""
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    async with limiter.slot(1) as slot:  # fastest round trip: 0.3 s, 0.28 s of it server
        slot.sent()
        clock.advance(0.3)
        slot.answered(server_seconds=0.28)
    async with limiter.slot(1) as slot:
        assert clock.monotonic() == pytest.approx(1.05)
        slot.sent()
        clock.advance(0.8)  # 0.5 s slower, all of it the model generating
        slot.answered(server_seconds=0.78)
    async with limiter.slot(1):
        assert clock.monotonic() == pytest.approx(1.05 + 1.05)


async def test_a_limit_learnt_from_headers_counts_the_requests_already_sent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)  # nothing configured: no limit yet
    assert await run_requests(limiter, clock, 5) == [0.0] * 5
    limiter.observe({"x-ratelimit-limit-requests": "300"})  # 5 per second
    async with limiter.slot(1):
        assert clock.monotonic() == pytest.approx(1.05)


async def test_tpm_reservations_and_settle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock)  # 100 tokens/s, allowance 1,000 (10 s)
    times = await run_requests(limiter, clock, 40, tokens=50)
    assert most_in_window(times, [50] * len(times), TOKEN_BURST_S) <= 1000
    assert most_in_window(times, [50] * len(times), 60.0) <= 1000 + 6000
    # 40 * 50 = 2000 tokens: 1,000 up front, the rest when the window (5 % longer than
    # 10 s) has passed, the bucket full again by then
    assert max(times) == pytest.approx(10.5)

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
        slot.settle(3100)
    async with limiter3.slot(100):
        assert clock3.monotonic() == pytest.approx(22.0)  # from 1,000 - 3,100 back to 100


async def test_request_bigger_than_the_allowance_waits_for_a_full_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=600, clock=clock)  # 10 tokens/s, allowance 100 (10 s)
    times = await run_requests(limiter, clock, 3, tokens=150)
    assert times == pytest.approx([0.0, 15.0, 30.0])


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
            if rpm is not None:  # whole requests, as a server quantizes the limit
                allowance: float = math.ceil(max(1.0, rpm / 60) - 1e-9)
                assert most_in_window(admitted, [1] * len(admitted), 1.0) <= allowance + 1e-6
            if tpm is not None:  # tokens: the longer token window
                bound = max(max(1.0, tpm / 60 * TOKEN_BURST_S), max(reserved))
                assert most_in_window(admitted, reserved, TOKEN_BURST_S) <= bound + 1e-6
        if rpm is not None:
            allowance = max(1.0, rpm / 60)
            bound = allowance + rpm / 60 * window
            assert most_in_window(admitted, [1] * len(admitted), window) <= bound + 1e-6
        if tpm is not None:
            allowance = max(1.0, tpm / 60 * TOKEN_BURST_S)
            # One request bigger than the allowance may overdraw the bucket once.
            overdraw = max(0.0, max(reserved) - allowance)
            bound = allowance + tpm / 60 * window + overdraw
            assert most_in_window(admitted, reserved, window) <= bound + 1e-6
    if rpm is None and tpm is None:
        assert math.isclose(min(admitted), min(r[0] for r in requests))


async def test_a_limit_that_is_not_a_multiple_of_60_rpm_is_used_whole() -> None:
    # 500 rpm: a server allows ceil(500 / 60) = 9 in a second, so the window holds 9
    # (8 would cap the rate at 8 per 1.05 s, 91 % of the limit); the bucket keeps the
    # long-run rate at the limit.
    clock = FakeClock()
    limiter = RateLimiter(rpm=500, clock=clock)
    times = await run_requests(limiter, clock, 400)
    assert most_in_window(times, [1] * len(times), 1.0) <= 9
    rate = (len(times) - 1) / (max(times) - min(times)) * 60
    assert 0.97 * 500 <= rate <= 500 * 1.001


async def test_token_admission_reserves_prompt_plus_budget_and_keeps_the_budget_booked() -> None:
    # 200,000 tpm = 3,333 tokens a second; requests of 200 prompt + 150 budget tokens.
    clock = FakeClock()
    limiter = RateLimiter(tpm=200_000, clock=clock)
    admitted: list[float] = []

    async def one() -> None:
        async with limiter.slot(200 + 150) as slot:
            admitted.append(clock.monotonic())
            await clock.sleep(0.5)
            slot.settle(190 + 150)  # the real prompt count, the whole budget

    await asyncio.gather(*(one() for _ in range(600)))
    booked = [340] * len(admitted)
    assert most_in_window(admitted, booked, TOKEN_BURST_S) <= 200_000 / 60 * TOKEN_BURST_S + 1e-6
    used = (len(admitted) - 1) * 340 / (max(admitted) - min(admitted)) * 60
    # The token limit is used, not a fraction of it (1,024-token budgets would leave
    # ~25 %): a 10 s token window wastes at most one request's share of it.
    assert used >= 0.95 * 200_000
