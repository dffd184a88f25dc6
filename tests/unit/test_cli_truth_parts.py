"""The pure parts behind the log commands' claims: which process a pid file names, who leads,
what a quorum is, how a timestamp is printed (the commands themselves: test_cli_truth.py)."""

from __future__ import annotations

import os
import signal
from typing import Any

from logact.cli.main import iso_utc
from logact.ops.local_cluster import NodeProcess, agreed_leader
from logact.ops.node_probe import NodeState, Probe, has_quorum


def test_a_pid_file_record_names_one_process_and_no_later_one_on_its_pid() -> None:
    me = NodeProcess.of(os.getpid())
    assert me is not None and me.running()
    assert NodeProcess.parse(me.line()) == me
    reused = NodeProcess(me.pid, me.start_ticks - 1, me.boot_id)
    assert not reused.running()
    assert not reused.send(signal.SIGTERM)  # not sent: this test would have stopped
    other_boot = NodeProcess(me.pid, me.start_ticks, "another-boot")
    assert not other_boot.running()
    for text in (f"{os.getpid()}\n", "", "x 1 boot", "1 2", "1 2 3 4"):
        assert NodeProcess.parse(text) is None  # unverifiable: never trusted


def _status(role: str, leader: str | None) -> dict[str, Any]:
    return {"node": {"role": role, "leader": leader}}


def test_the_leader_is_the_one_a_majority_names() -> None:
    agreed = {"n1": _status("follower", "n2"), "n2": _status("leader", "n2"), "n3": None}
    assert agreed_leader(agreed, 3) == "n2"
    assert agreed_leader(agreed, 5) is None  # two of five is no majority
    assert agreed_leader(agreed, 3, among=["n2"]) is None
    stale = {"n1": _status("leader", "n1"), "n2": _status("leader", "n2"), "n3": None}
    assert agreed_leader(stale, 3) is None


def test_a_quorum_is_a_majority_of_ok_nodes() -> None:
    ok = Probe("a:1", NodeState.OK, status={})
    down = Probe("b:1", NodeState.UNREACHABLE, error="refused")
    locked = Probe("c:1", NodeState.UNAUTHORIZED, error="unknown token")
    assert has_quorum([ok, ok, down], 3)
    assert not has_quorum([ok, down, locked], 3)
    assert not has_quorum([ok, ok], 4)
    assert locked.as_json() == {"state": "unauthorized", "error": "unknown token", "status": None}


def test_timestamps_print_as_iso_8601_utc_to_the_millisecond() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_796_644_820_555) == "2026-12-07T12:00:20.555Z"
    assert iso_utc(1_700_000_000_001) == "2023-11-14T22:13:20.001Z"
