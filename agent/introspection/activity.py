"""What an agent's part did, one line each, for the operator watching its process.

A component that runs for hours must show it is working: every vote, decision and run it
appends is told as one line ("voted approve on #12 (rule: ...)", "committed #12", "ran #12: ok
in 1.2 s"). :class:`ActivityLog` wraps the component's log and tells each entry appended
through it to a ``report`` callback, as an :class:`Appended` (a line for people, a JSON object
for programs), so the components stay unaware of it; :func:`describe` is the pure part: the
line for one entry, or None for entries nobody needs to see go by (inference records,
exec_start: the result says it ran).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.text import clip
from logact.agent.introspection.timeline import describe_action
from logact.protocol.api import LogAPI
from logact.protocol.codec import Entry


def duration(ms: int) -> str:
    """``ms`` as a person reads it: 340 ms, 1.2 s, 3 min 5 s."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"


def _verdict(vote: e.Vote) -> str:
    if vote.escalate:
        return "escalate"
    if vote.approve is None:
        return f"p={vote.probability:g}"
    return "approve" if vote.approve else "reject"


def _ran(result: e.Result) -> str:
    took = f" in {duration(result.duration_ms)}" if result.duration_ms is not None else ""
    if result.in_doubt:
        return f"#{result.intent_id} in doubt: interrupted before its result, not re-run"
    if result.ok:
        return f"ran #{result.intent_id}: ok{took}"
    return f"ran #{result.intent_id}: failed{took}: {clip(result.error or '', 100)}"


def describe(position: int, entry_type: str, body: Any) -> str | None:
    """The operator's line for the entry ``(entry_type, body)`` appended at ``position``."""
    if entry_type not in e.ENTRY_TYPES:
        return None
    match e.parse(entry_type, body):
        case e.Vote() as vote:
            reason = clip(vote.reason, 120)
            return f"voted {_verdict(vote)} on #{vote.intent_id} ({vote.kind}: {reason})"
        case e.Commit(intent_id=intent_id, reason=reason):
            return f"committed #{intent_id} ({clip(reason, 120)})"
        case e.Abort(intent_id=intent_id, reason=reason):
            return f"aborted #{intent_id} ({clip(reason, 120)})"
        case e.Result() as result:
            return _ran(result)
        case e.Intent(action=action):
            return f"proposed #{position}: {clip(describe_action(action), 120)}"
        case e.AgentOutput(text=text):
            return f"answered: {clip(text, 120)}"
    return None


def stamped(bus: str, line: str, now: float | None = None) -> str:
    """``line`` with the local time and the bus it happened on: ``12:03:04 INFO bus: line``."""
    return f"{time.strftime('%H:%M:%S', time.localtime(now))} INFO {bus}: {line}"


@dataclass(frozen=True, slots=True)
class Appended:
    """One entry a part appended, as the log acknowledged it, with its :func:`describe` text."""

    bus: str
    position: int
    type: str
    text: str
    #: When the append was acknowledged (seconds since the epoch).
    at: float = field(default_factory=time.time)

    def line(self) -> str:
        """For people: :func:`stamped`."""
        return stamped(self.bus, self.text, self.at)

    def to_json(self) -> dict[str, Any]:
        """For programs (``--json``): the same facts, the time in ms since the epoch."""
        return {
            "event": "appended",
            "bus": self.bus,
            "pos": self.position,
            "type": self.type,
            "text": self.text,
            "ts": round(self.at * 1000),
        }


class ActivityLog(LogAPI):
    """``log``, telling ``report`` each entry appended through it that :func:`describe` has a
    line for, once the log has acknowledged it."""

    def __init__(self, log: LogAPI, report: Callable[[Appended], None]) -> None:
        super().__init__(log.client_id)
        self.log = log
        self.report = report

    async def _call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        return await self.log._call(request, timeout)

    def _open_subscription(
        self, bus: str, start: int, types: list[str] | None
    ) -> AsyncGenerator[Entry, None]:
        return self.log._open_subscription(bus, start, types)

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
        batch = list(entries)
        positions = await self.log.append_batch(
            bus, batch, expect_tail=expect_tail, fence=fence, key=key, timeout=timeout
        )
        for position, (entry_type, body) in zip(positions, batch, strict=True):
            if (text := describe(position, entry_type, body)) is not None:
                self.report(Appended(bus, position, entry_type, text))
        return positions
