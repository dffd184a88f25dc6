"""A durable Raft journal for PySyncObj (replaces its never-fsync'd mmap journal).

Implements PySyncObj's Journal interface on a checksummed record file. Writes are buffered and
made durable by ``sync()``, which the Raft adapter calls before this node counts or acknowledges
entries (group commit: one fdatasync covers everything added since the last one). Compaction
copies the remaining suffix into a new file and renames it into place, so a crash mid-way
never loses entries (PySyncObj's own journal clears and re-adds in place).

Commands live in the file, not in memory: once applied, every entry's body is in the log state,
and keeping the journal's copy too doubled what a node holds (issue 18). Memory keeps each
entry's index, term and file offset, and the commands PySyncObj reads often or soon: those not
yet applied (``release`` drops the others), the last entry and the first two (PySyncObj reads
them on every tick). Any other command is read back from the file when PySyncObj asks for it —
a follower that fell behind, a restart replaying its journal — and checked against its CRC.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import cbor2

from logact.server.storage import RecordFile, atomic_replace, atomic_write, fsync_dir

ENTRY_HEADER = struct.Struct("<QQ")  # idx, term
#: Commands not yet applied kept in memory at most (the newest always is): beyond it, the
#: oldest are read back from the file when applied (a leader without a quorum, a backlog).
HOT_LIMIT = 32 * 1024 * 1024
#: The first entries PySyncObj reads on every tick, whose commands stay in memory.
PINNED = 2

Entry = tuple[bytes, int, int]  # command, idx, term: what PySyncObj's journals hold


class FsyncJournal:
    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        self.path = Path(path)
        self.sync_enabled = sync
        self.meta_path = self.path.with_name(self.path.name + ".meta")
        self._file = RecordFile(self.path, sync=sync)
        self._idx = array("q")
        self._term = array("q")
        self._offset = array("q")  # of each entry's record in the file
        #: Commands of the last len(_recent) entries: the newest, and those not yet applied.
        self._recent: list[bytes] = []
        self._recent_bytes = 0
        #: Commands of the first min(PINNED, len) entries.
        self._pinned: list[bytes] = []
        last = b""
        for offset, payload in self._file.scan():
            idx, term = ENTRY_HEADER.unpack_from(payload)
            self._push(idx, term, offset)
            if len(self._pinned) < PINNED:
                self._pinned.append(payload[ENTRY_HEADER.size :])
            last = payload
        if self._idx:  # nothing is applied yet, but only the newest is kept: the rest is read
            self._recent = [last[ENTRY_HEADER.size :]]
            self._recent_bytes = len(self._recent[0])
        self._meta: dict[str, Any] = {}
        if self.meta_path.exists():
            stored = cbor2.loads(self.meta_path.read_bytes())
            # Only term and vote (older versions also stored a commit index: ignored).
            self._meta = {key: stored[key] for key in ("term", "vote") if key in stored}
        self.syncs = 0

    # -- PySyncObj Journal interface --------------------------------------------
    def add(self, command: bytes, idx: int, term: int) -> None:
        command = bytes(command)
        self._push(idx, term, self._file.append(ENTRY_HEADER.pack(idx, term), command))
        if len(self._pinned) < PINNED:
            self._pinned.append(command)
        self._recent.append(command)
        self._recent_bytes += len(command)
        if self._recent_bytes > HOT_LIMIT:
            self._drop_recent(lambda _idx: self._recent_bytes > HOT_LIMIT)

    def clear(self) -> None:
        self._truncate(0)
        self._file.truncate(0)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self):
            return
        self._file.truncate(self._offset[entryFrom])
        self._truncate(entryFrom)

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Compaction after a snapshot: atomically keep only entries[entryTo:]."""
        # PySyncObj renamed the snapshot into place just before calling us: make that durable
        # before the entries it replaces disappear from the journal.
        if self.sync_enabled:
            fsync_dir(self.path.parent)
        entryTo = min(entryTo, len(self))
        start = self._offset[entryTo] if entryTo < len(self) else self._file.size
        pinned = [self._command(entryTo + i) for i in range(min(PINNED, len(self) - entryTo))]
        atomic_replace(
            self.path, lambda out: self._file.copy_from(start, out), sync=self.sync_enabled
        )
        self._file.close()
        self._file = RecordFile(self.path, sync=self.sync_enabled)
        self._file.settle()
        gone = entryTo - (len(self) - len(self._recent))  # recent entries compacted away
        if gone > 0:
            self._recent_bytes -= sum(len(command) for command in self._recent[:gone])
            del self._recent[:gone]
        for column in (self._idx, self._term):
            del column[:entryTo]
        self._offset = array("q", (offset - start for offset in self._offset[entryTo:]))
        self._pinned = pinned

    @overload
    def __getitem__(self, item: int) -> Entry: ...

    @overload
    def __getitem__(self, item: slice) -> Sequence[Entry]: ...

    def __getitem__(self, item: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return Entries(self, start, max(start, stop))
        position = item + len(self) if item < 0 else item
        if not 0 <= position < len(self):
            raise IndexError("journal index out of range")
        return (self._command(position), self._idx[position], self._term[position])

    def __len__(self) -> int:
        return len(self._idx)

    def _destroy(self) -> None:
        self.sync()
        self._file.close()

    def flush(self) -> None:
        self.sync()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        """Raft's commit index is volatile: never persisted (see getRaftCommitIndex)."""

    def getRaftCommitIndex(self) -> int:
        """Always the start of the log.

        PySyncObj would apply everything up to a persisted commit index at start-up, before any
        leader has vouched for this node's journal; a restarted node instead applies its
        snapshot and then only what the current leader's messages prove committed.
        """
        return 1

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:
        # Raft: term and vote must be durable before any message reflecting them is sent.
        self._meta["term"] = term
        self._meta["vote"] = votedForNodeId
        self._write_meta()

    def getCurrentTerm(self) -> int:
        return self._meta.get("term", 0)

    def getVotedForNodeId(self) -> Any:
        return self._meta.get("vote")

    def onOneSecondTimer(self) -> None:
        """Nothing is written lazily."""

    # -- what the Raft adapter reads without the commands -------------------------
    def term_of(self, idx: int) -> int | None:
        """The term of the entry with Raft index ``idx``; None if the journal does not hold it."""
        if not self._idx:
            return None
        position = idx - self._idx[0]
        return self._term[position] if 0 <= position < len(self) else None

    def span(self) -> list[int]:
        """[first, last] Raft index held (IndexError if none): the arrays alone, so any thread
        may ask while the tick thread changes the journal."""
        return [self._idx[0], self._idx[-1]]

    @property
    def held_bytes(self) -> int:
        """Bytes of commands this journal holds in memory."""
        return self._recent_bytes + sum(len(command) for command in self._pinned)

    def release(self, applied: int) -> None:
        """Entries up to Raft index ``applied`` are applied: their commands may leave memory
        (the newest entry's stays)."""
        self._drop_recent(lambda idx: idx <= applied)

    # -- group commit ------------------------------------------------------------
    def sync(self) -> None:
        if self._file.dirty:
            self.syncs += 1
        self._file.sync()

    def _write_meta(self) -> None:
        atomic_write(self.meta_path, cbor2.dumps(self._meta), sync=self.sync_enabled)

    # -- entries -------------------------------------------------------------------
    def _push(self, idx: int, term: int, offset: int) -> None:
        self._idx.append(idx)
        self._term.append(term)
        self._offset.append(offset)

    def _command(self, position: int) -> bytes:
        recent = position - (len(self) - len(self._recent))
        if recent >= 0:
            return self._recent[recent]
        if position < len(self._pinned):
            return self._pinned[position]
        return self._file.read_at(self._offset[position])[ENTRY_HEADER.size :]

    def _drop_recent(self, drop: Callable[[int], bool]) -> None:
        """Forget the oldest recent commands while ``drop(their idx)`` holds, but the newest."""
        first = len(self) - len(self._recent)
        count = 0
        while count < len(self._recent) - 1 and drop(self._idx[first + count]):
            self._recent_bytes -= len(self._recent[count])
            count += 1
        del self._recent[:count]

    def _truncate(self, keep: int) -> None:
        """Keep the first ``keep`` entries in memory (the file is the caller's)."""
        gone = len(self) - keep
        for column in (self._idx, self._term, self._offset):
            del column[keep:]
        del self._pinned[keep:]
        cut = max(0, len(self._recent) - gone)
        self._recent_bytes -= sum(len(command) for command in self._recent[cut:])
        del self._recent[cut:]
        if not self._recent and keep:
            # The newest entry's command is always in memory.
            self._recent = [self._command(keep - 1)]
            self._recent_bytes = len(self._recent[0])


class Entries(Sequence[Entry]):
    """Entries [start, stop) of a journal, each read when used.

    PySyncObj slices the journal from an index to its end on every AppendEntries a follower
    receives, and reads one entry of the slice; a list would read every command. Use it at
    once: it reads the journal as it is then.
    """

    def __init__(self, journal: FsyncJournal, start: int, stop: int) -> None:
        self._journal = journal
        self._start = start
        self._stop = stop

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, item: int) -> Entry: ...

    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...

    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        if isinstance(item, slice):
            return [self._journal[self._start + i] for i in range(*item.indices(len(self)))]
        position = item + len(self) if item < 0 else item
        if not 0 <= position < len(self):
            raise IndexError("journal slice index out of range")
        return self._journal[self._start + position]

    def __iter__(self) -> Iterator[Entry]:
        for position in range(self._start, self._stop):
            yield self._journal[position]
