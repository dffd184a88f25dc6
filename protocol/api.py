"""The one log API, shared by every implementation (in-memory, embedded, Raft cluster).

Implementations provide ``_call`` (one request/result exchange, with their own retry policy)
and ``_open_subscription``; everything users see — argument handling, idempotency keys,
result types — lives here once.
"""

from __future__ import annotations

import itertools
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Any

from logact.protocol.codec import BadBody, Entry, encode_body
from logact.protocol.errors import BadRequest


@dataclass(frozen=True, slots=True)
class ReadResult:
    entries: list[Entry]
    next: int  # where to continue reading
    tail: int  # next position to be written, as of this read
    trim: int  # first readable position


@dataclass(frozen=True, slots=True)
class Tail:
    tail: int
    trim: int


@dataclass(frozen=True, slots=True)
class BusInfo:
    bus: str
    tail: int
    trim: int
    bytes: int


def _encoded(index: int, body: Any) -> bytes:
    try:
        return encode_body(body)
    except BadBody as exc:
        raise BadRequest(f"entry {index}: {exc}") from None


def _append_request(
    bus: str,
    entries: Iterable[tuple[str, Any]],
    key: tuple[str, int],
    expect_tail: int | None,
    fence: tuple[str, int] | None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "op": "append",
        "bus": bus,
        "entries": [
            {"type": etype, "body": _encoded(index, body)}
            for index, (etype, body) in enumerate(entries)
        ],
        "key": list(key),
    }
    if expect_tail is not None:
        request["expect_tail"] = expect_tail
    if fence is not None:
        request["fence"] = list(fence)
    return request


class LogAPI(ABC):
    """append / read / check_tail / subscribe / trim / claim over one log."""

    def __init__(self, client_id: str | None = None) -> None:
        self.client_id = client_id or uuid.uuid4().hex
        self._seq = itertools.count()

    @abstractmethod
    async def _call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request; return its result or raise its typed LogError."""

    @abstractmethod
    def _open_subscription(
        self, bus: str, start: int, types: list[str] | None
    ) -> AsyncGenerator[Entry, None]: ...

    def next_key(self) -> tuple[str, int]:
        """A fresh idempotency key; reuse it to retry an append safely."""
        return (self.client_id, next(self._seq))

    async def append(
        self,
        bus: str,
        type: str,
        body: Any,
        *,
        expect_tail: int | None = None,
        fence: tuple[str, int] | None = None,
        key: tuple[str, int] | None = None,
        timeout: float | None = None,
    ) -> int:
        """Append one entry; returns its position once it is durable."""
        positions = await self.append_batch(
            bus, [(type, body)], expect_tail=expect_tail, fence=fence, key=key, timeout=timeout
        )
        return positions.start

    async def append_batch(
        self,
        bus: str,
        entries: Iterable[tuple[str, Any]],
        *,
        expect_tail: int | None = None,
        fence: tuple[str, int] | None = None,
        key: tuple[str, int] | None = None,
        timeout: float | None = None,
    ) -> range:
        """Append entries atomically at consecutive positions."""
        request = _append_request(bus, entries, key or self.next_key(), expect_tail, fence)
        result = await self._call(request, timeout)
        return range(result["first"], result["last"] + 1)

    async def read(
        self,
        bus: str,
        start: int = 0,
        limit: int = 100,
        types: Iterable[str] | None = None,
        *,
        stale: bool = False,
        timeout: float | None = None,
    ) -> ReadResult:
        request: dict[str, Any] = {"op": "read", "bus": bus, "start": start, "limit": limit}
        if types is not None:
            request["types"] = list(types)
        if stale:
            request["stale"] = True
        result = await self._call(request, timeout)
        return ReadResult(
            [Entry.from_wire(e) for e in result["entries"]],
            result["next"],
            result["tail"],
            result["trim"],
        )

    async def read_all(
        self,
        bus: str,
        start: int = 0,
        types: Iterable[str] | None = None,
        *,
        stale: bool = False,
    ) -> list[Entry]:
        """Every entry from ``start`` to the tail as of the first read."""
        out: list[Entry] = []
        result = await self.read(bus, start, 1000, types, stale=stale)
        end = result.tail
        while True:
            out.extend(e for e in result.entries if e.pos < end)
            if result.next >= end:
                return out
            result = await self.read(bus, result.next, 1000, types, stale=stale)

    async def check_tail(
        self, bus: str, *, stale: bool = False, timeout: float | None = None
    ) -> Tail:
        request: dict[str, Any] = {"op": "tail", "bus": bus}
        if stale:
            request["stale"] = True
        result = await self._call(request, timeout)
        return Tail(result["tail"], result["trim"])

    async def trim(self, bus: str, before: int, *, timeout: float | None = None) -> int:
        """Drop every entry below ``before``; returns the new trim point."""
        result = await self._call({"op": "trim", "bus": bus, "before": before}, timeout)
        return result["trim"]

    async def claim(self, bus: str, name: str, *, timeout: float | None = None) -> int:
        """A new fencing epoch for ``name`` on ``bus``; appends with older epochs are fenced."""
        result = await self._call({"op": "claim", "bus": bus, "name": name}, timeout)
        return result["epoch"]

    async def list_buses(self, *, stale: bool = False) -> list[BusInfo]:
        request: dict[str, Any] = {"op": "buses"}
        if stale:
            request["stale"] = True
        result = await self._call(request)
        return [BusInfo(b["bus"], b["tail"], b["trim"], b["bytes"]) for b in result["buses"]]

    async def status(self) -> dict[str, Any]:
        return await self._call({"op": "status"})

    def subscribe(
        self, bus: str, from_pos: int = 0, types: Iterable[str] | None = None
    ) -> AsyncGenerator[Entry, None]:
        """Entries from ``from_pos`` on, pushed as they commit; never ends by itself (close it:
        ``contextlib.aclosing``)."""
        return self._open_subscription(bus, from_pos, list(types) if types is not None else None)
