"""LogAct's Raft adapter (server/raft.py) wired to the real PySyncObj 0.3.17, driven in-process.

A follower ``LogSyncObj`` (no ticking thread, no peers running) receives hand-made
``append_entries`` messages, so exact Raft interleavings that are hard to provoke with real
processes can be replayed deterministically.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pysyncobj.syncobj as pysyncobj_module
import pytest
from pysyncobj import SyncObjConf

from logact.cli.cluster import free_ports
from logact.server.journal import FsyncJournal
from logact.server.raft import LogSyncObj
from logact.server.state import LogState

REGULAR_COMMAND = b"\x00"  # PySyncObj's _COMMAND_TYPE.REGULAR prefix


def make_node(addresses: list[str], **files: str) -> LogSyncObj:
    conf = SyncObjConf(
        autoTick=False, appendEntriesUseBatch=False, dynamicMembershipChange=False, **files
    )
    return LogSyncObj(addresses[0], addresses[1:], conf, LogState(), threading.Lock(), {})


@pytest.fixture
def follower() -> Iterator[LogSyncObj]:
    node = make_node([f"127.0.0.1:{port}" for port in free_ports(3)])
    try:
        yield node
    finally:
        node.destroy()


def command(node: LogSyncObj, body: str) -> bytes:
    """The journal form of ``apply_batch([append body to bus 'b'])``."""
    func_id = node._methodToID[node._getFuncName("apply_batch")]
    cmd = {"op": "append", "bus": "b", "entries": [("note", body, 4)], "author": "t", "ts": 1}
    return REGULAR_COMMAND + pickle.dumps((func_id, ([cmd],)))


def append_entries(
    term: int, prev: tuple[int, int], entries: list[tuple[bytes, int, int]], commit: int
) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": term,
        "prevLogIdx": prev[0],
        "prevLogTerm": prev[1],
        "entries": entries,
        "commit_index": commit,
    }


def deliver(node: LogSyncObj, sender: Any, message: dict[str, Any]) -> None:
    node._SyncObj__onMessageReceived(sender, message)  # type: ignore[attr-defined]
    node._SyncObj__applyLogEntries()  # type: ignore[attr-defined]


def bodies(node: LogSyncObj) -> list[str]:
    bus = node.state.buses.get("b")
    return [entry[4] for entry in bus.entries] if bus is not None else []


def peers(node: LogSyncObj) -> list[Any]:
    return sorted(node._SyncObj__otherNodes, key=lambda n: n.id)  # type: ignore[attr-defined]


def test_duplicate_append_from_the_same_leader_keeps_the_suffix(follower: LogSyncObj) -> None:
    leader = peers(follower)[0]
    c2, c3, c4 = (command(follower, body) for body in ("c2", "c3", "c4"))
    deliver(follower, leader, append_entries(1, (1, 0), [(c2, 2, 1), (c3, 3, 1), (c4, 4, 1)], 2))
    # A delayed duplicate of an earlier message from the same leader.
    deliver(follower, leader, append_entries(1, (1, 0), [(c2, 2, 1)], 4))
    log = follower._SyncObj__getEntries(1)  # type: ignore[attr-defined]
    assert [(idx, term) for _, idx, term in log] == [(1, 0), (2, 1), (3, 1), (4, 1)]
    # The leader's next heartbeat verifies the suffix; then it is committed and applied.
    deliver(follower, leader, append_entries(1, (4, 1), [], 4))
    assert bodies(follower) == ["c2", "c3", "c4"]


def test_follower_never_applies_an_unverified_suffix(follower: LogSyncObj) -> None:
    old_leader, new_leader = peers(follower)
    c2, stale3, stale4 = (command(follower, body) for body in ("c2", "stale3", "stale4"))
    new3, new4 = command(follower, "new3"), command(follower, "new4")
    # Term 1: the old leader sent 2..4; only 2 committed, then it died.
    deliver(
        follower,
        old_leader,
        append_entries(1, (1, 0), [(c2, 2, 1), (stale3, 3, 1), (stale4, 4, 1)], 2),
    )
    assert bodies(follower) == ["c2"]
    # Term 2: the new leader holds 2 (term 1) then its own 3', 4' (term 2), committed with the
    # third node. Its next message carries only entry 2 (a batch cut by size), commit index 4.
    deliver(follower, new_leader, append_entries(2, (1, 0), [(c2, 2, 1)], 4))
    deliver(follower, new_leader, append_entries(2, (2, 1), [(new3, 3, 2), (new4, 4, 2)], 4))
    assert bodies(follower) == ["c2", "new3", "new4"], "the follower's state machine diverged"


def test_a_crash_between_snapshot_and_compaction_keeps_the_journal_suffix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pysyncobj_module, "createJournal", lambda path: FsyncJournal(path))
    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    files = {
        "journalFile": str(tmp_path / "raft.journal"),
        "fullDumpFile": str(tmp_path / "raft.snapshot"),
    }
    node = make_node(addresses, **files)
    leader = peers(node)[0]
    first = [(command(node, f"c{i}"), i, 1) for i in range(2, 11)]
    deliver(node, leader, append_entries(1, (1, 0), first, 10))
    # The snapshot is written (synchronously: we have our own serializer) ...
    node._SyncObj__forceLogCompaction = True  # type: ignore[attr-defined]
    node._SyncObj__tryLogCompaction()  # type: ignore[attr-defined]
    assert Path(files["fullDumpFile"]).exists()
    # ... more entries are acknowledged and committed, and the node dies before the next tick
    # would have compacted its journal.
    second = [(command(node, f"c{i}"), i, 1) for i in range(11, 16)]
    deliver(node, leader, append_entries(1, (10, 1), second, 15))
    assert len(bodies(node)) == 14
    node.destroy()

    restarted = make_node(addresses, **files)
    try:
        restarted._SyncObj__loadDumpFile(clearJournal=False)  # type: ignore[attr-defined]
        journal = restarted._SyncObj__raftLog  # type: ignore[attr-defined]
        assert [journal[i][1] for i in range(len(journal))] == list(range(9, 16))
        # The leader's next heartbeat finds the follower's log up to date and commits it.
        deliver(restarted, peers(restarted)[0], append_entries(1, (15, 1), [], 15))
        assert bodies(restarted) == [f"c{i}" for i in range(2, 16)]
    finally:
        restarted.destroy()
