"""Serving every bus under a prefix: the same components on each bus, new buses included.

A gate for outside harnesses (Claude Code and Codex hooks) must vote on and decide intents on
buses that appear as sessions start (``claude_code.<user>.<session>``), so a component that
follows one bus is not enough. :func:`watch` runs a set of components on every bus whose id
starts with a prefix, each set with the usual :func:`~logact.agent.components.runner.
run_component` (claim, replay, plan and act per bus).

The log pushes the entries of a bus (``subscribe``) but not the appearance of a bus, so new
buses are found by polling ``list_buses`` every ``interval`` seconds: a bus created now is
served within one interval (plus its replay). The listing holds every bus the principal may
read, filtered here by prefix, so each poll costs in proportion to all of them.

Bounded: at most ``max_buses`` buses are served at once. A bus beyond the bound is not served
(reported once, and its intents wait, so a hook denies them at its own timeout) until a slot
frees: a served bus whose components have all been idle for ``idle_after`` seconds (nothing
unseen, nothing scheduled, see :attr:`Component.idle`) is let go and served again, replayed,
once the listing shows it grew. The components of a bus that fail are reported and restarted
after a backoff (recovery is replay); the other buses go on. A failed listing ends the watch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field

import trio

from logact.agent.components.runner import Component, run_component
from logact.protocol.api import LogAPI

#: Seconds between two listings: the longest a new bus waits before it is served.
DEFAULT_INTERVAL = 1.0
#: Buses served at once.
DEFAULT_MAX_BUSES = 1000
#: Seconds a served bus may stay idle before it is let go (it is served again when it grows).
DEFAULT_IDLE_AFTER = 300.0
#: Backoff before the components of a failed bus are restarted: doubled up to the maximum.
RESTART_AFTER = 1.0
RESTART_AFTER_MAX = 60.0

#: The components to run on one bus.
MakeComponents = Callable[[str], Sequence[Component]]


@dataclass(frozen=True, slots=True)
class WatchLimits:
    """How often to look for buses, how many to serve at once, when to let an idle one go."""

    interval: float = DEFAULT_INTERVAL
    max_buses: int = DEFAULT_MAX_BUSES
    idle_after: float = DEFAULT_IDLE_AFTER

    def __post_init__(self) -> None:
        if not self.interval > 0 or not self.idle_after >= 0 or self.max_buses < 1:
            raise ValueError(
                "watch limits: interval must be > 0, idle_after >= 0 and max_buses >= 1"
            )


@dataclass(frozen=True, slots=True)
class Activity:
    """What the plan needs to know of a served bus."""

    idle: bool  # every component of the bus waits for the bus to grow
    next: int  # the first position some component of the bus has not folded yet
    since: float  # when (watcher clock, s) ``next`` last changed


@dataclass(frozen=True, slots=True)
class Round:
    """What one listing asks for: buses to serve, to let go, and those over the bound."""

    start: list[str]
    release: list[str]
    waiting: list[str]  # under the prefix, to be served, over the bound
    newly_waiting: list[str]  # of ``waiting``, those not waiting in the previous round


def plan(
    listing: Mapping[str, int],
    served: Mapping[str, Activity],
    released: Mapping[str, int],
    waiting: Set[str],
    limits: WatchLimits,
    now: float,
) -> Round:
    """One round over ``listing`` (bus -> tail, already filtered by prefix).

    A served bus is let go when it has been idle for ``limits.idle_after`` with nothing unseen;
    a bus not served is to be served unless it was let go at a tail it has not grown past
    (``released``). Buses to serve take the free slots in listing order; the rest wait.
    """
    release = [
        bus
        for bus, activity in served.items()
        if activity.idle
        and activity.next >= listing.get(bus, activity.next)
        and now - activity.since >= limits.idle_after
    ]
    wanted = [
        bus for bus, tail in listing.items() if bus not in served and tail > released.get(bus, -1)
    ]
    free = max(limits.max_buses - (len(served) - len(release)), 0)
    over = wanted[free:]
    return Round(wanted[:free], release, over, [bus for bus in over if bus not in waiting])


def _describe(exc: BaseException) -> str:
    """One line for a failure, looking through the groups nurseries wrap single errors in."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(slots=True)
