"""The Raft adapter (server/pysyncobj_adapter.py) on the real PySyncObj 0.3.17, driven in-process.

A ``LogSyncObj`` (no ticking thread, no peers running) receives hand-made Raft messages, so
exact interleavings that are hard to provoke with real processes are replayed
deterministically. The safety rule under test throughout: a node applies only entries that the
current leader has vouched for (issue 12: a healed old leader applied its own uncommitted
suffix when a snapshot chunk arrived).
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pysyncobj.syncobj as pysyncobj_module
import pytest
from pysyncobj import SyncObjConf

from logact.ops.ports import free_ports
from logact.server.journal import FsyncJournal
from logact.server.pysyncobj_adapter import LogSyncObj
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
    entries = [("note", cbor2.dumps(body), 4)]
    cmd = {"op": "append", "bus": "b", "entries": entries, "author": "t", "ts": 1}
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


def write_snapshot(node: LogSyncObj) -> None:
    """Start a snapshot and wait until its worker thread has written it (not compacted yet)."""
    node._SyncObj__forceLogCompaction = True  # type: ignore[attr-defined]
    node._SyncObj__tryLogCompaction()  # type: ignore[attr-defined]
    node._writer.join(10)


def bodies(node: LogSyncObj) -> list[str]:
    bus = node.state.buses.get("b")
    return [cbor2.loads(entry[4]) for entry in bus.entries] if bus is not None else []


def peers(node: LogSyncObj) -> list[Any]:
    return sorted(node._SyncObj__otherNodes, key=lambda n: n.id)  # type: ignore[attr-defined]


def journal_of(node: LogSyncObj) -> list[tuple[int, int]]:
    journal = node._SyncObj__raftLog  # type: ignore[attr-defined]
    return [(journal[i][1], journal[i][2]) for i in range(len(journal))]


@pytest.fixture
def old_leader(follower: LogSyncObj) -> LogSyncObj:
    """A node whose term-1 log holds c2 (committed) and stale3, which never reached anyone."""
    writer = peers(follower)[0]
    c2, stale3 = command(follower, "c2"), command(follower, "stale3")
    deliver(follower, writer, append_entries(1, (1, 0), [(c2, 2, 1), (stale3, 3, 1)], 2))
    assert bodies(follower) == ["c2"]
    return follower


def snapshot_chunk(commit: int) -> dict[str, Any]:
    """The first 64 KiB of a snapshot install: more chunks are still to come."""
    return {
        "type": "append_entries",
        "term": 2,
        "commit_index": commit,
        "serialized": (b"first part", True, False),
    }


#: (message from the term-2 leader, bodies applied afterwards). Its log: 1, c2 (term 1), then
#: new3 and new4 of term 2, all committed (commit index 4).
AFTER_HEALING = {
    "heartbeat at the common prefix": (lambda n: append_entries(2, (2, 1), [], 4), ["c2"]),
    "heartbeat past a conflict": (lambda n: append_entries(2, (3, 2), [], 4), ["c2"]),
    "entries all present": (
        lambda n: append_entries(2, (1, 0), [(command(n, "c2"), 2, 1)], 4),
        ["c2"],
    ),
    "entries partly present": (
        lambda n: append_entries(
            2, (1, 0), [(command(n, "c2"), 2, 1), (command(n, "new3"), 3, 2)], 4
        ),
        ["c2", "new3"],
    ),
    "entries all new": (
        lambda n: append_entries(
            2, (2, 1), [(command(n, "new3"), 3, 2), (command(n, "new4"), 4, 2)], 4
        ),
        ["c2", "new3", "new4"],
    ),
    "snapshot chunk": (lambda n: snapshot_chunk(4), ["c2"]),
}


@pytest.mark.parametrize("path", list(AFTER_HEALING))
def test_every_append_entries_path_commits_only_what_it_vouches_for(
    old_leader: LogSyncObj, path: str
) -> None:
    make_message, applied = AFTER_HEALING[path]
    new_leader = peers(old_leader)[1]
    deliver(old_leader, new_leader, make_message(old_leader))
    assert bodies(old_leader) == applied, "applied an entry the new leader never vouched for"
    if path.startswith("heartbeat at"):
        # Raft §5.3: no conflict, no truncation; the suffix stays, unverified and unapplied.
        assert journal_of(old_leader) == [(1, 0), (2, 1), (3, 1)]


def test_a_leader_counts_only_acknowledgements_of_its_own_term(follower: LogSyncObj) -> None:
    node, (peer, _) = follower, peers(follower)
    c2, c3 = command(node, "c2"), command(node, "c3")
    deliver(node, peer, append_entries(1, (1, 0), [(c2, 2, 1), (c3, 3, 1)], 1))
    node._SyncObj__setCurrentTerm(3, node.selfNode.id)  # type: ignore[attr-defined]
    node._SyncObj__onBecomeLeader()  # type: ignore[attr-defined]  # appends its no-op at 4
    match = node._SyncObj__raftMatchIndex  # type: ignore[attr-defined]
    # A reply the peer gave in term 1 (e.g. held up by a pause) to a log that has changed since.
    ack = {"type": "next_node_idx", "next_node_idx": 5, "reset": False, "success": True}
    node._SyncObj__onMessageReceived(peer, {**ack, "term": 1})  # type: ignore[attr-defined]
    assert match[peer] == 0
    node._SyncObj__onMessageReceived(peer, {**ack, "term": 3})  # type: ignore[attr-defined]
    assert match[peer] == 4


def test_a_failed_snapshot_install_is_not_acknowledged(
    old_leader: LogSyncObj, tmp_path: Path
) -> None:
    """PySyncObj replied success after a failed load, so the leader counted our whole journal."""
    node = old_leader
    node._SyncObj__serializer._Serializer__fileName = str(tmp_path / "raft.snapshot")  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []
    node._SyncObj__transport.send = lambda _node, message: sent.append(message)  # type: ignore[attr-defined]
    new_leader = peers(node)[1]
    for chunk in ((b"not a snapshot", True, False), (b"", False, True)):
        message = {"type": "append_entries", "term": 2, "commit_index": 4, "serialized": chunk}
        deliver(node, new_leader, message)
    assert sent[-1] == {
        "type": "next_node_idx",
        "next_node_idx": 3,
        "reset": True,
        "success": False,
        "term": 2,
    }
    assert bodies(node) == ["c2"]


@pytest.fixture
def addresses() -> list[str]:
    return [f"127.0.0.1:{port}" for port in free_ports(3)]


def leader_snapshot(tmp_path: Path, addresses: list[str], last: int) -> bytes:
    """The snapshot a term-2 leader writes once c2..c<last> (all of term 2) are applied."""
    leader = make_node(addresses[1:] + addresses[:1], fullDumpFile=str(tmp_path / "leader.snap"))
    try:
        history = [(command(leader, f"c{i}"), i, 2) for i in range(2, last + 1)]
        deliver(leader, peers(leader)[0], append_entries(2, (1, 0), history, last))
        write_snapshot(leader)
        return (tmp_path / "leader.snap").read_bytes()
    finally:
        leader.destroy()


def replies(node: LogSyncObj) -> list[dict[str, Any]]:
    """From now on, what ``node`` sends (its transport's send is replaced by a recorder)."""
    sent: list[dict[str, Any]] = []
    node._SyncObj__transport.send = lambda _node, message: sent.append(message)  # type: ignore[attr-defined]
    return sent


def install(node: LogSyncObj, image: bytes, commit: int) -> None:
    """The term-2 leader sends its snapshot: one chunk of data, then the empty last one."""
    before = bodies(node)
    for chunk in ((image, True, False), (b"", False, True)):
        message = {"type": "append_entries", "term": 2, "commit_index": commit, "serialized": chunk}
        deliver(node, peers(node)[1], message)
        if chunk[0]:
            assert bodies(node) == before, "a snapshot chunk applied something"


def test_a_snapshot_install_commits_exactly_the_snapshot(
    tmp_path: Path, addresses: list[str]
) -> None:
    image = leader_snapshot(tmp_path, addresses, 6)
    node = make_node(addresses, fullDumpFile=str(tmp_path / "node.snapshot"))
    try:
        # The node held c2 and an uncommitted stale3 of term 1.
        stale = [(command(node, "c2"), 2, 1), (command(node, "stale3"), 3, 1)]
        deliver(node, peers(node)[0], append_entries(1, (1, 0), stale, 2))
        sent = replies(node)
        install(node, image, commit=6)
        assert bodies(node) == [f"c{i}" for i in range(2, 7)]
        assert node._SyncObj__raftCommitIndex == 6  # type: ignore[attr-defined]
        assert journal_of(node) == [(5, 2), (6, 2)]
        assert sent[-1]["success"] and sent[-1]["next_node_idx"] == 7
        assert node.snapshots_installed == 1
    finally:
        node.destroy()


def test_a_snapshot_older_than_the_commit_index_changes_nothing(
    tmp_path: Path, addresses: list[str]
) -> None:
    """Seen in a chaos soak: a follower that had applied up to 3316 installed a snapshot of
    2993, went back in time and dropped the entries it had acknowledged after 2993."""
    image = leader_snapshot(tmp_path, addresses, 4)
    node = make_node(addresses, fullDumpFile=str(tmp_path / "node.snapshot"))
    try:
        held = [(command(node, f"c{i}"), i, 2) for i in range(2, 7)]
        deliver(node, peers(node)[1], append_entries(2, (1, 0), held, 6))
        journal = journal_of(node)
        sent = replies(node)
        install(node, image, commit=6)
        assert bodies(node) == [f"c{i}" for i in range(2, 7)]
        assert journal_of(node) == journal
        assert sent[-1]["success"] and sent[-1]["next_node_idx"] == 7
        assert (node.snapshots_installed, node.snapshots_ignored) == (0, 1)
    finally:
        node.destroy()


def test_an_install_keeps_the_suffix_the_node_holds_but_vouches_only_for_the_snapshot(
    tmp_path: Path, addresses: list[str]
) -> None:
    """Raft (Fig. 13): a journal holding the snapshot's last entry keeps what follows it."""
    image = leader_snapshot(tmp_path, addresses, 6)
    node = make_node(addresses, fullDumpFile=str(tmp_path / "node.snapshot"))
    try:
        held = [(command(node, f"c{i}"), i, 2) for i in range(2, 9)]
        deliver(node, peers(node)[1], append_entries(2, (1, 0), held, 4))
        sent = replies(node)
        install(node, image, commit=8)
        assert bodies(node) == [f"c{i}" for i in range(2, 7)]
        assert journal_of(node)[-2:] == [(7, 2), (8, 2)]
        assert sent[-1]["success"] and sent[-1]["next_node_idx"] == 7
        deliver(node, peers(node)[1], append_entries(2, (8, 2), [], 8))
        assert bodies(node) == [f"c{i}" for i in range(2, 9)]
    finally:
        node.destroy()


def test_a_restarted_node_applies_nothing_a_leader_has_not_vouched_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pysyncobj_module, "createJournal", lambda path: FsyncJournal(path))
    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    files = {"journalFile": str(tmp_path / "raft.journal")}
    node = make_node(addresses, **files)
    old = peers(node)[0]
    entries = [(command(node, body), i, 1) for i, body in ((2, "c2"), (3, "c3"), (4, "stale4"))]
    deliver(node, old, append_entries(1, (1, 0), entries, 3))
    assert bodies(node) == ["c2", "c3"]
    node.destroy()
    # Versions before issue 12 persisted a commit index, which could cover an unverified suffix.
    meta = tmp_path / "raft.journal.meta"
    meta.write_bytes(cbor2.dumps({**cbor2.loads(meta.read_bytes()), "commit": 4}))

    restarted = make_node(addresses, **files)
    try:
        restarted._SyncObj__applyLogEntries()  # type: ignore[attr-defined]
        assert bodies(restarted) == []
        deliver(restarted, peers(restarted)[1], append_entries(2, (3, 1), [], 5))
        assert bodies(restarted) == ["c2", "c3"]
    finally:
        restarted.destroy()


