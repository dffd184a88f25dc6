"""A bus read from the log into its fold, and the clock its timestamps are written in: the one
I/O edge of the core, shared by the components, introspection and the integrations."""

from __future__ import annotations

import time

from logact.agent.core.bus import BusState
from logact.protocol.api import LogAPI
from logact.protocol.errors import Trimmed, UnknownBus


def now_ms() -> int:
    """Wall-clock milliseconds, the clock entry timestamps are written in."""
    return int(time.time() * 1000)


async def read_state(log: LogAPI, bus: str, state: BusState | None = None) -> BusState:
    """``state`` brought up to date with ``bus`` (a new one from position 0 by default)."""
    state = state or BusState(bus)
    try:
        entries = await log.read_all(bus, state.next)
    except UnknownBus:
        return state  # nothing appended yet
    for entry in entries:
        state.apply(entry)
    return state


async def bus_exists(log: LogAPI, bus: str) -> bool:
    """Whether anything was ever appended to ``bus`` or claimed on it (reading an empty bus
    and a missing one both show nothing: only this tells them apart)."""
    try:
        await log.read(bus, 0, limit=1)
    except UnknownBus:
        return False
    except Trimmed:  # its start was trimmed away: it exists
        return True
    return True
