"""One whole agent in this process: driver, rule voter, decider (veto) and executor.

Each part appends with the log of its role (on a cluster each role's own principal; embedded,
one owner log for all), as in ``logact agent``; the scenarios add the supervisor beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from logact.agent.conversation import Settings
from logact.agent.decider import Decider
from logact.agent.driver import Driver
from logact.agent.executor import Executor
from logact.agent.mailbox import give_task
from logact.agent.policy import Policy
from logact.agent.rules import RuleSet
from logact.agent.runner import now_ms, run_agent
from logact.agent.supervisor import Sent, Supervisor
from logact.agent.tools import ToolRegistry
from logact.agent.voters import Voter, rule_judge
from logact.protocol.api import LogAPI

#: The roles a scenario appends as (``user`` gives tasks; the supervisor reads and mails).
ROLES = ("user", "driver", "voter", "decider", "executor", "reader", "mailer")
#: The scenarios' voter approves everything: they measure supervision, not safety.
ALLOW_ALL = RuleSet.from_doc({"default": "allow", "rules": []})


@dataclass(frozen=True, slots=True)
class Model:
    """An OpenAI client and the model name to ask."""

    client: Any
    name: str


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
    driver = Driver(
        logs["driver"],
        bus,
        model.client,
        model.name,
        tools.describe(),
        Settings(system, max_steps=max_steps),
        exit_when_idle=True,
    )
    others = [
        Voter(logs["voter"], bus, "rules", "rule", rule_judge(ALLOW_ALL)),
        Decider(logs["decider"], bus, Policy("veto", {"kinds": ["rule"]})),
        Executor(logs["executor"], bus, tools),
    ]
    started = time.perf_counter()
    await give_task(logs["user"], bus, task)
    await run_agent(driver, others)
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
