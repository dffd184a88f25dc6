"""One whole agent in this process: driver, rule voter, decider (veto) and executor.

Each part appends with the log of its role (on a cluster each role's own principal; embedded,
one owner log for all), as in ``logact agent``; the scenarios add the supervisor beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing

import trio

from logact.agent.components import assembly
from logact.agent.components.assembly import PARTS, USER, AgentSpec, Model
from logact.agent.components.conversation import Settings
from logact.agent.core.policy import Policy
from logact.agent.core.replay import now_ms
from logact.agent.integrations.parts import ALLOW_ALL
from logact.agent.introspection.supervisor import Sent, Supervisor
from logact.agent.tools.registry import ToolRegistry
from logact.protocol.api import LogAPI

#: The roles a scenario appends as (``user`` gives tasks; the supervisor reads and mails).
ROLES = ("user", "driver", "voter", "decider", "executor", "reader", "mailer")


async def run_task(
    logs: Mapping[str, LogAPI],
    bus: str,
    model: Model,
    tools: ToolRegistry,
    system: str,
    task: str,
    *,
    max_steps: int,
) -> float:
    """Give ``task`` to a fresh agent on ``bus`` and run it until it answers; seconds taken."""
    policy = Policy("veto", {"kinds": ["rule"]})
    # The voter approves everything: the scenarios measure supervision, not safety.
    spec = AgentSpec(model, tools, Settings(system, max_steps=max_steps), ALLOW_ALL, policy)
    # The scenarios' principals: one voter, no LLM voter.
    parts = {p: logs["voter" if p == "rule-voter" else p] for p in PARTS if p != "llm-voter"}
    started = time.perf_counter()
    await assembly.run_task({**parts, USER: logs[USER]}, bus, spec, task)
    return time.perf_counter() - started


async def supervise_until(
    supervisor: Supervisor,
    buses: Sequence[str],
    done: trio.Event,
    interval: float,
    on_round: Callable[[], None] = lambda: None,
    *,
    on_results: bool = False,
) -> list[Sent]:
    """Supervision rounds every ``interval`` seconds until ``done``; everything mailed.

    ``on_results``: also a round as soon as a result commits on one of ``buses``. Advice is
    judged on results, so it then sees each one as it lands however short the agent's steps are
    next to ``interval``: whether it speaks depends on the log, not on when a round falls.
    """
    sent: list[Sent] = []
    wake = trio.Event()

    async def watch(bus: str) -> None:
        async with aclosing(supervisor.reader.subscribe(bus, 0, ["result"])) as results:
            async for _ in results:
                wake.set()

    async def stop() -> None:
        await done.wait()
        wake.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop)
        if on_results:
            for bus in buses:
                nursery.start_soon(watch, bus)
        while not done.is_set():
            wake = trio.Event()  # a result committed during the round wakes the next one
            sent += await supervisor.round(buses, now_ms())
            on_round()
            with trio.move_on_after(interval):
                await wake.wait()
        nursery.cancel_scope.cancel()
    return sent