def test_applying_sends_the_commit_index_at_once_only_while_followers_forward(
    follower: LogSyncObj,
) -> None:
    """A follower answers a command it forwarded once it has applied it; leaving the commit
    index to the next heartbeat made every such append wait for one."""
    writer, forwarder = peers(follower)
    apply = follower._SyncObj__applyLogEntries  # type: ignore[attr-defined]
    on_message = follower._SyncObj__onMessageReceived  # type: ignore[attr-defined]
    on_message(writer, append_entries(1, (1, 0), [(command(follower, "a"), 2, 1)], 2))
    assert apply() is False  # nobody forwards: entries and heartbeats carry the commit index
    assert bodies(follower) == ["a"]
    on_message(
        forwarder, {"type": "apply_command", "command": command(follower, "f"), "request_id": 1}
    )
    on_message(writer, append_entries(1, (2, 1), [(command(follower, "b"), 3, 1)], 3))
    assert apply() is True
    assert bodies(follower) == ["a", "b"]
    assert apply() is False  # nothing new applied: no round
    assert follower.commit_rounds == 1


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
    # The snapshot is written ...
    write_snapshot(node)
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


def test_a_snapshot_is_assembled_from_one_transmission_only(
    tmp_path: Path, addresses: list[str]
) -> None:
    """PySyncObj's leader resumed an abandoned transmission mid-file; the follower joined the
    two halves into a snapshot older than what it had applied meanwhile."""
    image = leader_snapshot(tmp_path, addresses, 4)
    half = len(image) // 2
    node = make_node(addresses, fullDumpFile=str(tmp_path / "node.snapshot"))
    leader = peers(node)[1]

    def chunk(data: bytes, first: bool, last: bool, term: int = 2) -> dict[str, Any]:
        return {
            "type": "append_entries",
            "term": term,
            "commit_index": 4,
            "serialized": (data, first, last),
        }

    try:
        deliver(node, leader, chunk(image[:half], True, False))
        # The leader goes back to plain AppendEntries for a while: the transmission is over.
        deliver(node, leader, append_entries(2, (1, 0), [], 1))
        deliver(node, leader, chunk(image[half:], False, False))
        deliver(node, leader, chunk(b"", False, True))
        assert node.snapshots_installed == 0 and bodies(node) == []
        # A transmission started in one term is not finished by chunks of another.
        deliver(node, leader, chunk(image[:half], True, False))
        deliver(node, leader, chunk(image[half:], False, False, term=3))
        deliver(node, leader, chunk(b"", False, True, term=3))
        assert node.snapshots_installed == 0 and bodies(node) == []
        # One whole transmission installs.
        deliver(node, leader, chunk(image[:half], True, False, term=3))
        deliver(node, leader, chunk(image[half:], False, False, term=3))
        deliver(node, leader, chunk(b"", False, True, term=3))
        assert node.snapshots_installed == 1 and bodies(node) == ["c2", "c3", "c4"]
    finally:
        node.destroy()


