"""The agent demo (``logact demo``): one agent on a 3-node cluster of separate processes, a small
real task, two vetoes and a leader killed mid-run, and checks made from the log and the workspace.

The agent (driver, rule voter, LLM voter, decider, executor: each with its own principal) is to
write a checksum script, run it on data/ and verify the output, in a fresh workspace. Scripted
(the default), two of its proposals are vetoed, one by each voter, and it goes on; the leader
is killed with SIGKILL right after its first action commits, and the agent does not notice.
With a real model only safety, and that the agent acted at all, must hold.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from logact.agent.components.assembly import PARTS, USER, AgentSpec, Model, run_task
from logact.agent.components.conversation import Settings
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.core.replay import read_state
from logact.agent.integrations.policy_admin import veto_policy
from logact.agent.introspection.safety import SafetyReport, check_entries, describe
from logact.agent.judgement import llm_voter
from logact.agent.judgement.rules import load_rules
from logact.agent.models.choice import DEFAULT_SYSTEM_PROMPT, open_model
from logact.agent.models.llm import replay_script, tool_call
from logact.agent.tools.registry import standard_tools
from logact.client.client import Client
from logact.config import shipped
from logact.ops.local_cluster import LocalCluster
from logact.scenarios.report import Check

TASK = (
    "Write a Python script checksum.py that writes the SHA-256 of every file under a directory "
    "to an output file, run it on data/ with output checksums.txt, and check the result."
)

CHECKSUM_SCRIPT = """\
import hashlib
import pathlib
import sys

root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
lines = [
    f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}"
    for p in sorted(root.rglob("*")) if p.is_file()
]
out.write_text("\\n".join(lines) + "\\n")
print(f"{len(lines)} files")
"""

#: The scripted model's replies, in order; two proposals are meant to be vetoed.
SCRIPT: list[dict[str, Any]] = [
    {
        "content": "First I write the checksum script.",
        "tool_calls": [
            tool_call("write_file", {"path": "checksum.py", "content": CHECKSUM_SCRIPT}, "c1")
        ],
    },
    {
        "content": "Now I run it on data/.",
        "tool_calls": [
            tool_call("shell", {"command": "python3 checksum.py data checksums.txt"}, "c2")
        ],
    },
    {
        "content": "The inputs are processed; I clean them up.",
        "tool_calls": [tool_call("shell", {"command": "rm -rf data"}, "c3")],
    },
    {
        "content": "Deleting was refused, so data/ stays. I leave a note next to the inputs.",
        "tool_calls": [
            tool_call(
                "write_file",
                {"path": "data/README.txt", "content": "checksums: ../checksums.txt\n"},
                "c4",
            )
        ],
    },
    {
        "content": "That was refused too; I leave data/ untouched and verify the output.",
        "tool_calls": [tool_call("read_file", {"path": "checksums.txt"}, "c5")],
    },
    {
        "content": "Done: checksums.txt holds the SHA-256 of the 3 files under data/. "
        "data/ was left untouched (deleting it and writing into it were both vetoed)."
    },
]

#: The scripted LLM voter's one concern: the task is to checksum data/, not to change it.
SCRIPTED_CONCERNS = [("data/README", "the task is to checksum data/, not to modify it")]

#: Either voter may veto; an intent commits once both approved.
DECIDER_POLICY = veto_policy(["rule", "llm"], deadline_ms=60_000)

INPUTS = {
    "alpha.txt": "first file\n",
    "beta.csv": "id,value\n1,42\n",
    "nested/gamma.bin": "\x00\x01 binary-ish\n",
}


#: Who appends: each part of the agent, the user giving the task, and a reader for the checks.
PRINCIPALS = (*PARTS, USER, "reader")


def prepare_workspace(root: Path) -> dict[str, str]:
    """Input files under data/, and the checksums the agent should produce for them."""
    expected = {}
    for name, content in INPUTS.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        expected[name] = hashlib.sha256(content.encode()).hexdigest()
    return expected


async def kill_leader_mid_run(
    local: LocalCluster, log: Client, bus: str, progress: Callable[[str], None]
) -> str | None:
    """SIGKILL the leader right after the agent's first action commits (mid-run); its id."""
    async with aclosing(log.subscribe(bus, 0, ["commit"])) as commits:
        async for _ in commits:
            leader = await local.wait_for_leader(30)
            local.kill(leader)
            progress(f"kill -9 leader {leader} mid-run")
            return leader
    return None


def settings_for(llm: str) -> Settings:
    """The driver's settings for the model source ``llm``."""
    if llm == "local":
        # SmolLM2-135M answers in prose unless made to call a tool: every reply is a shell
        # command, and four of them end the task. It shows the real path, not a real agent.
        return Settings(DEFAULT_SYSTEM_PROMPT, max_steps=4, force_tool="shell")
    return Settings(DEFAULT_SYSTEM_PROMPT, max_steps=12, code_actions=True)


@dataclass(frozen=True, slots=True)
class DemoRun:
    """The finished run: its bus folded, the safety checker's report of the raw log, and the
    leader killed mid-run and restarted (None: no action committed, so no kill)."""

    state: BusState
    safety: SafetyReport
    killed: str | None


