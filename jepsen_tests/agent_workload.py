"""The agent workload: several agents, each a set of component processes on its own bus.

Every agent runs a driver (scripted model over real HTTP), a rule voter that vetoes a known
subset of actions, a decider and an executor, each a separate ``logact agent`` process with its
own principal. Each action is a side effect outside the cluster: a line appended to the ledger
file in the agent's workspace (the only place its sandboxed actions may write), carrying the
bus and intent id the executor ran it for. The chaos runner kills and
restarts random components while the agents work; at the end the buses and the ledger are
recorded for the agent checkers (docs/chaos.md).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from logact.agent.core import entries as e
from logact.agent.integrations.mailbox import give_task
from logact.agent.models.llm import tool_call
from logact.client.client import Client
from logact.jepsen_tests.agent_procs import AgentProcess, kill_all
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import agent_token
from logact.protocol.errors import UnknownBus

Record = Callable[[dict[str, Any]], None]

VETO_MARK = "VETO-ME"
RULES = f"""
default = "allow"

[[rules]]
effect = "deny"
reason = "marked for veto by the chaos workload"
text = {{ substring = "{VETO_MARK}" }}
"""
POLICY = json.dumps({"kind": "veto", "params": {"kinds": ["rule"]}})
COMPONENTS = ("driver", "voter", "decider", "executor")
#: The principal a component runs as where it is not named after the component: the rule
#: voter signs its votes as ``rule-voter``, as the decider's default policy requires.
PRINCIPALS = {"voter": "rule-voter"}


#: The ledger's name in each agent's workspace (shell actions run in the workspace root).
LEDGER = "ledger.txt"


def script(steps: int, veto_every: int = 3) -> list[dict[str, Any]]:
    """``steps`` side effects (every ``veto_every``-th one marked for veto), then an answer."""
    replies: list[dict[str, Any]] = []
    for step in range(steps):
        mark = f" {VETO_MARK}" if step % veto_every == veto_every - 1 else ""
        command = f'echo "$LOGACT_BUS $LOGACT_INTENT_ID step-{step}{mark}" >> {LEDGER}'
        replies.append({"tool_calls": [tool_call("shell", {"command": command}, f"c{step}")]})
    replies.append({"content": "done"})
    return replies


@dataclass
class Agent:
    bus: str
    procs: dict[str, AgentProcess] = field(default_factory=dict)


@dataclass
class AgentWorkload:
    cluster: LocalCluster
    directory: Path
    model_env: dict[str, str]
    agents: int = 3
    run_id: str = "run"
    members: list[Agent] = field(default_factory=list)

    def workspace(self, index: int) -> Path:
        return self.directory / f"ws-{index}"

    def ledger_lines(self) -> list[str]:
        """Every agent's ledger, agent by agent (each line names its bus and intent)."""
        ledgers = [self.workspace(i) / LEDGER for i in range(len(self.members))]
        return [line for path in ledgers if path.exists() for line in path.read_text().splitlines()]

    def _agent(self, index: int) -> Agent:
        bus = f"chaos-agent/{self.run_id}-{index}"
        rules = self.directory / "rules.toml"
        rules.write_text(RULES)
        workspace = self.workspace(index)
        workspace.mkdir(parents=True, exist_ok=True)
        common = ["--config", str(self.cluster.config_path), "--bus", bus]
        args = {
            "driver": ["driver", "--llm", "env", "--exit-when-done"],
            "voter": ["voter", "--kind", "rule", "--id", "rules", "--rules", str(rules)],
            "decider": ["decider", "--policy", POLICY],
            "executor": ["executor", "--workspace", str(workspace)],
        }
        agent = Agent(bus)
        for component, (command, *rest) in args.items():
            token = ["--token", agent_token(PRINCIPALS.get(component, component))]
            agent.procs[component] = AgentProcess(
                f"agent{index}-{component}",
                [command, *common, *token, *rest],
                self.directory / "logs",
                self.model_env,
            )
        return agent

    async def start(self, record: Record) -> None:
        self.members = [self._agent(index) for index in range(self.agents)]
        for agent in self.members:
            for process in agent.procs.values():
                process.start()
        for agent in self.members:
            for process in agent.procs.values():
                await process.wait_ready()
        async with Client(self.cluster.addresses, agent_token("user"), timeout=30) as log:
            for agent in self.members:
                await give_task(log, agent.bus, "append your steps to the ledger")
        record(
            {
                "process": "agents",
                "op": "start",
                "id": 0,
                "invoke": time.monotonic_ns(),
                "complete": time.monotonic_ns(),
                "outcome": "ok",
                "buses": [agent.bus for agent in self.members],
            }
        )

    async def kill_random_component(self, rng: random.Random, record: Record) -> None:
        """SIGKILL one component of one agent and restart it (the agent-side nemesis)."""
        agent = rng.choice(self.members)
        component = rng.choice(COMPONENTS)
        process = agent.procs[component]
        if component == "driver" and not process.alive:
            return  # its task is done: a new driver would just find nothing to do
        start = time.monotonic_ns()
        await process.restart()
        record(
            {
                "process": "nemesis",
                "op": "fault",
                "id": start,
                "invoke": start,
                "complete": time.monotonic_ns(),
                "outcome": "ok",
                "fault": "kill-agent",
                "targets": [f"{agent.bus}:{component}"],
                "window": [start, time.monotonic_ns()],
            }
        )

    async def wait_finished(self, timeout: float) -> bool:
        """True if every driver exited after its task's agent_output within ``timeout``."""
        with trio.move_on_after(timeout):
            for agent in self.members:
                while agent.procs["driver"].alive:
                    await trio.sleep(0.1)  # polling process exit
            return True
        return False

    async def record_outcome(self, record: Record) -> None:
        """Each bus as it ends up, and the ledger of side effects actually done."""
        async with Client(self.cluster.addresses, agent_token("reader"), timeout=60) as log:
            for agent in self.members:
                start = time.monotonic_ns()
                try:
                    entries = await log.read_all(agent.bus)
                except UnknownBus:
                    entries = []
                record(
                    {
                        "process": "final",
                        "op": "final_bus",
                        "id": start,
                        "invoke": start,
                        "complete": time.monotonic_ns(),
                        "outcome": "ok",
                        "bus": agent.bus,
                        "entries": [
                            [x.pos, x.type, x.body] for x in entries if x.type in e.ENTRY_TYPES
                        ],
                    }
                )
        lines = self.ledger_lines()
        now = time.monotonic_ns()
        record(
            {
                "process": "final",
                "op": "ledger",
                "id": now,
                "invoke": now,
                "complete": now,
                "outcome": "ok",
                "lines": lines,
            }
        )

    def stop(self) -> None:
        kill_all([p for agent in self.members for p in agent.procs.values()])
