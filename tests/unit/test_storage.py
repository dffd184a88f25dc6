"""Durable storage: record files, the Raft journal and the embedded WAL + snapshot backend.

Crashes are simulated by copying the files of a live (not closed) object to another directory
and opening the copy: what is in the OS (flushed) survives, the process's buffers do not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from logact.protocol.errors import Unavailable
from logact.server import commands
from logact.server import journal as journal_module
from logact.server.command_types import Append, Barrier, Claim, Command, Reply, Trim
from logact.server.embedded import SNAPSHOT, WAL, EmbeddedBackend
from logact.server.journal import FsyncJournal
from logact.server.replicated_form import replicated_batch
from logact.server.state import LogState
from logact.server.storage import (
    RECORD_HEADER,
    SYNC_TRACE_ENV,
    CorruptRecord,
    RecordFile,
    atomic_write,
    frame_record,
    synced_size_path,
)

payloads = st.lists(st.binary(max_size=40), max_size=8)


# ---------------------------------------------------------------- records


def records_in(stream: bytes) -> list[bytes]:
    """The records a RecordFile reads back from a file holding ``stream``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.log"
        path.write_bytes(stream)
        rf = RecordFile(path, sync=False)
        try:
            return rf.read_all()
        finally:
            rf.close()


def test_frame_record_layout() -> None:
    record = frame_record(b"abc")
    length, crc = RECORD_HEADER.unpack_from(record)
    assert (length, crc) == (3, zlib.crc32(b"abc"))
    assert record[RECORD_HEADER.size :] == b"abc"
    assert records_in(record) == [b"abc"]


