"""The pure log state machine.

No sockets, threads, clocks or randomness: every input (including timestamps) arrives inside the
command, so the same command sequence yields the same state on every replica, in the embedded
store and under hypothesis. Commands and replies are typed (``command_types``); a replicated
command (``apply_replicated``, from Raft, its journal or the WAL) is parsed first. Nothing
raises, whatever the command: Raft retries a raising entry forever, so one bad command would
stop the cluster for good.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from logact.protocol.errors import ErrorCode
from logact.server.bus_entries import BusEntries, Entry, Rows
from logact.server.command_types import (
    Append,
    Appended,
    Barrier,
    Claim,
    Claimed,
    Command,
    Done,
    Failed,
    Quota,
    Reply,
    Trim,
    TrimmedTo,
)
from logact.server.replicated_form import Malformed, parse

log = logging.getLogger(__name__)
#: Exception types already logged by ``LogState.apply`` (each is logged once per process).
_LOGGED: set[str] = set()

#: 2: entry bodies are stored encoded (bytes), as they travel.
SNAPSHOT_VERSION = 2

#: An entry as read and as snapshots hold it: (pos, ts, type, author, body, size).
StoredEntry = Entry

#: Default bounds of the idempotency (dedup) state; see docs/protocol.md "Idempotent appends".
DEDUP_WINDOW = 1024  # remembered sequence numbers per client
DEDUP_TTL_MS = 3_600_000  # a client idle this long (by command timestamps) is forgotten
DEDUP_MAX_CLIENTS = 100_000  # least recently used clients are forgotten beyond this
#: A filtered read scans at most this many entries before returning a continuation.
MAX_SCAN = 10_000


@dataclass(slots=True)
class StoredBus:
    held: BusEntries = field(default_factory=BusEntries)
    trim: int = 0  # position of held entry 0; everything below is trimmed
    last_ts: int = 0
    bytes: int = 0
    epochs: dict[str, int] = field(default_factory=dict)

    @property
    def tail(self) -> int:
        return self.trim + len(self.held)

    @property
    def entries(self) -> Rows:
        """The held entries as ``StoredEntry`` tuples, each made when read."""
        return self.held.rows(self.trim)


@dataclass(slots=True)
class ClientRecord:
    last_ts: int
    floor: int = 0  # sequence numbers below this are forgotten
    #: Replies by sequence number, in their wire form (``Appended.to_wire``): as snapshots hold
    #: them, so taking a snapshot's image converts nothing on Raft's tick thread.
    results: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)


def ok(**fields: Any) -> dict[str, Any]:
    """A query's reply (``read``, ``tail``); commands reply with ``command_types``."""
    return {"ok": True, **fields}


def fail(code: ErrorCode, message: str, **details: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False, "code": code.value, "message": message}
    if details:
        reply["details"] = details
    return reply


