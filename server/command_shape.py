"""The shape every replicated command must have before ``LogState`` acts on it.

``commands.py`` builds commands only from validated requests, but the replicated apply must be
total for anything that can reach the journal — including entries written by older versions
(one of them accepted a 5,000-digit fence epoch, whose apply raised on every node, forever).
So the state machine checks each command against this shape first and answers a malformed one
with the same typed error on every replica, changing nothing. Pure.
"""

from __future__ import annotations

from typing import Any

#: Every integer in a command lies in [0, INT_LIMIT): positions, epochs, sequence numbers,
#: timestamps and sizes all fit a signed 64-bit integer.
INT_LIMIT = 2**63
MAX_BUS = 256
MAX_NAME = 128
MAX_TYPE = 64
MAX_AUTHOR = 256


def _int(value: Any) -> bool:
    return type(value) is int and 0 <= value < INT_LIMIT


def _text(value: Any, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit


#: Fencing names one append may need (one per guarded entry type at most).
MAX_GUARDS = 16


def _pair(value: Any, limit: int) -> bool:
    """A (name, integer) pair, as idempotency keys and fences are."""
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and _text(value[0], limit)
        and _int(value[1])
    )


def _entries(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "'entries' must be a non-empty list"
    for entry in value:
        if not (
            isinstance(entry, tuple | list)
            and len(entry) == 3
            and _text(entry[0], MAX_TYPE)
            and type(entry[1]) is bytes
            and _int(entry[2])
        ):
            return "each entry must be (type, encoded body, size)"
    return None


def _append(cmd: dict[str, Any]) -> str | None:
    if not _int(cmd.get("ts")):
        return "'ts' must be an integer in [0, 2**63)"
    problem = _entries(cmd.get("entries"))
    if problem:
        return problem
    if not _text(cmd.get("author"), MAX_AUTHOR):
        return "'author' must be a name"
    guards = cmd.get("guards", ())
    if not (
        isinstance(guards, tuple | list)
        and len(guards) <= MAX_GUARDS
        and all(_text(g, MAX_NAME) for g in guards)
    ):
        return f"'guards' must be at most {MAX_GUARDS} fencing names"
    for name in ("key", "fence"):
        if name in cmd and not _pair(cmd[name], MAX_NAME):
            return f"{name!r} must be (name, integer in [0, 2**63))"
    if "expect_tail" in cmd and not _int(cmd["expect_tail"]):
        return "'expect_tail' must be an integer in [0, 2**63)"
    quota = cmd.get("quota")
    if quota is not None and not (
        isinstance(quota, tuple | list) and len(quota) == 3 and all(_int(q) for q in quota)
    ):
        return "'quota' must be (bus bytes, author bytes, log bytes)"
    return None


def _trim(cmd: dict[str, Any]) -> str | None:
    return None if _int(cmd.get("before")) else "'before' must be an integer in [0, 2**63)"


def _claim(cmd: dict[str, Any]) -> str | None:
    return None if _text(cmd.get("name"), MAX_NAME) else "'name' must be a name"


_OPS = {"append": _append, "trim": _trim, "claim": _claim}


def malformed(cmd: Any) -> str | None:
    """What is wrong with ``cmd``, or None if ``LogState`` can apply it."""
    if not isinstance(cmd, dict):
        return "a command must be a map"
    op = cmd.get("op")
    if op == "barrier":
        return None
    check = _OPS.get(op) if isinstance(op, str) else None
    if check is None:
        return f"unknown command {op!r}" if _text(op, MAX_NAME) else "unknown command"
    if not _text(cmd.get("bus"), MAX_BUS):
        return "'bus' must be a bus id"
    return check(cmd)
