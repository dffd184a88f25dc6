"""The loop every agent component runs: claim, replay the bus, then react to each new entry.

A component is a :class:`BusState` plus a ``step`` that looks at the state and appends what is
due (a vote, a decision, a result, the next intent). Each component decides what is due with a
pure ``plan`` over the state and only then acts. Recovery is replay: a restarted component
rebuilds its state from the bus before its first step, so it acts on everything it missed and
never on a partial view of its own earlier work.

A component never steps while one of its own appends is still on its way back through the
subscription: its state would not show that append yet, and it would act twice.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import aclosing

import trio

from logact.agent.core.bus import BusState
from logact.agent.core.replay import now_ms
from logact.protocol.api import LogAPI
from logact.protocol.codec import Entry
from logact.protocol.errors import UnknownBus


class Component(ABC):
    """One agent component on one bus."""

    #: A fencing name to claim before replaying (one active instance per bus), or None.
    fencing_name: str | None = None

    def __init__(self, log: LogAPI, bus: str) -> None:
        self.log = log
        self.bus = bus
        self.state = BusState(bus)
        self.epoch: int | None = None
        self.finished = False  # set by components that end (a driver's task is done)
        #: Set by the runner while it waits for the bus to grow with nothing scheduled: the
        #: component acts again only on a new entry (a watcher may stop serving it till then).
        self.idle = False
        self._awaiting = -1  # the position of our last append: step once it is folded in

    @property
    def fence(self) -> tuple[str, int] | None:
        if self.fencing_name is None or self.epoch is None:
            return None
        return (self.fencing_name, self.epoch)

    @property
    def caught_up(self) -> bool:
        """Whether the state shows every append this component made."""
        return self.state.next > self._awaiting

    async def append(self, entry_type: str, body: object) -> int:
        """Append one entry, fenced when this component holds an epoch."""
        position = await self.log.append(self.bus, entry_type, body, fence=self.fence)
        self._awaiting = max(self._awaiting, position)
        return position

    async def append_batch(
        self, entries: list[tuple[str, object]], *, expect_tail: int | None = None
    ) -> range:
        """Append entries atomically (only if the bus ends at ``expect_tail``, when given)."""
        positions = await self.log.append_batch(
            self.bus, entries, fence=self.fence, expect_tail=expect_tail
        )
        self._awaiting = max(self._awaiting, positions[-1])
        return positions

    async def recovered(self) -> None:
        """Called once after the replay, before the first step (e.g. report interruptions)."""
        return None

    @abstractmethod
    async def step(self, now: int) -> int | None:
        """Act on the current state; returns when (ms) to step again without news, if ever.

        Called only when the state shows this component's own appends (:attr:`caught_up`).
        """

    def observe(self, entry: Entry) -> None:
        """Fold one entry; components may extend this to notice what arrived."""
        self.state.apply(entry)


async def _catch_up(component: Component) -> None:
    try:
        entries = await component.log.read_all(component.bus, component.state.next)
    except UnknownBus:
        return  # nothing yet: the subscription waits for the bus to appear
    for entry in entries:
        component.observe(entry)


async def _pump(log: LogAPI, bus: str, start: int, send: trio.MemorySendChannel[Entry]) -> None:
    async with send, aclosing(log.subscribe(bus, start)) as entries:
        async for entry in entries:
            await send.send(entry)


async def run_component(
    component: Component, ready: Callable[[Component], None] | None = None
) -> None:
    """Run ``component`` until it finishes (or forever); cancel the caller's scope to stop it.

    The fencing claim comes before the replay, so the replay sees every append a stale
    instance could still make (later ones are rejected by the fence). ``ready`` is called once
    the component has replayed the bus and handled what it found there.
    """
    if component.fencing_name is not None:
        component.epoch = await component.log.claim(component.bus, component.fencing_name)
    await _catch_up(component)
    await component.recovered()
    if ready is not None:
        ready(component)
    send, receive = trio.open_memory_channel[Entry](math.inf)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump, component.log, component.bus, component.state.next, send)
        while True:
            wake = await component.step(now_ms()) if component.caught_up else None
            if component.finished:
                break
            timeout = math.inf if wake is None else max(wake - now_ms(), 0) / 1000
            component.idle = wake is None and component.caught_up
            with trio.move_on_after(timeout):
                component.observe(await receive.receive())
                component.idle = False
                while True:  # take everything already delivered before stepping again
                    try:
                        component.observe(receive.receive_nowait())
                    except trio.WouldBlock:
                        break
        nursery.cancel_scope.cancel()


async def run_agent(driver: Component, others: list[Component]) -> None:
    """All components of one agent in this process: returns when the driver finishes."""
    async with trio.open_nursery() as nursery:
        for component in others:
            nursery.start_soon(run_component, component)
        await run_component(driver)
        nursery.cancel_scope.cancel()
