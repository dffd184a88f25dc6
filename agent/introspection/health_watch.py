"""A health watcher: the signals of agent/introspection/health.py read from live buses, and
told to whoever should hear of them.

Each check reads a bus afresh, finds what :func:`~logact.agent.introspection.health.check`
finds (and, given a model, its reading of the bus digest), and, when the findings differ from
the bus's latest ``health`` entry, records them as a new one and mails them to the agent, so they
reach its next model call. The health entries are the watcher's memory: it records and mails
each change once, however often it looks, and a restarted watcher carries on where it stopped.
A bus that does not exist is reported as such (``unknown_bus``), never as healthy, and nothing
is appended to it (an append would create it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.replay import bus_exists, now_ms, read_state
from logact.agent.introspection.digest import digest
from logact.agent.introspection.health import (
    Status,
    Thresholds,
    check,
    is_news,
    model_judgement,
    unknown_bus,
)
from logact.agent.introspection.health import status as status_of
from logact.agent.introspection.rounds import watch_rounds
from logact.protocol.api import LogAPI

#: The checker named in health entries and the sender of health mail.
CHECKER = "logact-health"
#: The subject of health mail.
SUBJECT = "health"


@dataclass(frozen=True, slots=True)
class Report:
    """One bus checked once: what was found, and where it was recorded and mailed (if it was
    news and the watcher records or mails)."""

    bus: str
    findings: list[dict[str, Any]]
    judgement: str | None
    news: bool
    recorded: int | None = None
    mailed: int | None = None

    @property
    def status(self) -> Status:
        """The bus's status, valued as a Nagios plugin's exit code."""
        return status_of(self.findings)


def mail_text(findings: Sequence[dict[str, Any]]) -> str:
    """Findings as one line for the agent: signal and detail of each."""
    return "; ".join(f"{f['signal']}: {f['detail']}" for f in findings)


class HealthWatcher:
    """Checks buses read with ``reader``; records news with ``recorder`` and mails it with
    ``mailer`` (each as its own principal), when given.

    Mail needs a recorder: what is news is told by the recorded health entries, and without
    them every round's findings would be mailed again. ``model`` is an ``(openai client, model
    name)`` pair for a judgement of the digest; ``clock`` gives the time in ms the stall signal
    is measured against.
    """

    def __init__(
        self,
        reader: LogAPI,
        *,
        recorder: LogAPI | None = None,
        mailer: LogAPI | None = None,
        model: tuple[Any, str] | None = None,
        thresholds: Thresholds | None = None,
        clock: Callable[[], int] = now_ms,
        name: str = CHECKER,
    ) -> None:
        if mailer is not None and recorder is None:
            raise ValueError("a health watcher that mails needs a recorder: it mails what changed")
        self.reader = reader
        self.recorder = recorder
        self.mailer = mailer
        self.model = model
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.name = name

    async def check(self, bus: str) -> Report:
        """Check ``bus`` as it stands now; record and mail the findings if they are news."""
        if not await bus_exists(self.reader, bus):
            return Report(bus, [unknown_bus(bus)], None, news=False)
        state = await read_state(self.reader, bus)
        findings = check(state, self.clock(), self.thresholds)
        judgement = None
        if self.model is not None:
            judgement = await model_judgement(*self.model, digest(state).render())
        news = is_news(state, findings)
        recorded = mailed = None
        if news and self.recorder is not None:
            entry = e.Health(self.name, state.next - 1, tuple(findings), judgement)
            recorded = await self.recorder.append(bus, *entry.to_entry())
        if news and self.mailer is not None and findings:
            mail = e.Mail(self.name, bus, mail_text(findings), SUBJECT)
            mailed = await self.mailer.append(bus, *mail.to_entry())
        return Report(bus, findings, judgement, news, recorded, mailed)


async def watch(
    watcher: HealthWatcher,
    buses: Sequence[str],
    prefix: str | None,
    count: int,
    interval: float,
) -> AsyncGenerator[Report, None]:
    """Every watched bus checked, bus by bus, in ``count`` rounds ``interval`` s apart
    (:func:`~logact.agent.introspection.rounds.watch_rounds`)."""
    async with aclosing(watch_rounds(watcher.reader, buses, prefix, count, interval)) as each:
        async for targets in each:
            for bus in targets:
                yield await watcher.check(bus)
