"""The one retry policy of outside calls: backoff, Retry-After, which failures retry,
and how many attempts a call gets. Pure functions, no clock and no network."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from catalogflow.connectors.retry import Decision, Outcome, RetryPolicy, retry_after_s

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy()  # 4 attempts, 0.5 s doubling to 20 s, 25 % jitter, 120 s at most


def decide(outcome: Outcome, attempt: int = 1, policy: RetryPolicy = POLICY) -> Decision:
    return policy.decide(attempt, outcome, random.Random(0), NOW)


@pytest.mark.parametrize("seed", range(20))
def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens_it(seed: int) -> None:
    rng = random.Random(seed)
    for retry, full in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]):
        assert 0.75 * full <= POLICY.backoff(retry, rng) <= full


def test_backoff_jitter_is_reproducible_from_the_seed() -> None:
    first = [POLICY.backoff(n, random.Random(42)) for n in range(4)]
    again = [POLICY.backoff(n, random.Random(42)) for n in range(4)]
    assert first == again
    assert RetryPolicy(jitter=0).backoff(2, random.Random(1)) == 2.0


def test_retry_after_ms_beats_retry_after() -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "9"}
    assert retry_after_s(headers, NOW) == 1.5
    decision = decide(Outcome(429, headers))
    assert (decision.retry, decision.wait_s, decision.asked_s) == (True, 1.5, 1.5)


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after_s({"Retry-After": "3"}, NOW) == 3.0  # any case of the name
    in_30_s = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"retry-after": in_30_s}, NOW) == 30.0
    gone_by = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"retry-after": gone_by}, NOW) == 0.0
    naive = (NOW + timedelta(seconds=5)).strftime("%a, %d %b %Y %H:%M:%S -0000")
    assert retry_after_s({"retry-after": naive}, NOW) == 5.0


def test_an_unusable_retry_after_is_ignored_and_the_backoff_applies() -> None:
    assert retry_after_s({"retry-after": "soon"}, NOW) is None
    assert retry_after_s({"retry-after-ms": "-5", "retry-after": "2"}, NOW) == 2.0
    assert retry_after_s({}, NOW) is None
    decision = POLICY.decide(2, Outcome(429, {"retry-after": "soon"}), random.Random(5), NOW)
    assert decision.retry and decision.asked_s is None
    assert decision.wait_s == POLICY.backoff(1, random.Random(5))


def test_a_retry_after_beyond_the_cap_fails_the_call_without_waiting() -> None:
    decision = decide(Outcome(429, {"retry-after": "600"}))
    assert not decision.retry
    assert decision.why == "wait_too_long"
    assert decision.asked_s == 600.0
    short = RetryPolicy(max_retry_after_s=10)
    assert decide(Outcome(503, {"retry-after-ms": "10001"}), policy=short).why == "wait_too_long"
    assert decide(Outcome(503, {"retry-after-ms": "10000"}), policy=short).retry


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_a_request_error_is_not_retried(status: int) -> None:
    decision = decide(Outcome(status))
    assert (decision.retry, decision.why, decision.wait_s) == (False, "not_retryable", 0.0)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_a_timeout_conflict_rate_limit_or_server_error_is_retried(status: int) -> None:
    assert decide(Outcome(status)).retry


def test_no_answer_and_a_transient_answer_are_retried() -> None:
    assert decide(Outcome()).retry  # a timeout or connection error
    assert decide(Outcome(400, transient=True)).retry  # e.g. a Magento deadlock


def test_retry_statuses_are_the_policys_choice_besides_5xx() -> None:
    only_429 = RetryPolicy(retry_statuses=frozenset({429}))
    assert not decide(Outcome(409), policy=only_429).retry
    assert decide(Outcome(429), policy=only_429).retry
    assert decide(Outcome(500), policy=only_429).retry


def test_x_should_retry_overrides_the_status() -> None:
    assert decide(Outcome(429, {"x-should-retry": "false"})).why == "not_retryable"
    assert decide(Outcome(500, {"X-Should-Retry": "False"})).why == "not_retryable"
    assert decide(Outcome(400, {"x-should-retry": "true"})).retry


def test_a_call_makes_max_attempts_attempts_in_all() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [decide(Outcome(500), attempt, policy).retry for attempt in (1, 2, 3)] == [
        True,
        True,
        False,
    ]
    last = decide(Outcome(429, {"retry-after": "4"}), 3, policy)
    assert last.why == "attempts_used"
    assert last.wait_s == 4.0  # still said, for a limiter that other calls share


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="backoff_s"):
        RetryPolicy(backoff_s=-1)