class _Serving:
    """One served bus: its components (replaced on a restart) and their progress."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    components: list[Component] = field(default_factory=list)
    next: int = -1
    since: float = 0.0

    def activity(self, now: float) -> Activity:
        current = min((c.state.next for c in self.components), default=-1)
        if current != self.next:
            self.next, self.since = current, now
        idle = bool(self.components) and all(c.idle for c in self.components)
        return Activity(idle, self.next, self.since)


class _Watch:
    def __init__(
        self,
        log: LogAPI,
        prefix: str,
        make: MakeComponents,
        limits: WatchLimits,
        ready: Callable[[Component], None] | None,
        report: Callable[[str], None],
    ) -> None:
        self.log = log
        self.prefix = prefix
        self.make = make
        self.limits = limits
        self.ready = ready
        self.report = report
        self.served: dict[str, _Serving] = {}
        self.released: dict[str, int] = {}
        self.waiting: set[str] = set()

    def say(self, text: str) -> None:
        self.report(f"watch {self.prefix}: {text}")

    async def round(self, nursery: trio.Nursery) -> None:
        listing = {
            b.bus: b.tail for b in await self.log.list_buses() if b.bus.startswith(self.prefix)
        }
        now = trio.current_time()
        served = {bus: serving.activity(now) for bus, serving in self.served.items()}
        due = plan(listing, served, self.released, self.waiting, self.limits, now)
        for bus in due.release:
            serving = self.served.pop(bus)
            serving.scope.cancel()
            self.released[bus] = serving.next
            self.say(f"let {bus} go (idle for {self.limits.idle_after:g}s at {serving.next})")
        for bus in due.start:
            self.served[bus] = serving = _Serving()
            self.released.pop(bus, None)
            nursery.start_soon(self.serve, bus, serving)
            self.say(f"serving {bus}")
        for bus in due.newly_waiting:
            self.say(
                f"not serving {bus}: already serving {self.limits.max_buses} buses, the most at "
                "once; it is served when one of them has been idle long enough"
            )
        self.waiting = set(due.waiting)

    async def serve(self, bus: str, serving: _Serving) -> None:
        """Run the bus's components until they finish (or it is let go), restarting failures."""
        backoff = RESTART_AFTER
        with serving.scope:
            while True:
                try:
                    serving.components = list(self.make(bus))
                    async with trio.open_nursery() as nursery:
                        for component in serving.components:
                            nursery.start_soon(run_component, component, self.ready)
                    break
                except Exception as exc:
                    serving.components = []
                    self.say(f"{bus} failed ({_describe(exc)}); restarting in {backoff:g}s")
                await trio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_AFTER_MAX)
        if self.served.get(bus) is serving:  # every component finished: served again on growth
            del self.served[bus]
            self.released[bus] = serving.activity(trio.current_time()).next


async def watch(
    log: LogAPI,
    prefix: str,
    make: MakeComponents,
    *,
    limits: WatchLimits = WatchLimits(),
    ready: Callable[[Component], None] | None = None,
    report: Callable[[str], None] = lambda _line: None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every bus under ``prefix`` with ``make(bus)``'s components; runs until cancelled.

    ``log`` lists the buses (its principal's read rights limit what is found). ``ready`` is
    passed to each component's run; ``report`` gets one line for each bus served, let go, over
    the bound or failed. Started (``nursery.start``) once the first listing is served.
    """
    watcher = _Watch(log, prefix, make, limits, ready, report)
    async with trio.open_nursery() as nursery:
        await watcher.round(nursery)
        task_status.started()
        while True:
            await trio.sleep(limits.interval)
            await watcher.round(nursery)
