"""One agent, wired once: a driver, a rule voter, an optional LLM voter, a decider and an
executor on one bus, each appending with its own log (on a cluster, its role's principal).

The CLI's ``agent run``, the demo and the supervision scenarios all build their agent here, so
an agent is the same thing wherever it runs; processes that run one part each (``logact agent
driver|voter|decider|executor``) build the same parts one at a time. :func:`serve_agents` runs
one such agent on every bus under a prefix (``agent run --watch``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import trio

from logact.agent.components.conversation import Settings
from logact.agent.components.decider import Decider
from logact.agent.components.driver import Driver
from logact.agent.components.executor import Executor
from logact.agent.components.runner import Component, run_agent
from logact.agent.components.voters import Judges, Voter
from logact.agent.components.watcher import WatchLimits, watch
from logact.agent.core.policy import Policy
from logact.agent.integrations.mailbox import give_task
from logact.agent.judgement.rules import RuleSet
from logact.agent.tools.registry import ToolRegistry
from logact.protocol.api import LogAPI

#: The parts of an agent, each the name of the log it appends with (and of its principal in
#: the shipped configurations), and the principal that gives it its task.
PARTS = ("driver", "rule-voter", "llm-voter", "decider", "executor")
USER = "user"


@dataclass(frozen=True, slots=True)
class Model:
    """An OpenAI client and the model name to ask."""

    client: Any
    name: str


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """What one agent is made of."""

    model: Model  # the driver's
    tools: ToolRegistry
    settings: Settings
    rules: RuleSet
    policy: Policy
    reviewer: Model | None = None  # the LLM voter's model; None: no LLM voter


def assemble(
    logs: Mapping[str, LogAPI], bus: str, spec: AgentSpec, *, exit_when_idle: bool = True
) -> tuple[Driver, list[Component]]:
    """The driver and the other parts, not yet running. ``logs`` maps each of :data:`PARTS`
    (``llm-voter`` only with a reviewer) to its log. ``exit_when_idle``: the driver finishes
    once the agent has answered and has nothing to do; otherwise it waits for the next task or
    mail (a served bus)."""
    driver = Driver(
        logs["driver"],
        bus,
        spec.model.client,
        spec.model.name,
        spec.tools.describe(),
        spec.settings,
        exit_when_idle=exit_when_idle,
    )
    parts = gate(logs, bus, spec.rules, spec.policy, spec.reviewer)
    return driver, [*parts, Executor(logs["executor"], bus, spec.tools)]


def gate(
    logs: Mapping[str, LogAPI], bus: str, rules: RuleSet, policy: Policy, reviewer: Model | None
) -> list[Component]:
    """The parts that rule on a bus's intents, not yet running: the rule voter, the LLM voter
    (only with a ``reviewer``) and the decider under ``policy``; ``logs`` as for
    :func:`assemble`. An agent's gate, and the hooks' gate on every session bus."""
    judges = Judges(rules, reviewer=None if reviewer is None else (reviewer.client, reviewer.name))
    parts: list[Component] = [Voter(logs["rule-voter"], bus, "rules", "rule", judges.judge("rule"))]
    if reviewer is not None:
        parts.append(Voter(logs["llm-voter"], bus, "llm", "llm", judges.judge("llm")))
    return [*parts, Decider(logs["decider"], bus, policy)]


async def run_task(logs: Mapping[str, LogAPI], bus: str, spec: AgentSpec, task: str | None) -> None:
    """Give ``task`` (as ``logs["user"]``; None: the bus already holds one) to the agent and
    run it until it is idle."""
    driver, parts = assemble(logs, bus, spec)
    if task is not None:
        await give_task(logs[USER], bus, task)
    await run_agent(driver, parts)


async def serve_agents(
    logs: Mapping[str, LogAPI],
    prefix: str,
    spec: AgentSpec,
    tools_for: Callable[[str], ToolRegistry],
    *,
    limits: WatchLimits,
    report: Callable[[str], None] = lambda _line: None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A whole agent (:func:`assemble`) on every bus under ``prefix``, new buses included, until
    cancelled (agent/components/watcher.py: failures restarted, at most ``limits.max_buses``
    at once, an idle bus let go and served again when it grows).

    Each bus's agent acts with ``tools_for(bus)`` (its own workspace) instead of ``spec.tools``
    and its driver never exits: it waits for the bus's next task or mail. The buses are those
    ``logs["driver"]`` may read; ``report`` gets the watch's lines. Started
    (``nursery.start``) once the buses already there are served.
    """

    def make(bus: str) -> list[Component]:
        driver, parts = assemble(
            logs, bus, replace(spec, tools=tools_for(bus)), exit_when_idle=False
        )
        return [driver, *parts]

    await watch(logs["driver"], prefix, make, limits=limits, report=report, task_status=task_status)
