"""The log demo's checks (scenarios/log_demo.py), on hand-made logs: each fails on the fault it
names, and a demo passes only if every required check does."""

from __future__ import annotations

from logact.protocol.codec import Entry
from logact.scenarios.log_demo import Workload, verify
from logact.scenarios.report import Check, all_passed


def entries(*payloads: str) -> list[Entry]:
    return [
        Entry(pos, 1000 + pos, "note", "writer", {"payload": p}) for pos, p in enumerate(payloads)
    ]


def failed(result: Workload) -> list[str]:
    return [check.name for check in verify(result) if not check.passed]


def test_a_clean_run_passes_every_check() -> None:
    log = entries("w0-0", "w1-0", "w0-1")
    acked = {"w0-0": 0, "w1-0": 1, "w0-1": 2}
    assert failed(Workload("demo/x", acked, log, log, log, "n2")) == []


def test_each_fault_fails_its_check() -> None:
    log = entries("w0-0", "w1-0")
    acked = {"w0-0": 0, "w1-0": 1}
    moved = Workload("demo/x", {"w0-0": 1, "w1-0": 1}, log, log, log, "n2")
    assert failed(moved) == ["every acknowledged append is in the log at its acknowledged position"]
    twice = entries("w0-0", "w0-0")
    assert failed(Workload("demo/x", {"w0-0": 0}, twice, twice, twice, "n2")) == [
        "no payload appears twice (idempotent retries)"
    ]
    gappy = [log[0], Entry(2, 1002, "note", "writer", {"payload": "w1-0"})]
    assert "positions are dense from 0" in failed(
        Workload("demo/x", {"w0-0": 0, "w1-0": 2}, gappy, gappy, gappy, "n2")
    )
    assert failed(Workload("demo/x", acked, log[:1], log, log, "n2")) == [
        "the subscriber saw every entry once, in order, across the failover"
    ]
    assert failed(Workload("demo/x", acked, log, log, log[:1], "n2")) == [
        "the restarted node n2 caught up with the same log"
    ]


def test_only_required_checks_decide() -> None:
    assert all_passed([Check("safe", True), Check("made progress", False, required=False)])
    assert not all_passed([Check("safe", False), Check("made progress", True)])
