"""The commands the log state machine applies and its replies: typed, immutable values.

``commands`` builds commands from validated requests and ``LogState`` applies them. Between the
two they are replicated — through Raft and its journal, the embedded WAL, snapshots — in their
replicated form (``replicated_form``): plain maps and tuples, as older versions wrote them. A
reply's ``to_wire`` is the map a client's result (and the dedup table) is made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from logact.protocol.errors import ErrorCode


class NewEntry(NamedTuple):
    """An entry as an append carries it: its type, encoded body and the body's size.

    A named tuple, not a dataclass: one append carries up to a thousand, and a tuple is
    several times cheaper to build when a replica parses them.
    """

    type: str
    body: bytes
    size: int


class Quota(NamedTuple):
    """Live bytes an append may bring its bus, its author and the whole log to; carried in the
    command so that every replica decides with the same numbers."""

    bus: int
    author: int
    log: int


class Append(NamedTuple):
    """A named tuple, like ``NewEntry``: every replica builds one per append it parses, and a
    frozen dataclass took 2.5 times as long to build (issue 18)."""

    bus: str
    entries: tuple[NewEntry, ...]
    author: str
    ts: int
    quota: Quota | None = None
    #: Fencing names the appended types need: once claimed, appending them takes the fence.
    guards: tuple[str, ...] = ()
    #: (client id, sequence number): a retry gets the first attempt's reply.
    key: tuple[str, int] | None = None
    expect_tail: int | None = None
    #: (fencing name, epoch): the append applies only while that epoch is the current one.
    fence: tuple[str, int] | None = None

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)


@dataclass(frozen=True, slots=True)
class Trim:
    bus: str
    before: int
    ts: int | None = None  # carried, never used: older commands may lack it


@dataclass(frozen=True, slots=True)
class Claim:
    bus: str
    name: str
    ts: int | None = None  # carried, never used: older commands may lack it


@dataclass(frozen=True, slots=True)
class Barrier:
    """Changes nothing: a linearizable read waits until one has been applied."""


Command = Append | Trim | Claim | Barrier


class Appended(NamedTuple):
    """A named tuple, as ``Append``: every replica builds one per append it applies."""

    first: int
    last: int
    ts: int
    duplicate: bool = False  # a retried idempotency key: this is the first attempt's reply

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ok": True, "first": self.first, "last": self.last, "ts": self.ts}
        if self.duplicate:
            wire["duplicate"] = True
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Appended:
        return cls(wire["first"], wire["last"], wire["ts"], bool(wire.get("duplicate", False)))


@dataclass(frozen=True, slots=True)
class TrimmedTo:
    trim: int
    tail: int

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "trim": self.trim, "tail": self.tail}


@dataclass(frozen=True, slots=True)
class Claimed:
    epoch: int

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "epoch": self.epoch}


@dataclass(frozen=True, slots=True)
class Done:
    """The reply to a barrier."""

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True}


@dataclass(frozen=True, slots=True)
class Failed:
    """A command refused: the same typed error on every replica, and nothing changed."""

    code: ErrorCode
    message: str
    details: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ok": False, "code": self.code.value, "message": self.message}
        if self.details:
            wire["details"] = dict(self.details)
        return wire


Reply = Appended | TrimmedTo | Claimed | Done | Failed