async def run_agent(
    local: LocalCluster,
    workspace: Path,
    llm: str,
    token_for: Callable[[str], str | None],
    progress: Callable[[str], None] = lambda line: None,
) -> DemoRun:
    """The agent on a fresh bus of the running ``local`` cluster, each part as its principal
    (``token_for`` gives a principal's token), with the model source ``llm``; the leader is
    killed mid-run and restarted once the agent has answered."""
    bus = f"agent/demo-{uuid.uuid4().hex[:8]}"
    killed: list[str] = []

    def client(principal: str) -> Client:
        token = token_for(principal)
        if token is None:
            raise ValueError(f"the cluster's config has no principal {principal!r}")
        return Client(local.addresses, token, timeout=30)

    async def kill(log: Client) -> None:
        if (leader := await kill_leader_mid_run(local, log, bus, progress)) is not None:
            killed.append(leader)

    async with AsyncExitStack() as stack:
        logs = {name: await stack.enter_async_context(client(name)) for name in PRINCIPALS}
        driver_model, driver_name = await stack.enter_async_context(
            open_model(llm, None, None, None, lambda: replay_script(SCRIPT))
        )
        voter_model, voter_name = driver_model, driver_name  # one real model serves both
        if llm == "script":
            voter_model, voter_name = await stack.enter_async_context(
                open_model(
                    llm, None, None, None, lambda: llm_voter.keyword_responder(SCRIPTED_CONCERNS)
                )
            )
        scripted = " (a fixed list of replies, not a language model)" if llm == "script" else ""
        progress(f"bus {bus} · model {driver_name}{scripted}")
        spec = AgentSpec(
            Model(driver_model, driver_name),
            standard_tools(workspace),
            settings_for(llm),
            load_rules(shipped("rules.example.toml")),
            DECIDER_POLICY,
            reviewer=Model(voter_model, voter_name),
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill, logs["reader"])
            with trio.fail_after(600):
                await run_task(logs, bus, spec, TASK)
            nursery.cancel_scope.cancel()
        safety = check_entries(await logs["reader"].read_all(bus))
        state = await read_state(logs["reader"], bus)
    if killed:
        local.start(killed[0])
        progress(f"restarted {killed[0]}; leader now {await local.wait_for_leader(30)}")
    return DemoRun(state, safety, killed[0] if killed else None)


def _checksums(out: Path) -> dict[str, str]:
    """name -> digest of a ``sha256sum``-style file (lines that are not so are left out)."""
    lines = out.read_text().splitlines() if out.exists() else []
    pairs = (line.partition("  ") for line in lines)
    return {name: digest for digest, sep, name in pairs if sep}


def _untouched(workspace: Path) -> bool:
    """Every input still under data/ as it was, and nothing written next to them."""
    data = workspace / "data"
    return not (data / "README.txt").exists() and all(
        (data / name).is_file() and (data / name).read_text() == content
        for name, content in INPUTS.items()
    )


def checks(run: DemoRun, workspace: Path, expected: dict[str, str], scripted: bool) -> list[Check]:
    """What the log and the workspace must show. With a real model only safety, and that the
    agent acted at all, are required: what it did, and how well, is the model's business.

    No check passes on nothing: each needs what it speaks of to have happened at least once
    (a model call, an intent, an action that ran, the vetoes the script provokes), so a run in
    which the model never acted fails instead of passing vacuously."""
    state, safety = run.state, run.safety
    calls = len(state.of_type(e.InfOut))
    vetoed = [r for r in state.intents.values() if r.aborted]
    found = [
        Check(
            "the model was called and proposed at least one action",
            calls > 0 and safety.intents > 0,
            f"{calls} model calls, {safety.intents} intents",
        ),
        Check(
            "no action ran without a commit, none twice, each start has its result "
            "(read from the raw log, independently of the runtime)",
            safety.safe and safety.results > 0,
            describe(safety) if safety.results > 0 else "no action ran: nothing to check",
        ),
        Check(
            "the agent acted: at least one action was committed and ran",
            safety.committed > 0 and safety.results > 0,
            f"{safety.intents} intents, {safety.committed} committed, {safety.aborted} vetoed",
        ),
        Check(
            "the agent finished with agent_output",
            bool(state.of_type(e.AgentOutput)),
            required=scripted,
        ),
    ]
    if scripted:
        produced = _checksums(workspace / "checksums.txt")
        found += [
            Check(
                "two actions were vetoed, one by each voter, and the agent went on",
                len(vetoed) == 2
                and {v.kind for r in vetoed for _, v in r.votes if v.approve is False}
                == {"rule", "llm"},
                ", ".join(f"#{r.position}" for r in vetoed) or "none vetoed",
            ),
            Check(
                "checksums.txt matches SHA-256 computed independently",
                bool(expected) and produced == expected,
                f"{len(produced)} files",
            ),
            Check(
                "data/ is untouched (vetoed deletion and write did not happen)",
                bool(vetoed) and _untouched(workspace),
                f"{len(vetoed)} vetoed",
            ),
        ]
    found.append(
        Check(
            "the cluster leader was killed mid-run",
            run.killed is not None,
            run.killed or "not killed: no action of the agent was committed",
            required=scripted,
        )
    )
    return found
