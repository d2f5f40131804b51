"""A step reports RUNNING only when it runs long enough for anyone to see it."""

import asyncio

from catalogflow.agents.actions import RunningNotice


async def _step(notice: RunningNotice, sent: list[str], seconds: float) -> None:
    await notice.start()
    await asyncio.sleep(seconds)
    sent.append("outcome")
    await notice.settle()


def _events(after: float, step_seconds: float) -> list[str]:
    sent: list[str] = []

    async def send() -> None:
        sent.append("RUNNING")

    async def scenario() -> None:
        await _step(RunningNotice(send, after), sent, step_seconds)
        await asyncio.sleep(after)  # a cancelled notice must stay unsent

    asyncio.run(scenario())
    return sent


def test_a_fast_step_reports_only_its_outcome() -> None:
    assert _events(after=0.2, step_seconds=0.0) == ["outcome"]


def test_a_slow_step_reports_running_before_its_outcome() -> None:
    assert _events(after=0.01, step_seconds=0.2) == ["RUNNING", "outcome"]


def test_zero_reports_running_at_the_start() -> None:
    assert _events(after=0.0, step_seconds=0.0) == ["RUNNING", "outcome"]


def test_a_running_being_sent_when_the_step_ends_goes_out_before_the_outcome() -> None:
    sent: list[str] = []
    sending = asyncio.Event()

    async def slow_send() -> None:
        sending.set()
        await asyncio.sleep(0.05)
        sent.append("RUNNING")

    async def scenario() -> None:
        notice = RunningNotice(slow_send, 0.01)
        await notice.start()
        await sending.wait()
        await notice.settle()
        sent.append("outcome")

    asyncio.run(scenario())
    assert sent == ["RUNNING", "outcome"]
