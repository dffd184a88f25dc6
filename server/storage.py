"""Durable file primitives: checksummed append-only records, atomic replace, fsync helpers.

Record format: ``<u32 length><u32 crc32(payload)><payload>``. A torn or corrupt tail (a crash
mid-write of an unacknowledged record) is detected by length/CRC and cut off on open.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

RECORD_HEADER = struct.Struct("<II")


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def frame_record(payload: bytes) -> bytes:
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (end offset, payload) for each intact record; stop at the first torn one."""
    offset = 0
    while offset + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, offset)
        start = offset + RECORD_HEADER.size
        end = start + length
        if end > len(data):
            return
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            return
        offset = end
        yield end, payload


#: When set in a node's environment, each record file notes its size after every completed
#: sync in ``<file>.synced`` (no fsync of its own: it only has to survive kill -9). The chaos
#: suite's lose-unsynced nemesis cuts a killed node's files back to those sizes, as a power
#: loss would, to check that nothing acknowledged depended on an unsynced write.
SYNC_TRACE_ENV = "LOGACT_SYNC_TRACE"


def synced_size_path(path: Path) -> Path:
    return path.with_name(path.name + ".synced")


class RecordFile:
    """An append-only file of records with explicit, batched fsync."""

    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        self.path = Path(path)
        self.sync_enabled = sync
        # Only a real fdatasync counts as synced: with sync off the trace never advances.
        self._trace_fd: int | None = None
        if os.environ.get(SYNC_TRACE_ENV) and sync:
            self._trace_fd = os.open(synced_size_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        existed = self.path.exists()
        self._file = open(self.path, "a+b")  # noqa: SIM115 - lives as long as the object
        if not existed and sync:
            fsync_dir(self.path.parent)
        self._dirty = False

    def read_all(self) -> list[bytes]:
        """All intact records; a torn tail is truncated away (it was never acknowledged)."""
        self._file.seek(0)
        data = self._file.read()
        payloads: list[bytes] = []
        good = 0
        for end, payload in scan_records(data):
            payloads.append(payload)
            good = end
        if good != len(data):
            self._file.truncate(good)
        # What a crashed process left may still be only in the page cache: make it durable
        # before anything is built on it.
        self._dirty = True
        self.sync()
        self._file.seek(0, os.SEEK_END)
        return payloads

    def append(self, payload: bytes) -> int:
        """Buffer one record; returns its start offset. Durable only after ``sync``."""
        offset = self._file.tell()
        self._file.write(frame_record(payload))
        self._dirty = True
        return offset

    def truncate(self, offset: int) -> None:
        self._file.truncate(offset)
        self._file.seek(offset)
        self._dirty = True

    def sync(self) -> None:
        if not self._dirty:
            return
        self._file.flush()
        if self.sync_enabled:
            os.fdatasync(self._file.fileno())
        self._dirty = False
        if self._trace_fd is not None:
            # One fixed-width write in place: a kill can never leave it empty or half-new.
            os.pwrite(self._trace_fd, b"%020d" % self._file.tell(), 0)

    @property
    def dirty(self) -> bool:
        return self._dirty

    @property
    def size(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self.sync()
        self._file.close()
        if self._trace_fd is not None:
            os.close(self._trace_fd)
            self._trace_fd = None
