"""The entries of one bus, held compactly (issue 18).

Held as a list of ``(pos, ts, type, author, body, size)`` tuples, an entry cost about 330 bytes
besides its body — the tuple, three ints, a str for its type and one for its author, the bytes
object's header — so a log of 100-byte entries took four times its size in memory. Here an
entry costs 32 bytes: four int64 in one array (where its body ends in the bus's byte stream,
its timestamp, its type and author as indexes into the bus's table of names, its size), and the
bodies are joined into immutable chunks of about ``CHUNK_BYTES``. The newest bodies wait, as
they arrived, until they fill a chunk. Trimming drops whole chunks, and copies the live part of
the first one once more than half of it is trimmed, so trimmed bodies never hold more memory
than live ones.

Entries are read back as the tuples they were (``Entry``). Pure: no I/O, nothing shared with
another thread but through ``copy``, whose result the next appends and trims leave unchanged
(chunks are immutable; the rest is copied).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import overload

#: Bodies are joined into chunks of about this many bytes (a larger body is a chunk alone).
CHUNK_BYTES = 64 * 1024
#: int64 per entry: body end, timestamp, type and author (names), size.
STRIDE = 4
_END, _TS, _NAMES, _SIZE = range(STRIDE)

#: An entry as read: (pos, ts, type, author, body, size).
Entry = tuple[int, int, str, str, bytes, int]


class BusEntries:
    """The untrimmed entries of one bus, in order; entry 0 is the oldest held."""

    __slots__ = (
        "_base",
        "_chunks",
        "_end",
        "_first_pending",
        "_ids",
        "_names",
        "_pending",
        "_pending_bytes",
        "_rec",
        "_starts",
    )

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._rec = array("q")  # STRIDE int64 per entry
        self._names: list[str] = []  # types and authors, by id
        self._ids: dict[str, int] = {}
        self._chunks: list[bytes] = []  # joined bodies, oldest first
        self._starts = array("q")  # where each chunk starts in the byte stream
        self._pending: list[bytes] = []  # the newest bodies, not yet joined into a chunk
        self._pending_bytes = 0
        self._first_pending = 0  # the entry whose body is _pending[0]
        self._base = 0  # where the first entry's body starts in the byte stream
        self._end = 0  # where the last entry's body ends

    def __len__(self) -> int:
        return len(self._rec) // STRIDE

    def append(self, ts: int, etype: str, author: str, body: bytes, size: int) -> None:
        if not self._pending:
            self._first_pending = len(self)
        self._end += len(body)
        self._rec.extend((self._end, ts, self._id(etype) << 32 | self._id(author), size))
        self._pending.append(body)
        self._pending_bytes += len(body)
        if self._pending_bytes >= CHUNK_BYTES:
            self._seal()

    def size(self, index: int) -> int:
        return self._rec[index * STRIDE + _SIZE]

    def type(self, index: int) -> str:
        return self._names[self._rec[index * STRIDE + _NAMES] >> 32]

    def author(self, index: int) -> str:
        return self._names[self._rec[index * STRIDE + _NAMES] & 0xFFFFFFFF]

    def entry(self, index: int, pos: int) -> Entry:
        """Entry ``index`` (0 is the oldest held), which is at position ``pos`` of its bus."""
        rec = self._rec
        at = index * STRIDE
        names = rec[at + _NAMES]
        return (
            pos,
            rec[at + _TS],
            self._names[names >> 32],
            self._names[names & 0xFFFFFFFF],
            self._body(index),
            rec[at + _SIZE],
        )

    def trim(self, count: int) -> None:
        """Drop the ``count`` oldest entries."""
        if count >= len(self):
            self._clear()  # empty: the names go too
            return
        if count <= 0:
            return
        self._base = self._rec[(count - 1) * STRIDE + _END]
        del self._rec[: count * STRIDE]
        if count > self._first_pending:  # some pending bodies go
            gone = self._pending[: count - self._first_pending]
            self._pending_bytes -= sum(len(body) for body in gone)
            del self._pending[: len(gone)]
            self._first_pending = 0
        else:
            self._first_pending -= count
        # Chunks before the last one starting at or before the first body are all trimmed.
        dead = bisect_right(self._starts, self._base) - 1
        if dead > 0:
            del self._chunks[:dead]
            del self._starts[:dead]
        if self._chunks and (cut := self._base - self._starts[0]) > len(self._chunks[0]) // 2:
            self._chunks[0] = self._chunks[0][cut:]
            self._starts[0] = self._base

    def copy(self) -> BusEntries:
        """A copy that later appends and trims of this one leave as it is (chunks are shared:
        they never change)."""
        other = BusEntries.__new__(BusEntries)
        other._rec = array("q", self._rec)
        other._names = list(self._names)
        other._ids = dict(self._ids)
        other._chunks = list(self._chunks)
        other._starts = array("q", self._starts)
        other._pending = list(self._pending)
        other._pending_bytes = self._pending_bytes
        other._first_pending = self._first_pending
        other._base = self._base
        other._end = self._end
        return other

    def rows(self, first_pos: int) -> Rows:
        """The entries as a sequence of tuples, entry 0 at position ``first_pos``."""
        return Rows(self, first_pos)

    # -- internals ---------------------------------------------------------------
    def _id(self, name: str) -> int:
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self._names)
            self._names.append(name)
        return found

    def _seal(self) -> None:
        """Join the pending bodies into a chunk (one body alone is kept as it is)."""
        self._starts.append(self._end - self._pending_bytes)
        self._chunks.append(b"".join(self._pending))
        self._pending = []
        self._pending_bytes = 0

    def _body(self, index: int) -> bytes:
        if self._pending and index >= self._first_pending:
            return self._pending[index - self._first_pending]
        rec = self._rec
        start = rec[(index - 1) * STRIDE + _END] if index else self._base
        end = rec[index * STRIDE + _END]
        chunk = bisect_right(self._starts, start) - 1
        offset = start - self._starts[chunk]
        return self._chunks[chunk][offset : offset + end - start]


class Rows(Sequence[Entry]):
    """The entries of a ``BusEntries`` as tuples, each made when read."""

    def __init__(self, entries: BusEntries, first_pos: int) -> None:
        self._entries = entries
        self._first_pos = first_pos

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, item: int) -> Entry: ...

    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...

    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        if isinstance(item, slice):
            return [self[index] for index in range(*item.indices(len(self)))]
        index = item + len(self) if item < 0 else item
        if not 0 <= index < len(self):
            raise IndexError("entry index out of range")
        return self._entries.entry(index, self._first_pos + index)

    def __iter__(self) -> Iterator[Entry]:
        for index in range(len(self)):
            yield self._entries.entry(index, self._first_pos + index)
