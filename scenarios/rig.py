"""One whole agent in this process: driver, rule voter, decider (veto) and executor.

Each part appends with the log of its role (on a cluster each role's own principal; embedded,
one owner log for all), as in ``logact agent``; the scenarios add the supervisor beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

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
) -> list[Sent]:
    """Supervision rounds every ``interval`` seconds until ``done``; everything mailed."""
    sent: list[Sent] = []
    while not done.is_set():
        sent += await supervisor.round(buses, now_ms())
        on_round()
        with trio.move_on_after(interval):
            await done.wait()
    return sent
