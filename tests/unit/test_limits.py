"""The small pure parts of the front end's limits: bounded logging, hello throttle, admission."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from logact.server.config import ServerSettings
from logact.server.net import Admission, ByteBudget, HelloThrottle
from logact.server.ratelog import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_one_kind_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    events = RateLimitedLog(logging.getLogger("t"), interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(1000):
            events.event("bad_frames", "garbage")
        events.event("failed_hellos", "unknown token")
        clock.now = 11.0
        events.event("bad_frames", "garbage")
    assert events.counts == {"bad_frames": 1001, "failed_hellos": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "bad_frames: garbage",
        "failed_hellos: unknown token",
        "bad_frames: garbage (999 more since the last report)",
    ]


def test_failed_hellos_from_one_address_wait_ever_longer() -> None:
    clock = Clock()
    throttle = HelloThrottle(0.1, clock=clock)
    delays = [throttle.failed("10.0.0.1") for _ in range(8)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert throttle.failed("10.0.0.2") == 0.1  # per address
    clock.now = 61.0  # a minute later the address starts over
    assert throttle.failed("10.0.0.1") == 0.1


def test_admission_caps_the_node_and_each_address() -> None:
    admission = Admission(ServerSettings(max_connections=3, max_connections_per_peer=2))
    for peer in ("a", "a", "b"):
        assert admission.refusal(peer) is None
        admission.open(peer)
    assert "maximum of 3" in (admission.refusal("c") or "")
    admission.close("b")
    assert "your address" in (admission.refusal("a") or "")
    assert admission.refusal("c") is None
    admission.close("a")
    admission.close("a")
    assert admission.per_peer == {} and admission.total == 0


async def test_a_full_budget_holds_its_waiters_until_it_drains() -> None:
    budget = ByteBudget(100)
    budget.add(150)  # one item over the cap is admitted; then everyone waits
    passed: list[int] = []

    async def waiter(n: int) -> None:
        await budget.wait_below()
        passed.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(waiter, n)
        await trio.testing.wait_all_tasks_blocked()
        assert passed == []
        budget.release(100)
    assert sorted(passed) == [0, 1, 2]