class LogState:
    """All buses of one log plus the replicated dedup and fencing state."""

    def __init__(
        self,
        dedup_window: int = DEDUP_WINDOW,
        dedup_ttl_ms: int = DEDUP_TTL_MS,
        dedup_max_clients: int = DEDUP_MAX_CLIENTS,
    ) -> None:
        self.buses: dict[str, StoredBus] = {}
        #: Live bytes of entry bodies, by author and in all: derived from the buses.
        self.author_bytes: dict[str, int] = {}
        self.live_bytes = 0
        self.clients: OrderedDict[str, ClientRecord] = OrderedDict()
        self.applied = 0  # number of commands applied; a cheap change counter for readers
        self.dedup_window = dedup_window
        self.dedup_ttl_ms = dedup_ttl_ms
        self.dedup_max_clients = dedup_max_clients

    # ------------------------------------------------------------------ commands
    def apply(self, cmd: Command) -> Reply:
        """The reply to ``cmd``; the same on every replica, and never an exception."""
        self.applied += 1
        try:
            return self._apply(cmd)
        except Exception as exc:  # a bug: answer alike everywhere instead of wedging Raft
            name = type(exc).__name__
            if name not in _LOGGED:
                _LOGGED.add(name)
                log.error("a command could not be applied (%s); answered with an error", name)
            return Failed(ErrorCode.BAD_REQUEST, f"the command could not be applied ({name})")

    def _apply(self, cmd: Command) -> Reply:
        match cmd:
            case Append():
                return self._append(cmd)
            case Trim():
                return self._trim(cmd)
            case Claim():
                return self._claim(cmd)
            case Barrier():
                return Done()
        assert_never(cmd)

    def apply_batch(self, cmds: Sequence[Command]) -> list[Reply]:
        return [self.apply(cmd) for cmd in cmds]

    def apply_replicated(self, raw: Any) -> Reply:
        """The reply to a command in its replicated form, which may have been written by an
        older version: a malformed one counts as applied, changes nothing and gets the same
        error on every replica."""
        try:
            cmd = parse(raw)
        except Malformed as exc:
            self.applied += 1
            return Failed(ErrorCode.BAD_REQUEST, f"malformed command: {exc}")
        return self.apply(cmd)

    def apply_replicated_batch(self, raw: Any) -> list[Reply]:
        if not isinstance(raw, list):
            return [Failed(ErrorCode.BAD_REQUEST, "malformed command: a batch must be a list")]
        return [self.apply_replicated(cmd) for cmd in raw]

    def _append(self, cmd: Append) -> Reply:
        ts = cmd.ts
        self._expire_clients(ts)
        key = None
        record = None
        if cmd.key is not None:
            # Keys are scoped by principal: one principal can never replay another's results.
            key = (f"{cmd.author}/{cmd.key[0]}", cmd.key[1])
            client_id, seq = key
            record = self.clients.get(client_id)
            if record is not None:
                self.clients.move_to_end(client_id)
                record.last_ts = max(record.last_ts, ts)
                if seq in record.results:
                    return Appended.from_wire(record.results[seq])._replace(duplicate=True)
                if seq < record.floor:
                    return Failed(
                        ErrorCode.CONDITION_FAILED,
                        f"idempotency key ({client_id}, {seq}) is older than the dedup window",
                        {"reason": "key_expired"},
                    )
        bus_id = cmd.bus
        bus = self.buses.get(bus_id)
        tail = bus.tail if bus is not None else 0
        fence = cmd.fence
        if fence is not None:
            name, epoch = fence
            current = bus.epochs.get(name, 0) if bus is not None else 0
            if epoch != current:
                return Failed(
                    ErrorCode.FENCED,
                    f"epoch {epoch} for {name!r} on {bus_id!r} is not the current epoch {current}",
                    {"current_epoch": current},
                )
        for name in cmd.guards:
            claimed = bus.epochs.get(name) if bus is not None else None
            if claimed is not None and (fence is None or fence[0] != name):
                return Failed(
                    ErrorCode.FENCED,
                    f"{name!r} is claimed on {bus_id!r} (epoch {claimed}): appending "
                    f"what it guards needs its fence",
                    {"current_epoch": claimed},
                )
        expect = cmd.expect_tail
        if expect is not None and expect != tail:
            return Failed(
                ErrorCode.CONDITION_FAILED,
                f"expected tail {expect} but the tail of {bus_id!r} is {tail}",
                {"tail": tail},
            )
        author = cmd.author
        added = cmd.size
        over = self._over_quota(cmd.quota, bus, author, added)
        if over is not None:
            return Failed(ErrorCode.QUOTA_EXCEEDED, over)
        if bus is None:
            bus = self.buses[bus_id] = StoredBus()
        entry_ts = max(ts, bus.last_ts)  # per-bus timestamps never go backwards
        bus.last_ts = entry_ts
        first = tail
        for entry in cmd.entries:
            bus.held.append(entry_ts, entry.type, author, entry.body, entry.size)
        bus.bytes += added
        self.author_bytes[author] = self.author_bytes.get(author, 0) + added
        self.live_bytes += added
        reply = Appended(first=first, last=bus.tail - 1, ts=entry_ts)
        if key is not None:
            self._remember(key, ts, reply.to_wire())
        return reply

    def _over_quota(
        self, quota: Quota | None, bus: StoredBus | None, author: str, added: int
    ) -> str | None:
        """Why an append of ``added`` bytes would exceed the command's quotas, or None."""
        if quota is None:
            return None
        bus_cap, author_cap, log_cap = quota.bus, quota.author, quota.log
        held = bus.bytes if bus is not None else 0
        if held + added > bus_cap:
            return f"the bus holds {held} of its {bus_cap} live bytes: trim it first"
        mine = self.author_bytes.get(author, 0)
        if mine + added > author_cap:
            return f"{author!r} holds {mine} of its {author_cap} live bytes: trim first"
        if self.live_bytes + added > log_cap:
            return f"the log holds {self.live_bytes} of its {log_cap} live bytes: trim first"
        return None

    def _release(self, author: str, size: int) -> None:
        left = self.author_bytes.get(author, 0) - size
        if left > 0:
            self.author_bytes[author] = left
        else:
            self.author_bytes.pop(author, None)
        self.live_bytes -= size

    def _remember(self, key: tuple[str, int], ts: int, reply: dict[str, Any]) -> None:
        client_id, seq = key
        record = self.clients.get(client_id)
        if record is None:
            record = self.clients[client_id] = ClientRecord(last_ts=ts)
            while len(self.clients) > self.dedup_max_clients:
                self.clients.popitem(last=False)
        record.results[seq] = reply
        while len(record.results) > self.dedup_window:
            forgotten, _ = record.results.popitem(last=False)
            record.floor = max(record.floor, forgotten + 1)

    def _expire_clients(self, now: int) -> None:
        horizon = now - self.dedup_ttl_ms
        while self.clients:
            oldest_id, oldest = next(iter(self.clients.items()))
            if oldest.last_ts >= horizon:
                break
            del self.clients[oldest_id]

    def _trim(self, cmd: Trim) -> Reply:
        bus = self.buses.get(cmd.bus)
        if bus is None:
            return Failed(ErrorCode.UNKNOWN_BUS, f"no bus {cmd.bus!r}")
        before = cmd.before
        if before > bus.tail:
            return Failed(
                ErrorCode.BAD_REQUEST,
                f"cannot trim {cmd.bus!r} before {before}: its tail is {bus.tail}",
                {"tail": bus.tail},
            )
        if before > bus.trim:
            drop = before - bus.trim
            held = bus.held
            for index in range(drop):
                size = held.size(index)
                self._release(held.author(index), size)
                bus.bytes -= size
            held.trim(drop)
            bus.trim = before
        return TrimmedTo(trim=bus.trim, tail=bus.tail)

    def _claim(self, cmd: Claim) -> Reply:
        bus = self.buses.get(cmd.bus)
        if bus is None:
            bus = self.buses[cmd.bus] = StoredBus()
        epoch = bus.epochs.get(cmd.name, 0) + 1
        bus.epochs[cmd.name] = epoch
        return Claimed(epoch=epoch)

    # ------------------------------------------------------------------ queries
    def read(
        self, bus_id: str, start: int, limit: int, types: frozenset[str] | None, max_bytes: int
    ) -> dict[str, Any]:
        """Entries from ``start`` on; ``next`` is where the caller continues."""
        bus = self.buses.get(bus_id)
        if bus is None:
            return fail(ErrorCode.UNKNOWN_BUS, f"no bus {bus_id!r}")
        if start < bus.trim:
            return fail(
                ErrorCode.TRIMMED,
                f"position {start} of {bus_id!r} is trimmed; the log starts at {bus.trim}",
                trim=bus.trim,
            )
        out: list[StoredEntry] = []
        budget = max_bytes
        held = bus.held
        index = start - bus.trim
        stop = min(len(held), index + MAX_SCAN)
        while index < stop and len(out) < limit:
            if types is None or held.type(index) in types:
                size = held.size(index)
                if out and size > budget:
                    break
                out.append(held.entry(index, bus.trim + index))
                budget -= size
            index += 1
        return ok(entries=out, next=bus.trim + index, tail=bus.tail, trim=bus.trim)

    def tail(self, bus_id: str) -> dict[str, Any]:
        bus = self.buses.get(bus_id)
        if bus is None:
            return ok(tail=0, trim=0, exists=False)
        return ok(tail=bus.tail, trim=bus.trim, exists=True)

    def epoch(self, bus_id: str, name: str) -> int:
        bus = self.buses.get(bus_id)
        return bus.epochs.get(name, 0) if bus is not None else 0

    def list_buses(self) -> list[dict[str, Any]]:
        return [
            {"bus": bus_id, "tail": bus.tail, "trim": bus.trim, "bytes": bus.bytes}
            for bus_id, bus in sorted(self.buses.items())
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "buses": len(self.buses),
            "entries": sum(len(bus.held) for bus in self.buses.values()),
            "bytes": self.live_bytes,
            "dedup_clients": len(self.clients),
            "applied": self.applied,
        }

    # ------------------------------------------------------------------ snapshots
    def to_snapshot(self, *, lazy: bool = False) -> dict[str, Any]:
        """A plain-data image (CBOR-encodable) of the whole state.

        The image stays as it was even if commands are applied before it is encoded. With
        ``lazy``, each bus's entries are a ``Rows`` sequence over a copy of the bus (its
        chunks of bodies are shared: they never change), made into tuples only as
        ``snapshot_writer.encode_pieces`` reads them: taking the image costs Raft's tick
        thread a copy of 32 bytes per entry, not an object per entry.
        """
        return {
            "v": SNAPSHOT_VERSION,
            "applied": self.applied,
            "buses": {
                bus_id: [
                    bus.trim,
                    bus.last_ts,
                    bus.bytes,
                    dict(bus.epochs),
                    bus.held.copy().rows(bus.trim) if lazy else list(bus.entries),
                ]
                for bus_id, bus in self.buses.items()
            },
            "clients": [
                [cid, rec.last_ts, rec.floor, list(rec.results.items())]
                for cid, rec in self.clients.items()
            ],
            "dedup": [self.dedup_window, self.dedup_ttl_ms, self.dedup_max_clients],
        }

    @classmethod
    def from_snapshot(cls, image: dict[str, Any]) -> LogState:
        if image.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {image.get('v')!r}")
        state = cls(*image["dedup"])
        state.applied = image["applied"]
        for bus_id, (trim, last_ts, size, epochs, entries) in image["buses"].items():
            held = BusEntries()
            for _pos, ts, etype, author, body, entry_size in entries:
                held.append(ts, etype, author, body, entry_size)
                state.author_bytes[author] = state.author_bytes.get(author, 0) + entry_size
                state.live_bytes += entry_size
            state.buses[bus_id] = StoredBus(
                held=held, trim=trim, last_ts=last_ts, bytes=size, epochs=dict(epochs)
            )
        for cid, last_ts, floor, results in image["clients"]:
            state.clients[cid] = ClientRecord(
                last_ts=last_ts, floor=floor, results=OrderedDict((s, r) for s, r in results)
            )
        return state