@settings(max_examples=150, deadline=None)
@given(items=payloads, data=st.data())
def test_a_truncated_file_reads_as_its_complete_prefix(
    items: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frame_record(p) for p in items)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)))
    ends, offset = [], 0
    for p in items:
        offset += RECORD_HEADER.size + len(p)
        ends.append(offset)
    expected = [p for p, end in zip(items, ends, strict=True) if end <= cut]
    assert records_in(stream[:cut]) == expected


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=6), data=st.data())
def test_reading_stops_at_a_corrupt_record(items: list[bytes], data: st.DataObject) -> None:
    stream = bytearray(b"".join(frame_record(p) for p in items))
    victim = data.draw(st.integers(min_value=0, max_value=len(items) - 1))
    start = sum(RECORD_HEADER.size + len(p) for p in items[:victim])
    # Flip a payload byte (the CRC catches it) of record ``victim``.
    index = start + RECORD_HEADER.size + data.draw(st.integers(0, len(items[victim]) - 1))
    stream[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    assert records_in(bytes(stream)) == items[:victim]


def test_a_record_is_read_back_at_its_offset_and_checked(tmp_path: Path) -> None:
    rf = RecordFile(tmp_path / "r.log")
    first = rf.append(b"one")
    second = rf.append(b"tw", b"o")  # a payload in parts is one record
    # Still in the write buffer: read_at sees it anyway.
    assert (rf.read_at(first), rf.read_at(second)) == (b"one", b"two")
    rf.sync()
    with open(tmp_path / "r.log", "r+b") as handle:
        handle.seek(second + RECORD_HEADER.size)
        handle.write(b"T")
    with pytest.raises(CorruptRecord, match="offset 11 is damaged"):
        rf.read_at(second)
    with pytest.raises(CorruptRecord):
        rf.read_at(rf.size)  # nothing there
    rf.close()


def test_record_file_roundtrip_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    rf = RecordFile(path)
    assert rf.read_all() == [] and rf.size == 0
    assert rf.append(b"one") == 0
    second = rf.append(b"two")
    assert second == RECORD_HEADER.size + 3
    assert rf.dirty
    rf.sync()
    assert not rf.dirty
    rf.close()
    again = RecordFile(path)
    assert again.read_all() == [b"one", b"two"]
    again.append(b"three")
    again.close()
    assert RecordFile(path).read_all() == [b"one", b"two", b"three"]


@pytest.mark.parametrize(
    "tail",
    [
        b"\x05",  # part of a header
        RECORD_HEADER.pack(10, 0),  # a header with no payload
        RECORD_HEADER.pack(3, zlib.crc32(b"abc")) + b"ab",  # a short payload
        RECORD_HEADER.pack(3, zlib.crc32(b"abc") ^ 1) + b"abc",  # a bad checksum
        RECORD_HEADER.pack(2**32 - 1, 0) + b"xyz",  # a huge length
    ],
)
def test_torn_tail_is_truncated_on_open_and_appends_continue(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "r.log"
    rf = RecordFile(path)
    rf.append(b"kept")
    rf.close()
    good_size = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(tail)
    rf = RecordFile(path)
    assert rf.read_all() == [b"kept"]
    assert path.stat().st_size == good_size
    rf.append(b"after")
    rf.close()
    # The new record is readable: it was not written behind the torn bytes.
    assert RecordFile(path).read_all() == [b"kept", b"after"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=payloads, garbage=st.binary(max_size=30), more=payloads)
def test_record_file_recovers_any_prefix_plus_garbage(
    items: list[bytes], garbage: bytes, more: list[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.log"
        rf = RecordFile(path, sync=False)
        for p in items:
            rf.append(p)
        rf.close()
        with open(path, "ab") as handle:
            handle.write(garbage)
        rf = RecordFile(path, sync=False)
        recovered = rf.read_all()
        # Garbage may by chance form valid records, but the originals always come back first.
        assert recovered[: len(items)] == items
        for p in more:
            rf.append(p)
        rf.close()
        assert RecordFile(path, sync=False).read_all() == recovered + more


def test_record_file_truncate(tmp_path: Path) -> None:
    rf = RecordFile(tmp_path / "r.log")
    rf.append(b"a")
    cut = rf.append(b"b")
    rf.truncate(cut)
    assert rf.size == cut
    rf.append(b"c")
    rf.close()
    assert RecordFile(tmp_path / "r.log").read_all() == [b"a", b"c"]


def test_record_file_sync_calls_fdatasync_only_when_enabled_and_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd))[1])
    rf = RecordFile(tmp_path / "r.log")
    rf.sync()
    assert calls == []  # nothing to sync
    rf.append(b"x")
    rf.sync()
    assert len(calls) == 1
    rf.close()
    lazy = RecordFile(tmp_path / "lazy.log", sync=False)
    lazy.append(b"x")
    lazy.sync()
    lazy.close()
    assert len(calls) == 1
    assert RecordFile(tmp_path / "lazy.log").read_all() == [b"x"]


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    atomic_write(tmp_path / "g.bin", b"x", sync=False)
    assert (tmp_path / "g.bin").read_bytes() == b"x"


# ---------------------------------------------------------------- journal


def journal_entries(journal: FsyncJournal) -> list[tuple[bytes, int, int]]:
    return [(bytes(c), i, t) for c, i, t in (journal[k] for k in range(len(journal)))]


def test_journal_add_reopen_and_index(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    j = FsyncJournal(path)
    for idx in range(1, 6):
        j.add(f"cmd{idx}".encode(), idx, 1 + idx // 3)
    assert len(j) == 5
    assert j[0] == (b"cmd1", 1, 1)
    assert j[-1] == (b"cmd5", 5, 2)
    j.sync()
    assert j.syncs == 1
    j.sync()
    assert j.syncs == 1  # nothing new: no fdatasync counted
    j._destroy()
    again = FsyncJournal(path)
    assert journal_entries(again) == [(f"cmd{i}".encode(), i, 1 + i // 3) for i in range(1, 6)]
    again._destroy()


def test_journal_delete_entries_from_then_add(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    j = FsyncJournal(path)
    for idx in range(1, 6):
        j.add(b"x" * idx, idx, 1)
    j.sync()
    j.deleteEntriesFrom(2)
    j.deleteEntriesFrom(10)  # beyond the end: no-op
    assert [e[1] for e in journal_entries(j)] == [1, 2]
    j.add(b"new3", 3, 2)
    j.flush()
    j._destroy()
    again = FsyncJournal(path)
    assert journal_entries(again) == [(b"x", 1, 1), (b"xx", 2, 1), (b"new3", 3, 2)]
    again._destroy()


def test_journal_delete_entries_to_is_compaction(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    j = FsyncJournal(path)
    for idx in range(1, 8):
        j.add(bytes([idx]), idx, 3)
    j.deleteEntriesTo(4)  # unsynced entries are kept too
    assert [e[1] for e in journal_entries(j)] == [5, 6, 7]
    # Appends and truncation keep working on the rewritten file.
    j.add(b"\x08", 8, 3)
    j.deleteEntriesFrom(1)
    j.add(b"\x09", 6, 4)
    j.sync()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raft.journal"]
    # A crash right now (no close) keeps everything that was synced.
    crash = tmp_path / "crash"
    crash.mkdir()
    shutil.copy(path, crash / "raft.journal")
    for where in (crash / "raft.journal", path):
        if where == path:
            j._destroy()
        again = FsyncJournal(where)
        assert journal_entries(again) == [(b"\x05", 5, 3), (b"\x09", 6, 4)]
        again._destroy()


def test_journal_clear(tmp_path: Path) -> None:
    j = FsyncJournal(tmp_path / "raft.journal")
    j.add(b"a", 1, 1)
    j.clear()
    assert len(j) == 0
    j.add(b"b", 1, 2)
    j._destroy()
    assert journal_entries(FsyncJournal(tmp_path / "raft.journal")) == [(b"b", 1, 2)]


def test_journal_meta_term_and_vote_are_durable_immediately(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    j = FsyncJournal(path)
    assert (j.getCurrentTerm(), j.getVotedForNodeId(), j.getRaftCommitIndex()) == (0, None, 1)
    j.setCurrentTerm(7, "127.0.0.1:7202")
    # No close, no timer: a crash now must still find term and vote.
    other = FsyncJournal(path)
    assert other.getCurrentTerm() == 7
    assert other.getVotedForNodeId() == "127.0.0.1:7202"
    other._destroy()
    j._destroy()


def test_journal_never_restores_a_commit_index(tmp_path: Path) -> None:
    """Raft's commit index is volatile: a restarted node learns it again from a leader."""
    path = tmp_path / "raft.journal"
    j = FsyncJournal(path)
    j.add(b"a", 2, 1)
    j.setRaftCommitIndex(2)
    j.setCurrentTerm(1, None)
    j.onOneSecondTimer()
    j._destroy()
    again = FsyncJournal(path)
    assert (again.getCurrentTerm(), again.getRaftCommitIndex()) == (1, 1)
    again._destroy()


def test_journal_holds_only_unapplied_newest_and_first_commands_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applied commands are in the log state: the journal reads them back from its file."""
    path = tmp_path / "raft.journal"
    j = FsyncJournal(path)
    commands_ = [bytes([idx]) * 1000 for idx in range(1, 11)]
    for idx, command in enumerate(commands_, start=1):
        j.add(command, idx, 1)
    assert j.held_bytes == 10 * 1000 + 2 * 1000  # nothing applied yet (+ the first two)
    j.release(8)
    assert j.held_bytes == 2 * 1000 + 2 * 1000  # 9 and 10, and the first two
    j.release(10)
    assert j.held_bytes == 1000 + 2 * 1000  # the newest stays
    assert journal_entries(j) == [(c, i, 1) for i, c in enumerate(commands_, start=1)]
    j.deleteEntriesTo(5)  # compaction: the new first two are kept
    assert j.held_bytes == 3 * 1000 and [e[1] for e in journal_entries(j)] == [6, 7, 8, 9, 10]
    j.deleteEntriesFrom(3)  # the newest is now 8: read back and kept
    assert j.held_bytes == 3 * 1000 and j[-1] == (commands_[7], 8, 1)
    # Unapplied commands beyond HOT_LIMIT are read back when PySyncObj applies them.
    monkeypatch.setattr(journal_module, "HOT_LIMIT", 2500)
    for idx in range(9, 15):
        j.add(b"n" * 1000, idx, 2)
    assert j.held_bytes == 2 * 1000 + 2 * 1000
    assert [e[0] for e in j[3:]] == [b"n" * 1000] * 6
    j._destroy()
    again = FsyncJournal(path)  # a restart holds the first two and the newest
    assert again.held_bytes == 3 * 1000 and len(again) == 9
    again._destroy()


class JournalMachine(RuleBasedStateMachine):
    """FsyncJournal against a list, with reopen and simulated crashes; commands leave memory
    as they are applied (``release``) or exceed a small ``HOT_LIMIT``, and are read back."""

    def __init__(self) -> None:
        super().__init__()
        self.hot_limit = journal_module.HOT_LIMIT
        journal_module.HOT_LIMIT = 4000  # a few commands of up to 3000 bytes
        self.tmp = Path(tempfile.mkdtemp(prefix="journal-"))
        self.path = self.tmp / "raft.journal"
        self.journal = FsyncJournal(self.path, sync=False)
        self.model: list[tuple[bytes, int, int]] = []
        self.synced = 0  # model[:synced] is on stable storage
        self.next_idx = 1
        self.crashes = 0

    def teardown(self) -> None:
        journal_module.HOT_LIMIT = self.hot_limit
        self.journal._destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self.journal.release(data.draw(st.integers(min_value=0, max_value=self.next_idx)))

    @rule(data=st.data())
    def slice_and_term(self, data: st.DataObject) -> None:
        """Slices read as the list's, also sliced and indexed again (PySyncObj's uses)."""
        n = len(self.model)
        start, stop = sorted(
            data.draw(st.lists(st.integers(-n - 2, n + 2), min_size=2, max_size=2))
        )
        view, expected = self.journal[start:stop], self.model[start:stop]
        assert len(view) == len(expected) and bool(view) == bool(expected)
        assert [(bytes(c), i, t) for c, i, t in view] == expected
        inner = data.draw(st.integers(-len(expected) - 1, len(expected)))
        assert view[inner:] == expected[inner:]
        if -len(expected) <= inner < len(expected):
            assert view[inner] == expected[inner]
        idx = data.draw(st.integers(min_value=0, max_value=self.next_idx + 1))
        held = [term for _, i, term in self.model if i == idx]
        assert self.journal.term_of(idx) == (held[0] if held else None)

    @rule(command=st.binary(max_size=3000), term=st.integers(min_value=0, max_value=2**40))
    def add(self, command: bytes, term: int) -> None:
        self.journal.add(command, self.next_idx, term)
        self.model.append((command, self.next_idx, term))
        self.next_idx += 1

    @rule()
    def sync(self) -> None:
        self.journal.sync()
        self.synced = len(self.model)

    @rule(data=st.data())
    def delete_from(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(min_value=0, max_value=len(self.model) + 1))
        truncates = at < len(self.model)
        self.journal.deleteEntriesFrom(at)
        del self.model[at:]
        if truncates:
            # The file is cut exactly after the last kept record (record + idx/term headers).
            kept = sum(RECORD_HEADER.size + 16 + len(c) for c, _, _ in self.model)
            assert self.path.stat().st_size == kept
        self.synced = min(self.synced, len(self.model))
        self.next_idx = (self.model[-1][1] + 1) if self.model else 1

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete_to(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(min_value=0, max_value=len(self.model)))
        self.journal.deleteEntriesTo(at)
        del self.model[:at]
        self.synced = len(self.model)  # compaction rewrites and syncs everything kept

    @rule()
    def reopen(self) -> None:
        self.journal._destroy()
        self.journal = FsyncJournal(self.path, sync=False)
        self.synced = len(self.model)

    @rule()
    def crash(self) -> None:
        """Open a copy of the files as they are in the OS right now (kill -9)."""
        self.crashes += 1
        copy = self.tmp / f"crash{self.crashes}"
        copy.mkdir()
        shutil.copy(self.path, copy / "raft.journal")
        recovered = FsyncJournal(copy / "raft.journal", sync=False)
        entries = journal_entries(recovered)
        recovered._destroy()
        assert entries == self.model[: len(entries)]
        assert len(entries) >= self.synced

    @invariant()
    def same_entries(self) -> None:
        assert len(self.journal) == len(self.model)
        assert journal_entries(self.journal) == self.model


TestJournalMachine = JournalMachine.TestCase
TestJournalMachine.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------- embedded backend


def build(bus: str, *bodies: Any, key: tuple[str, int] | None = None) -> Append:
    request: dict[str, Any] = {
        "bus": bus,
        "entries": [{"type": "t", "body": cbor2.dumps(body)} for body in bodies],
    }
    if key is not None:
        request["key"] = list(key)
    return commands.append_command(request, "tester", 1_000, commands.Limits(), lambda _: True)


def image(state: LogState) -> bytes:
    return cbor2.dumps(state.to_snapshot())


def batches() -> list[list[Command]]:
    return [
        [build("a", 1, 2), build("b", "x", key=("c", 0))],
        [Claim("a", "d", 1_001)],
        [build("a", {"k": [1, 2]}, key=("c", 1)), build("a", 3, key=("c", 0))],
        [Trim("a", 1, 1_002), build("a", None)],
        [Barrier()],
    ]


async def fill(backend: EmbeddedBackend) -> list[list[Reply]]:
    replies = []
    for batch in batches():
        replies.append(await backend.replicate(batch))
    return replies


def copy_dir(src: Path, dst: Path) -> Path:
    """What a kill -9 would leave: the files as the OS has them now."""
    shutil.copytree(src, dst)
    return dst


async def test_embedded_restart_recovers_the_same_state(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "d")
    replies = await fill(backend)
    assert replies[2][1].to_wire()["duplicate"] is True  # the retried key was deduplicated
    expected = image(backend.state)
    # Crash (no close): the acknowledged batches are in the WAL.
    crashed = EmbeddedBackend(copy_dir(tmp_path / "d", tmp_path / "crash"))
    assert image(crashed.state) == expected
    assert crashed.replayed == len(batches())
    crashed.close()
    backend.close()
    again = EmbeddedBackend(tmp_path / "d")
    assert image(again.state) == expected
    # Continue after the restart: numbering and positions carry on.
    reply = await again.replicate([build("a", "more")])
    assert reply[0].to_wire()["first"] == again.state.tail("a")["tail"] - 1
    after = image(again.state)
    again.close()
    final = EmbeddedBackend(tmp_path / "d")
    assert image(final.state) == after
    final.close()


async def test_embedded_snapshots_bound_the_wal(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, snapshot_bytes=1)
    await fill(backend)
    assert (tmp_path / SNAPSHOT).exists()
    assert (tmp_path / WAL).stat().st_size == 0
    expected = image(backend.state)
    backend.close()
    again = EmbeddedBackend(tmp_path, snapshot_bytes=1)
    assert image(again.state) == expected
    assert again.replayed == 0
    await again.replicate([build("a", "after snapshot")])
    expected = image(again.state)
    again.close()
    assert image(EmbeddedBackend(tmp_path).state) == expected


async def test_embedded_ignores_a_torn_wal_tail(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path)
    await fill(backend)
    expected = image(backend.state)
    backend.close()
    full = frame_record(cbor2.dumps([99, replicated_batch([build("a", "never acknowledged")])]))
    with open(tmp_path / WAL, "ab") as handle:
        handle.write(full[: len(full) - 3])  # the crash hit mid-write
    again = EmbeddedBackend(tmp_path)
    assert image(again.state) == expected
    # New batches land after the good prefix and survive the next restart.
    await again.replicate([build("b", "new")])
    expected = image(again.state)
    again.close()
    final = EmbeddedBackend(tmp_path)
    assert image(final.state) == expected
    assert final.state.read("b", 0, 10, None, 10**6)["entries"][-1][4] == cbor2.dumps("new")
    final.close()


async def test_embedded_crash_between_snapshot_and_wal_reset_does_not_double_apply(
    tmp_path: Path,
) -> None:
    backend = EmbeddedBackend(tmp_path / "d")
    await fill(backend)
    expected = image(backend.state)
    stale_wal = (tmp_path / "d" / WAL).read_bytes()
    assert stale_wal
    backend.snapshot()
    backend.close()
    # The snapshot is in place but the WAL was never reset: every batch is in both.
    (tmp_path / "d" / WAL).write_bytes(stale_wal)
    again = EmbeddedBackend(tmp_path / "d")
    assert again.replayed == 0
    assert image(again.state) == expected
    # Batches written after such a recovery are numbered after the snapshot and replayed.
    await again.replicate([build("a", "later")])
    expected = image(again.state)
    again.close()
    final = EmbeddedBackend(tmp_path / "d")
    assert final.replayed == 1
    assert image(final.state) == expected
    final.close()


async def test_embedded_failed_wal_sync_is_unavailable_and_applies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = EmbeddedBackend(tmp_path)
    await backend.replicate([build("a", 1)])
    before = image(backend.state)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(Unavailable, match="write-ahead log"):
        await backend.replicate([build("a", 2)])
    assert image(backend.state) == before
    monkeypatch.undo()
    reply = await backend.replicate([build("a", 3)])
    assert reply[0].to_wire()["first"] == 1
    expected = image(backend.state)
    backend.close()
    again = EmbeddedBackend(tmp_path)
    assert image(again.state) == expected
    entries = again.state.read("a", 0, 10, None, 10**6)["entries"]
    assert [cbor2.loads(e[4]) for e in entries] == [1, 3]
    again.close()


async def test_embedded_os_durability_never_fdatasyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(fd: int) -> None:
        raise AssertionError("fdatasync with durability='os'")

    monkeypatch.setattr(os, "fdatasync", forbidden)
    backend = EmbeddedBackend(tmp_path, durability="os")
    await fill(backend)
    assert backend.describe()["mode"] == "embedded"
    expected = image(backend.state)
    backend.close()
    assert image(EmbeddedBackend(tmp_path, durability="os").state) == expected


async def test_embedded_listener_is_called_after_each_applied_batch(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path)
    seen: list[int] = []
    backend.set_listener(lambda: seen.append(backend.state.applied))
    await backend.replicate([build("a", 1), build("a", 2)])
    await backend.replicate([build("a", 3)])
    assert seen == [2, 3]
    backend.close()


def test_sync_trace_records_the_synced_size_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the chaos trace on, ``<file>.synced`` holds the size as of the last sync, so
    cutting the file back to it drops exactly the writes a power loss could drop."""
    monkeypatch.setenv(SYNC_TRACE_ENV, "1")
    path = tmp_path / "r.log"
    rf = RecordFile(path)
    rf.read_all()
    trace = synced_size_path(path)
    assert int(trace.read_text()) == 0
    rf.append(b"one")
    rf.sync()
    synced = rf.size
    assert int(trace.read_text()) == synced
    rf.append(b"two")
    rf._file.flush()  # in the page cache, not synced
    assert path.stat().st_size > synced and int(trace.read_text()) == synced
    rf.close()
    unsynced = RecordFile(tmp_path / "os.log", sync=False)  # durability "os": never synced
    unsynced.read_all()
    unsynced.append(b"x")
    unsynced.sync()
    assert not synced_size_path(tmp_path / "os.log").exists()
