"""Typed commands in their replicated form: the form round-trips, and files written before
commands were typed (``tests/fixtures/dict_commands``, made by its ``generate.py``) are still
read, applied alike and written as they were (Raft commands in a newer pickle protocol)."""

from __future__ import annotations

import pickle
import shutil
import threading
from pathlib import Path
from typing import Any

import cbor2
import pysyncobj.syncobj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysyncobj import SyncObjConf

from logact.ops.ports import free_ports
from logact.server import commands, pysyncobj_adapter
from logact.server.command_types import (
    Append,
    Barrier,
    Claim,
    Command,
    Failed,
    NewEntry,
    Quota,
    Trim,
)
from logact.server.committer import BARRIER
from logact.server.embedded import WAL, EmbeddedBackend
from logact.server.journal import FsyncJournal
from logact.server.pysyncobj_adapter import LogSyncObj
from logact.server.replicated_form import Malformed, parse, replicated_batch, to_replicated
from logact.server.state import LogState
from logact.server.storage import RecordFile

FIXTURE = Path(__file__).parents[1] / "fixtures" / "dict_commands"
#: As in the fixture's generate.py.
FENCES = {"intent": "driver"}
SNAPSHOT_AFTER = 3

names = st.text("abc:/._-", min_size=1, max_size=8)
ints = st.integers(0, 2**63 - 1)
pairs = st.none() | st.tuples(names, ints)
appends = st.builds(
    Append,
    bus=names,
    entries=st.lists(st.builds(NewEntry, names, st.binary(max_size=8), ints), min_size=1).map(
        tuple
    ),
    author=names,
    ts=ints,
    quota=st.none() | st.builds(Quota, ints, ints, ints),
    guards=st.lists(names, max_size=3).map(tuple),
    key=pairs,
    expect_tail=st.none() | ints,
    fence=pairs,
)
typed = (
    appends
    | st.builds(Trim, names, ints, st.none() | ints)
    | st.builds(Claim, names, names, st.none() | ints)
    | st.just(Barrier())
)


@settings(max_examples=300, deadline=None)
@given(typed)
def test_every_command_survives_its_replicated_form(cmd: Command) -> None:
    wire = to_replicated(cmd)
    assert parse(wire) == cmd
    # The embedded WAL holds it as CBOR, which turns tuples into lists.
    assert parse(cbor2.loads(cbor2.dumps(wire))) == cmd


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([], "a command must be a map"),
        ({"op": "explode", "bus": "b"}, "unknown command 'explode'"),
        ({"op": "trim", "bus": "", "before": 0}, "'bus' must be a bus id"),
        ({"op": "trim", "bus": "b", "before": -1}, "'before' must be an integer"),
        ({"op": "claim", "bus": "b", "name": 5}, "'name' must be a name"),
        ({"op": "append", "bus": "b", "entries": [], "author": "a", "ts": 0}, "'entries'"),
    ],
)
def test_a_malformed_command_says_what_is_wrong(raw: Any, problem: str) -> None:
    with pytest.raises(Malformed, match=problem):
        parse(raw)
    state = LogState()
    reply = state.apply_replicated(raw)
    assert isinstance(reply, Failed) and problem in reply.message
    assert state.applied == 1 and state.buses == {}


# ---------------------------------------------------------------- files of the dict layout


def build(kind: str, request: dict[str, Any], author: str, ts: int) -> Command | dict[str, Any]:
    """A fixture request as this version's service builds it ("raw": a command as is)."""
    if kind == "append":
        return commands.append_command(
            request, author, ts, commands.Limits(), lambda _: True, FENCES
        )
    if kind == "trim":
        return commands.trim_command(request, ts)
    if kind == "claim":
        return commands.claim_command(request, ts)
    if kind == "barrier":
        return BARRIER
    return request


def fixture_batches() -> list[list[dict[str, Any]]]:
    """The fixture's batches, built by this version and put in their replicated form."""
    batches = cbor2.loads((FIXTURE / "requests.cbor").read_bytes())
    built = [[build(*item) for item in batch] for batch in batches]
    return [
        [item if isinstance(item, dict) else to_replicated(item) for item in batch]
        for batch in built
    ]


def expected() -> dict[str, Any]:
    found: dict[str, Any] = cbor2.loads((FIXTURE / "expected.cbor").read_bytes())
    return found


def journal_batches(tmp_path: Path) -> list[Any]:
    """The batches in the fixture's Raft journal, as PySyncObj hands them to ``apply_batch``."""
    shutil.copy(FIXTURE / "raft" / "raft.journal", tmp_path / "raft.journal")
    journal = FsyncJournal(tmp_path / "raft.journal", sync=False)
    commands_ = [journal[i][0] for i in range(1, len(journal))]  # after PySyncObj's first entry
    return [pickle.loads(command[1:])[1][0] for command in commands_]


def test_the_dict_layout_replays_to_the_same_replies_and_state(tmp_path: Path) -> None:
    old = journal_batches(tmp_path)
    state = LogState()
    replies = [[r.to_wire() for r in state.apply_replicated_batch(batch)] for batch in old]
    assert replies == expected()["replies"]
    assert cbor2.dumps(state.to_snapshot()) == cbor2.dumps(expected()["state"])


