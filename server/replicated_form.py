"""Commands in their replicated form: what Raft, its journal and the embedded WAL carry.

A command travels as a map of plain values (entries, keys and fences as tuples), exactly as
older versions wrote it, so journals, WALs and snapshots stay readable across versions; the
server core sees only the typed commands of ``command_types``. ``to_replicated`` writes that
form; ``parse`` reads it back, and is the one place that checks it: the replicated apply must
be total for anything that can reach the journal — including entries written by older versions
(one of them accepted a 5,000-digit fence epoch, whose apply raised on every node, forever). A
malformed command raises ``Malformed``, which ``LogState`` answers with the same typed error on
every replica, changing nothing. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeGuard, assert_never

from logact.server.command_types import (
    Append,
    Barrier,
    Claim,
    Command,
    NewEntry,
    Quota,
    Trim,
)

#: Every integer in a command lies in [0, INT_LIMIT): positions, epochs, sequence numbers,
#: timestamps and sizes all fit a signed 64-bit integer.
INT_LIMIT = 2**63
MAX_BUS = 256
MAX_NAME = 128
MAX_TYPE = 64
MAX_AUTHOR = 256
#: Fencing names one append may need (one per guarded entry type at most).
MAX_GUARDS = 16


class Malformed(ValueError):
    """A replicated command ``LogState`` cannot apply; the message says what is wrong."""


def to_replicated(cmd: Command) -> dict[str, Any]:
    """``cmd`` as Raft and the WAL carry it (the keys in the order older versions wrote)."""
    match cmd:
        case Append():
            wire: dict[str, Any] = {
                "op": "append",
                "bus": cmd.bus,
                "entries": [(entry.type, entry.body, entry.size) for entry in cmd.entries],
                "author": cmd.author,
                "ts": cmd.ts,
            }
            if cmd.quota is not None:
                wire["quota"] = (cmd.quota.bus, cmd.quota.author, cmd.quota.log)
            if cmd.guards:
                wire["guards"] = cmd.guards
            if cmd.key is not None:
                wire["key"] = cmd.key
            if cmd.expect_tail is not None:
                wire["expect_tail"] = cmd.expect_tail
            if cmd.fence is not None:
                wire["fence"] = cmd.fence
            return wire
        case Trim():
            return _with_ts({"op": "trim", "bus": cmd.bus, "before": cmd.before}, cmd.ts)
        case Claim():
            return _with_ts({"op": "claim", "bus": cmd.bus, "name": cmd.name}, cmd.ts)
        case Barrier():
            return {"op": "barrier"}
    assert_never(cmd)


def replicated_batch(cmds: Sequence[Command]) -> list[dict[str, Any]]:
    return [to_replicated(cmd) for cmd in cmds]


def _with_ts(wire: dict[str, Any], ts: int | None) -> dict[str, Any]:
    if ts is not None:
        wire["ts"] = ts
    return wire


def _int(value: Any) -> TypeGuard[int]:
    return type(value) is int and 0 <= value < INT_LIMIT


def _text(value: Any, limit: int) -> TypeGuard[str]:
    return type(value) is str and 0 < len(value) <= limit


def _pair(value: Any, limit: int) -> bool:
    """A (name, integer) pair, as idempotency keys and fences are."""
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and _text(value[0], limit)
        and _int(value[1])
    )


def _entries(value: Any) -> tuple[NewEntry, ...]:
    if not isinstance(value, list) or not value:
        raise Malformed("'entries' must be a non-empty list")
    entries = []
    for entry in value:
        if not (
            isinstance(entry, tuple | list)
            and len(entry) == 3
            and _text(entry[0], MAX_TYPE)
            and type(entry[1]) is bytes
            and _int(entry[2])
        ):
            raise Malformed("each entry must be (type, encoded body, size)")
        entries.append(NewEntry(*entry))
    return tuple(entries)


def _optional_pair(cmd: dict[str, Any], name: str) -> tuple[str, int] | None:
    if name not in cmd:
        return None
    value = cmd[name]
    if not _pair(value, MAX_NAME):
        raise Malformed(f"{name!r} must be (name, integer in [0, 2**63))")
    return (value[0], value[1])


def _append(cmd: dict[str, Any]) -> Append:
    """Checked in the order older versions checked, so the same command gets the same error."""
    ts = cmd.get("ts")
    if not _int(ts):
        raise Malformed("'ts' must be an integer in [0, 2**63)")
    entries = _entries(cmd.get("entries"))
    author = cmd.get("author")
    if not _text(author, MAX_AUTHOR):
        raise Malformed("'author' must be a name")
    guards = cmd.get("guards", ())
    if not (
        isinstance(guards, tuple | list)
        and len(guards) <= MAX_GUARDS
        and all(_text(g, MAX_NAME) for g in guards)
    ):
        raise Malformed(f"'guards' must be at most {MAX_GUARDS} fencing names")
    key = _optional_pair(cmd, "key")
    fence = _optional_pair(cmd, "fence")
    expect_tail = cmd.get("expect_tail")
    if "expect_tail" in cmd and not _int(expect_tail):
        raise Malformed("'expect_tail' must be an integer in [0, 2**63)")
    quota = cmd.get("quota")
    if quota is not None and not (
        isinstance(quota, tuple | list) and len(quota) == 3 and all(_int(q) for q in quota)
    ):
        raise Malformed("'quota' must be (bus bytes, author bytes, log bytes)")
    return Append(
        bus=cmd["bus"],
        entries=entries,
        author=author,
        ts=ts,
        quota=None if quota is None else Quota(*quota),
        guards=tuple(guards),
        key=key,
        expect_tail=expect_tail,
        fence=fence,
    )


def _ts(cmd: dict[str, Any]) -> int | None:
    """The timestamp of a trim or claim: never checked, as nothing uses it."""
    ts = cmd.get("ts")
    return ts if _int(ts) else None


def _trim(cmd: dict[str, Any]) -> Trim:
    if not _int(cmd.get("before")):
        raise Malformed("'before' must be an integer in [0, 2**63)")
    return Trim(cmd["bus"], cmd["before"], _ts(cmd))


def _claim(cmd: dict[str, Any]) -> Claim:
    if not _text(cmd.get("name"), MAX_NAME):
        raise Malformed("'name' must be a name")
    return Claim(cmd["bus"], cmd["name"], _ts(cmd))


_PARSERS: dict[str, Callable[[dict[str, Any]], Command]] = {
    "append": _append,
    "trim": _trim,
    "claim": _claim,
}


def parse(raw: Any) -> Command:
    """The command ``raw`` is the replicated form of; ``Malformed`` if ``LogState`` cannot
    apply it."""
    if not isinstance(raw, dict):
        raise Malformed("a command must be a map")
    op = raw.get("op")
    if op == "barrier":
        return Barrier()
    build = _PARSERS.get(op) if isinstance(op, str) else None
    if build is None:
        raise Malformed(f"unknown command {op!r}" if _text(op, MAX_NAME) else "unknown command")
    if not _text(raw.get("bus"), MAX_BUS):
        raise Malformed("'bus' must be a bus id")
    return build(raw)
