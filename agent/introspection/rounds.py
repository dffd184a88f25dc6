"""Looking after many buses in bounded rounds: the buses named and every bus under a prefix,
read afresh each round (agents started since the last round are watched too)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import trio

from logact.agent.introspection.supervisor import watched_buses
from logact.protocol.api import LogAPI


async def watch_rounds(
    log: LogAPI, buses: Sequence[str], prefix: str | None, count: int, interval: float
) -> AsyncGenerator[list[str], None]:
    """The watched buses (:func:`watched_buses`), ``count`` times, ``interval`` seconds apart
    (counted from the end of the caller's work on one round to the start of the next)."""
    for index in range(count):
        yield await watched_buses(log, buses, prefix)
        if index + 1 < count:
            await trio.sleep(interval)
