"""Durable file primitives: checksummed append-only records, atomic replace, fsync helpers.

Record format: ``<u32 length><u32 crc32(payload)><payload>``. A torn or corrupt tail (a crash
mid-write of an unacknowledged record) is detected by length/CRC and cut off on open.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

RECORD_HEADER = struct.Struct("<II")
#: Bytes copied per call when a file is rewritten from a byte range (journal compaction).
COPY_CHUNK = 1024 * 1024


class CorruptRecord(OSError):
    """A record read back from its file is not the one written there: the storage failed."""


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    atomic_replace(path, lambda handle: handle.write(data), sync=sync)


def atomic_replace(
    path: str | Path, write: Callable[[BinaryIO], object], *, sync: bool = True
) -> None:
    """Replace ``path`` with what ``write`` writes to a new file: a crash leaves either the old
    or the new file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def frame_record(payload: bytes) -> bytes:
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


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
        return [payload for _, payload in self.scan()]

    def scan(self) -> Iterator[tuple[int, bytes]]:
        """(offset, payload) of each intact record, read one at a time (the file may be far
        larger than what its reader keeps); once exhausted, a torn tail has been truncated
        away (it was never acknowledged) and the rest made durable. Consume it whole before
        appending."""
        size = self._file.seek(0, os.SEEK_END)
        self._file.seek(0)
        good = 0
        while good + RECORD_HEADER.size <= size:
            length, crc = RECORD_HEADER.unpack(self._file.read(RECORD_HEADER.size))
            if good + RECORD_HEADER.size + length > size:
                break  # never read a length that a torn header made up
            payload = self._file.read(length)
            if zlib.crc32(payload) != crc:
                break
            yield good, payload
            good += RECORD_HEADER.size + length
        if good != size:
            self._file.truncate(good)
        self.settle()

    def settle(self) -> None:
        """Make what the file holds durable before anything is built on it: what a crashed
        process left may still be only in the page cache."""
        self._dirty = True
        self.sync()
        self._file.seek(0, os.SEEK_END)

    def read_at(self, offset: int) -> bytes:
        """The payload of the record at ``offset`` (one ``append`` returned), read from the
        file; ``CorruptRecord`` if it is not intact there."""
        self._file.flush()  # it may still be in this object's write buffer
        fd = self._file.fileno()
        header = os.pread(fd, RECORD_HEADER.size, offset)
        if len(header) == RECORD_HEADER.size:
            length, crc = RECORD_HEADER.unpack(header)
            payload = os.pread(fd, length, offset + RECORD_HEADER.size)
            if len(payload) == length and zlib.crc32(payload) == crc:
                return payload
        raise CorruptRecord(f"{self.path}: the record at offset {offset} is damaged")

    def copy_from(self, offset: int, out: BinaryIO) -> None:
        """Write the file's bytes from ``offset`` on to ``out``, a piece at a time."""
        self._file.flush()
        self._file.seek(offset)
        shutil.copyfileobj(self._file, out, COPY_CHUNK)
        self._file.seek(0, os.SEEK_END)

    def append(self, *parts: bytes) -> int:
        """Buffer one record, the payload given in parts (not joined: no copy of a large one);
        returns its start offset. Durable only after ``sync``."""
        offset = self._file.tell()
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        self._file.write(RECORD_HEADER.pack(sum(len(part) for part in parts), crc))
        for part in parts:
            self._file.write(part)
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
