"""A durable Raft journal for PySyncObj (replaces its never-fsync'd mmap journal).

Implements PySyncObj's Journal interface on a checksummed record file. Writes are buffered and
made durable by ``sync()``, which the Raft adapter calls before this node counts or acknowledges
entries (group commit: one fdatasync covers everything added since the last one). Compaction
rewrites the remaining suffix into a new file and renames it into place, so a crash mid-way
never loses entries (PySyncObj's own journal clears and re-adds in place).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import cbor2

from logact.server.storage import RecordFile, atomic_write, frame_record, fsync_dir

ENTRY_HEADER = struct.Struct("<QQ")  # idx, term


class FsyncJournal:
    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        self.path = Path(path)
        self.sync_enabled = sync
        self.meta_path = self.path.with_name(self.path.name + ".meta")
        self._file = RecordFile(self.path, sync=sync)
        self._entries: list[tuple[bytes, int, int]] = []
        self._offsets: list[int] = []
        offset = 0
        for payload in self._file.read_all():
            idx, term = ENTRY_HEADER.unpack_from(payload)
            self._entries.append((payload[ENTRY_HEADER.size :], idx, term))
            self._offsets.append(offset)
            offset += 8 + len(payload)
        self._meta: dict[str, Any] = {}
        if self.meta_path.exists():
            stored = cbor2.loads(self.meta_path.read_bytes())
            # Only term and vote (older versions also stored a commit index: ignored).
            self._meta = {key: stored[key] for key in ("term", "vote") if key in stored}
        self.syncs = 0

    # -- PySyncObj Journal interface --------------------------------------------
    def add(self, command: bytes, idx: int, term: int) -> None:
        self._offsets.append(self._file.append(ENTRY_HEADER.pack(idx, term) + bytes(command)))
        self._entries.append((command, idx, term))

    def clear(self) -> None:
        self._entries.clear()
        self._offsets.clear()
        self._file.truncate(0)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self._entries):
            return
        self._file.truncate(self._offsets[entryFrom])
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Compaction after a snapshot: atomically keep only entries[entryTo:]."""
        # PySyncObj renamed the snapshot into place just before calling us: make that durable
        # before the entries it replaces disappear from the journal.
        if self.sync_enabled:
            fsync_dir(self.path.parent)
        keep = self._entries[entryTo:]
        self._file.close()
        data = bytearray()
        offsets = []
        for command, idx, term in keep:
            offsets.append(len(data))
            data += frame_record(ENTRY_HEADER.pack(idx, term) + bytes(command))
        atomic_write(self.path, bytes(data), sync=self.sync_enabled)
        self._file = RecordFile(self.path, sync=self.sync_enabled)
        self._file.read_all()
        self._entries = keep
        self._offsets = offsets

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

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

    # -- group commit ------------------------------------------------------------
    def sync(self) -> None:
        if self._file.dirty:
            self.syncs += 1
        self._file.sync()

    def _write_meta(self) -> None:
        atomic_write(self.meta_path, cbor2.dumps(self._meta), sync=self.sync_enabled)
