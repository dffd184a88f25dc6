"""Embedded single-node durable log: a write-ahead log plus snapshots, no network needed.

Each group-committed batch is written to ``wal.log`` and fdatasync'd before it is applied and
acknowledged. When the WAL grows past a threshold the state is written to ``snapshot.cbor``
(atomically, fsync'd) and the WAL restarts empty, so restart time depends on the live
(untrimmed) state, not on the history. Batches carry a sequence number so a crash between the
snapshot and the WAL reset never applies a batch twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import trio

from logact.protocol.errors import Unavailable
from logact.server.command_types import Command, Reply
from logact.server.replicated_form import replicated_batch
from logact.server.state import LogState
from logact.server.storage import RecordFile, atomic_write

SNAPSHOT = "snapshot.cbor"
WAL = "wal.log"
DEFAULT_SNAPSHOT_BYTES = 64 * 1024 * 1024


class EmbeddedBackend:
    max_inflight = 1  # WAL order must equal apply order

    def __init__(
        self,
        data_dir: str | Path,
        *,
        durability: str = "fsync",
        snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES,
        node_id: str = "embedded",
    ) -> None:
        self.node_id = node_id
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.durability = durability
        self.snapshot_bytes = snapshot_bytes
        self.lock = threading.Lock()
        self._listener: Callable[[], None] = lambda: None
        self.state, self._batch_no = self._load()
        self._wal = RecordFile(self.data_dir / WAL, sync=durability == "fsync")
        self.replayed = 0
        for payload in self._wal.read_all():
            batch_no, cmds = cbor2.loads(payload)
            if batch_no > self._batch_no:
                self.state.apply_replicated_batch(cmds)
                self._batch_no = batch_no
                self.replayed += 1

    def _load(self) -> tuple[LogState, int]:
        path = self.data_dir / SNAPSHOT
        if not path.exists():
            return LogState(), 0
        image = cbor2.loads(path.read_bytes())
        return LogState.from_snapshot(image["state"]), image["batch"]

    async def replicate(self, cmds: list[Command]) -> list[Reply]:
        replicated = replicated_batch(cmds)
        payload = cbor2.dumps([self._batch_no + 1, replicated])
        if self.durability == "fsync":
            await trio.to_thread.run_sync(self._write, payload)  # fdatasync off the trio thread
        else:
            self._write(payload)  # a page-cache write: cheaper inline than a thread hop
        self._batch_no += 1
        with self.lock:
            # As replayed after a restart: the state must not depend on whether it was.
            replies = self.state.apply_replicated_batch(replicated)
        self._listener()
        if self._wal.size >= self.snapshot_bytes:
            await trio.to_thread.run_sync(self.snapshot)
        return replies

    def _write(self, payload: bytes) -> None:
        offset = self._wal.size
        try:
            self._wal.append(payload)
            self._wal.sync()
        except OSError as exc:
            self._wal.truncate(offset)
            raise Unavailable(f"write-ahead log write failed: {exc}") from None

    def snapshot(self) -> None:
        """Write the whole state atomically, then start an empty WAL."""
        with self.lock:
            image = cbor2.dumps({"state": self.state.to_snapshot(), "batch": self._batch_no})
        atomic_write(self.data_dir / SNAPSHOT, image, sync=self.durability == "fsync")
        self._wal.truncate(0)
        self._wal.sync()

    def set_listener(self, listener: Callable[[], None]) -> None:
        self._listener = listener

    def describe(self) -> dict[str, Any]:
        # Shaped like the Raft backend's status so the same tools can show both.
        return {
            "mode": "embedded",
            "id": self.node_id,
            "role": "leader",
            "leader": self.node_id,
            "commit_index": self._batch_no,
            "last_applied": self._batch_no,
            "applied": self.state.applied,
            "wal_bytes": self._wal.size,
        }

    def close(self) -> None:
        self._wal.close()