def test_this_version_writes_the_commands_the_dict_layout_wrote(tmp_path: Path) -> None:
    old = journal_batches(tmp_path)
    assert fixture_batches() == old  # tuples where it had tuples: ("a",) != ["a"]
    shutil.copy(FIXTURE / "embedded" / WAL, tmp_path / WAL)
    wal = RecordFile(tmp_path / WAL, sync=False)
    payloads = wal.read_all()
    wal.close()
    numbered = list(enumerate(fixture_batches(), start=1))[SNAPSHOT_AFTER:]
    assert [cbor2.dumps([n, batch]) for n, batch in numbered] == payloads


def test_a_raft_snapshot_of_the_dict_layout_restores_and_applies_the_rest() -> None:
    document = cbor2.loads((FIXTURE / "raft" / "raft.snapshot").read_bytes())
    state = LogState.from_snapshot(document["state"])
    assert cbor2.dumps(state.to_snapshot()) == cbor2.dumps(document["state"])
    rest = fixture_batches()[SNAPSHOT_AFTER:]
    replies = [[r.to_wire() for r in state.apply_replicated_batch(batch)] for batch in rest]
    assert replies == expected()["replies"][SNAPSHOT_AFTER:]
    assert cbor2.dumps(state.to_snapshot()) == cbor2.dumps(expected()["state"])


async def test_an_embedded_store_of_the_dict_layout_restarts_and_carries_on(
    tmp_path: Path,
) -> None:
    shutil.copytree(FIXTURE / "embedded", tmp_path / "d")
    backend = EmbeddedBackend(tmp_path / "d")
    try:
        assert backend.replayed == len(fixture_batches()) - SNAPSHOT_AFTER
        assert cbor2.dumps(backend.state.to_snapshot()) == cbor2.dumps(expected()["state"])
        request = {"bus": "agent/1", "entries": [{"type": "note", "body": b"\x01"}]}
        append = commands.append_command(request, "bob", 2_000, commands.Limits(), lambda _: True)
        (reply,) = await backend.replicate([append])
        assert reply.to_wire() == {"ok": True, "first": 5, "last": 5, "ts": 2_000}
    finally:
        backend.close()


def test_replicated_batch_is_the_form_of_each_command() -> None:
    cmds: list[Command] = [Claim("b", "d", 1), Barrier()]
    assert replicated_batch(cmds) == [
        {"op": "claim", "bus": "b", "name": "d", "ts": 1},
        {"op": "barrier"},
    ]


def raft_node(files: Path) -> LogSyncObj:
    """A follower on ``files`` (journal and snapshot), driven by hand: no tick thread."""
    conf = SyncObjConf(
        autoTick=False,
        appendEntriesUseBatch=False,
        dynamicMembershipChange=False,
        journalFile=str(files / "raft.journal"),
        fullDumpFile=str(files / "raft.snapshot"),
    )
    addresses = [f"127.0.0.1:{port}" for port in free_ports(3)]
    return LogSyncObj(addresses[0], addresses[1:], conf, LogState(), threading.Lock(), {})


def test_a_raft_node_of_the_dict_layout_restarts_and_applies_its_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot covers the first batches, the journal holds them all (the node stopped
    before compacting): the node restores the snapshot, and applies the rest once a leader
    vouches for it."""
    shutil.copytree(FIXTURE / "raft", tmp_path / "raft")
    monkeypatch.setattr(pysyncobj.syncobj, "createJournal", lambda path: FsyncJournal(path))
    node = raft_node(tmp_path / "raft")
    try:
        node._SyncObj__loadDumpFile(clearJournal=False)  # type: ignore[attr-defined]
        assert node.state.applied == 8  # the commands of the first three batches
        last = len(fixture_batches()) + 1  # the journal starts with PySyncObj's own entry
        heartbeat = {
            "type": "append_entries",
            "term": 1,
            "prevLogIdx": last,
            "prevLogTerm": 1,
            "entries": [],
            "commit_index": last,
        }
        leader = sorted(node._SyncObj__otherNodes, key=lambda n: n.id)[0]  # type: ignore[attr-defined]
        node._SyncObj__onMessageReceived(leader, heartbeat)  # type: ignore[attr-defined]
        node._SyncObj__applyLogEntries()  # type: ignore[attr-defined]
        assert cbor2.dumps(node.state.to_snapshot()) == cbor2.dumps(expected()["state"])
    finally:
        node.destroy()


def test_a_raft_leader_journals_the_commands_the_dict_layout_journaled(tmp_path: Path) -> None:
    """The same commands, now pickled with protocol 5 (bytes as they are, issue 18) where the
    dict layout used PySyncObj's protocol 2; each pickle names its protocol, and Python reads
    every one, so nodes of both versions read each other's commands."""
    pysyncobj_adapter.install()
    old = FsyncJournal(shutil.copy(FIXTURE / "raft" / "raft.journal", tmp_path / "old"))
    (tmp_path / "new").mkdir()
    node = raft_node(tmp_path / "new")
    try:
        journaled: list[bytes] = []
        node._applyCommand = lambda command, callback, kind: journaled.append(  # type: ignore[method-assign]
            bytes([kind]) + command
        )
        for batch in fixture_batches():
            node.apply_batch(batch, callback=lambda *_: None)  # as RaftBackend.replicate does
        written = [bytes(old[i][0]) for i in range(1, len(old))]
        assert [command[:3] for command in written] == [b"\x00\x80\x02"] * len(written)
        assert [command[:3] for command in journaled] == [b"\x00\x80\x05"] * len(journaled)
        # Equal values of equal types (a tuple never equals a list).
        assert [pickle.loads(c[1:]) for c in journaled] == [pickle.loads(c[1:]) for c in written]
        assert len(b"".join(journaled)) < len(b"".join(written))
    finally:
        node.destroy()