def test_a_leader_restarts_a_transmission_the_follower_abandoned(
    tmp_path: Path, addresses: list[str]
) -> None:
    node = make_node(addresses, fullDumpFile=str(tmp_path / "node.snapshot"))
    try:
        follower = peers(node)[0]
        history = [(command(node, f"c{i}"), i, 1) for i in range(2, 5)]
        deliver(node, follower, append_entries(1, (1, 0), history, 4))
        write_snapshot(node)
        node._SyncObj__tryLogCompaction()  # type: ignore[attr-defined]  # compacts the journal
        node._SyncObj__setCurrentTerm(3, node.selfNode.id)  # type: ignore[attr-defined]
        node._SyncObj__onBecomeLeader()  # type: ignore[attr-defined]
        serializer = node._SyncObj__serializer  # type: ignore[attr-defined]
        assert serializer.getTransmissionData(follower)[1], "a transmission starts"
        reset = {"type": "next_node_idx", "next_node_idx": 2, "reset": True, "success": False}
        node._SyncObj__onMessageReceived(follower, {**reset, "term": 3})  # type: ignore[attr-defined]
        assert serializer.getTransmissionData(follower)[1], "it starts again from the top"
    finally:
        node.destroy()


def test_a_journal_holding_a_poison_pill_is_applied_past_it(follower: LogSyncObj) -> None:
    """An older version let a 5,000-digit fence epoch into the log, and its apply raised on
    every node, forever. Replayed now, it is answered with an error and the next entry
    applies."""
    func_id = follower._methodToID[follower._getFuncName("apply_batch")]
    entries = [("note", cbor2.dumps("p"), 4)]
    poison = {"op": "append", "bus": "b", "entries": entries, "author": "t", "ts": 1}
    poison["fence"] = ("driver", 10**5000)
    pill = REGULAR_COMMAND + pickle.dumps((func_id, ([poison],)))
    after = command(follower, "after")
    deliver(
        follower, peers(follower)[0], append_entries(1, (1, 0), [(pill, 2, 1), (after, 3, 1)], 3)
    )
    assert bodies(follower) == ["after"]
    assert follower._SyncObj__raftLastApplied == 3  # type: ignore[attr-defined]
