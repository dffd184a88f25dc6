"""Snapshots written beside Raft, not in its way.

PySyncObj writes a snapshot on its tick thread: encoding and fsyncing 100 MB of live state took
about 0.6 s, every node did it at about the same index, and the leader's silence made the
followers call elections (issue 13). Here the tick thread only takes the state's image (a
copy of its small parts and of 32 bytes per entry, the entries read lazily: ``LogState``'s
``to_snapshot(lazy=True)``); a worker thread encodes it piece by piece — each piece a short
call into cbor2, so the GIL passes between them — writes, fsyncs and renames it into place.
PySyncObj learns the outcome through its ``serializeChecker`` hook and compacts the journal
only once the file is durable.

The encoding is byte for byte what ``cbor2.dumps`` gives for the whole document (with its lazy
sequences as lists).
"""

from __future__ import annotations

import enum
import logging
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cbor2

from logact.server.storage import fsync_dir

log = logging.getLogger(__name__)
#: Items encoded per call into cbor2 (each call holds the GIL: at most 64 entries of 1 MiB).
CHUNK_ITEMS = 64


class Progress(enum.Enum):
    IDLE = "idle"
    WRITING = "writing"
    DONE = "done"
    FAILED = "failed"


def _head(major: int, count: int) -> bytes:
    """A CBOR header for a definite-length array (4) or map (5) of ``count`` items."""
    if count < 24:
        return bytes([major << 5 | count])
    for code, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if count < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | code]) + struct.pack(fmt, count)
    raise ValueError("count too large")


def _items(items: Sequence[Any]) -> Iterator[bytes]:
    """The encoded items of a sequence, without its header, a chunk at a time."""
    for start in range(0, len(items), CHUNK_ITEMS):
        chunk = list(items[start : start + CHUNK_ITEMS])
        yield cbor2.dumps(chunk)[len(_head(4, len(chunk))) :]


def _lazy(value: Any) -> bool:
    """A sequence other than a list or tuple (the state's ``Rows``): its items are made as
    they are read, so it is read a chunk at a time however short it is."""
    return isinstance(value, Sequence) and not isinstance(
        value, list | tuple | str | bytes | bytearray | memoryview
    )


def _value(value: Any) -> Iterator[bytes]:
    """``value`` encoded, lists of lists and maps of lists opened up so no call is long."""
    if isinstance(value, dict) and any(
        isinstance(v, list | dict) or _lazy(v) for v in value.values()
    ):
        yield _head(5, len(value))
        for key, item in value.items():
            yield cbor2.dumps(key)
            yield from _value(item)
    elif (isinstance(value, list | tuple) and len(value) > CHUNK_ITEMS) or _lazy(value):
        yield _head(4, len(value))
        yield from _items(value)
    elif isinstance(value, list | tuple) and any(
        isinstance(v, list | dict) or _lazy(v) for v in value
    ):
        yield _head(4, len(value))
        for item in value:
            yield from _value(item)
    else:
        yield cbor2.dumps(value)


def encode_pieces(document: dict[str, Any]) -> Iterator[bytes]:
    """``cbor2.dumps(document)``, as a sequence of short pieces."""
    yield from _value(document)


class SnapshotWriter:
    """One snapshot at a time, written by a worker thread; ``progress`` reports on it."""

    def __init__(self, durable: bool) -> None:
        self.durable = durable
        self._state = Progress.IDLE
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, path: str, document: dict[str, Any]) -> None:
        with self._lock:
            self._state = Progress.WRITING
        self._thread = threading.Thread(
            target=self._write, args=(path, document), name="snapshot-writer", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the snapshot being written, if any (tests, and shutting down)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def progress(self) -> Progress:
        """The state; a finished job's DONE or FAILED is reported once, then IDLE."""
        with self._lock:
            state = self._state
            if state in (Progress.DONE, Progress.FAILED):
                self._state = Progress.IDLE
            return state

    def _write(self, path: str, document: dict[str, Any]) -> None:
        target = Path(path)
        tmp = target.with_name(target.name + ".writing")
        try:
            with open(tmp, "wb") as handle:
                for piece in encode_pieces(document):
                    handle.write(piece)
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
            if self.durable:
                fsync_dir(target.parent)
            outcome = Progress.DONE
        except Exception:
            log.exception("writing a snapshot failed; the journal is kept whole")
            outcome = Progress.FAILED
        with self._lock:
            self._state = outcome
