"""Hooks end to end: harness sessions through the real ``logact hook`` command, gated by
``logact hook serve`` (or by ``logact agent voter/decider --watch``) running as processes
against a real 3-node cluster.

Each session starts after its gate is ready, so its bus is one the gate found on its own. The
hook runs as a harness runs it: a process per call, the harness's JSON payload on stdin, its
answer on stdout. Waits are for lines from the gate processes and for the hooks' answers (which
wait for the decision), all under ``trio.fail_after``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.core import entries as e
from logact.client.client import Client
from logact.config import shipped
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import agent_token
from logact.protocol.codec import Entry

pytestmark = pytest.mark.cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
#: Bound on each test: process start-ups (a few seconds each here) and every hook call.
DEADLINE = 180.0
#: The hooks' own bound on waiting for a decision: a gate that never decides fails the test.
DECISION_TIMEOUT = "60"
#: The shipped rules' reason for ``rm -rf``: the deny must carry it to the harness.
RM_REASON = "vetoed by rules (rule): recursive or forced rm"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "logact.cli.main", *args]


@dataclass
class Gate:
    """A long-running gate process: its stdout lines as they come, stderr in a file."""

    process: trio.Process
    errors: Path
    lines: list[str] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]
            self.changed.set()
            self.changed = trio.Event()
        self.changed.set()  # end of output: waiters look once more and give up

    async def wait_for_line(self, wanted: Callable[[str], bool]) -> str:
        while True:
            for line in self.lines:
                if wanted(line):
                    return line
            if self.process.returncode is not None or self.process.stdout is None:
                raise AssertionError(f"gate exited: {self.errors.read_text()[-2000:]}")
            await self.changed.wait()

    async def stop(self) -> int:
        """SIGTERM, and its exit code (bounded by the caller)."""
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


@asynccontextmanager
async def gate(argv: list[str], errors: Path, ready: Callable[[str], bool]) -> AsyncIterator[Gate]:
    """The gate process started and ready; killed on the way out if still running."""
    with errors.open("wb") as sink:
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=sink)
    running = Gate(process, errors)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(running.read)
            await running.wait_for_line(ready)
            yield running
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(10):
                await process.wait()


@dataclass
class Session:
    """One harness session: its fixtures' payloads with this session's id, sent to the hook."""

    cluster: LocalCluster
    name: str  # claude-code | codex
    user: str
    session: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def bus(self) -> str:
        return f"{self.name.replace('-', '_')}.{self.user}.{self.session}"

    def payload(self, name: str, **changes: Any) -> dict[str, Any]:
        folder = self.name.replace("-", "_")
        data = json.loads((FIXTURES / folder / f"{name}.json").read_text())
        return data | {"session_id": self.session} | changes

    async def hook(self, data: dict[str, Any]) -> trio.CompletedProcess[bytes]:
        argv = cli(
            "hook",
            self.name,
            "--config",
            str(self.cluster.config_path),
            "--token",
            agent_token("hook"),
            "--user",
            self.user,
            "--decision-timeout",
            DECISION_TIMEOUT,
        )
        return await trio.run_process(
            argv, stdin=json.dumps(data).encode(), capture_stdout=True, capture_stderr=True
        )

    async def pre(self, name: str, **changes: Any) -> dict[str, Any] | None:
        """A PreToolUse: the harness's decision (None: an empty answer, Codex's approval)."""
        ran = await self.hook(self.payload(name, **changes))
        assert ran.returncode == 0, ran.stderr
        if not ran.stdout.strip():
            return None
        decision: dict[str, Any] = json.loads(ran.stdout)["hookSpecificOutput"]
        return decision

    async def post(self, name: str) -> str:
        ran = await self.hook(self.payload(name))
        assert ran.returncode == 0 and ran.stdout == b"", ran
        return ran.stderr.decode()


async def read_bus(cluster: LocalCluster, bus: str) -> list[Entry]:
    async with Client(cluster.addresses, cluster.admin_token()) as admin:
        return await admin.read_all(bus)


def denied(decision: dict[str, Any] | None) -> str:
    assert decision is not None and decision["permissionDecision"] == "deny", decision
    return str(decision["permissionDecisionReason"])


def serve_ready(harness: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(f"ready: {harness} gate on ")


async def test_hook_serve_gates_claude_code_and_codex_sessions_started_after_it(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    config = str(cluster.config_path)
    claude = Session(cluster, "claude-code", user)
    codex = Session(cluster, "codex", user)
    other_claude = Session(cluster, "claude-code", user)
    serve = ["hook", "serve", "--config", config, "--harness"]
    with trio.fail_after(DEADLINE):
        async with (
            gate(
                cli(*serve, "claude-code"), tmp_path / "claude.err", serve_ready("Claude Code")
            ) as claude_gate,
            gate(cli(*serve, "codex"), tmp_path / "codex.err", serve_ready("Codex")) as codex_gate,
        ):
            allowed = await claude.pre("pre_bash")
            recorded = await claude.post("post_bash")
            vetoed = await claude.pre(
                "pre_bash", tool_use_id="toolu_01Veto", tool_input={"command": "rm -rf ~/src"}
            )
            edited = await claude.pre("pre_edit")
            elsewhere = await other_claude.pre("pre_write")
            codex_allowed = await codex.pre("pre_bash")
            codex_recorded = await codex.post("post_bash")
            codex_vetoed = await codex.pre("pre_bash_destructive")
            stopped = [await claude_gate.stop(), await codex_gate.stop()]
        claude_log = await read_bus(cluster, claude.bus)
        codex_log = await read_bus(cluster, codex.bus)

    assert allowed is not None and allowed["permissionDecision"] == "allow"
    assert "committed intent 0" in allowed["permissionDecisionReason"]
    assert "recorded for intent 0" in recorded
    assert denied(vetoed) == f"LogAct aborted intent 4 on bus {claude.bus}: {RM_REASON}"
    assert edited is not None and edited["permissionDecision"] == "allow"
    assert elsewhere is not None and elsewhere["permissionDecision"] == "allow"
    assert codex_allowed is None  # Codex: an empty answer lets the tool run
    assert "recorded for intent 0" in codex_recorded
    assert denied(codex_vetoed) == f"LogAct aborted intent 4 on bus {codex.bus}: {RM_REASON}"

    # Each part appended as its own principal; the hook's result names its real intent.
    assert [(r.type, r.author) for r in claude_log] == [
        ("intent", "hook"),
        ("vote", "rule-voter"),
        ("commit", "decider"),
        ("result", "hook"),
        ("intent", "hook"),
        ("vote", "rule-voter"),
        ("abort", "decider"),
        ("intent", "hook"),
        ("vote", "rule-voter"),
        ("commit", "decider"),
    ]
    assert e.Result.from_body(claude_log[3].body).intent_id == 0
    assert [r.type for r in codex_log] == [
        "intent",
        "vote",
        "commit",
        "result",
        "intent",
        "vote",
        "abort",
    ]

    # Both gates found the sessions on their own and stopped cleanly on SIGTERM.
    claude_errors = (tmp_path / "claude.err").read_text()
    assert (
        f"serving {claude.bus}" in claude_errors and f"serving {other_claude.bus}" in claude_errors
    )
    assert codex.bus not in claude_errors
    assert f"serving {codex.bus}" in (tmp_path / "codex.err").read_text()
    assert stopped == [128 + signal.SIGTERM] * 2
    for name in ("claude.err", "codex.err"):
        assert (tmp_path / name).read_text().splitlines()[-1] == "hook serve: stopped on SIGTERM"


async def test_voter_and_decider_watch_a_prefix_as_separate_processes(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    prefix = f"claude_code.{user}."
    common = ["--config", str(cluster.config_path), "--watch", prefix]
    voter = cli("agent", "voter", *common, "--kind", "rule", "--id", "rules", "--rules")
    voter.append(str(shipped("hook-rules.toml")))
    veto = json.dumps({"kind": "veto", "params": {"kinds": ["rule"]}})
    decider = cli("agent", "decider", *common, "--policy", veto)
    watching = f"ready: watching {prefix}".__eq__
    first, second = Session(cluster, "claude-code", user), Session(cluster, "claude-code", user)
    with trio.fail_after(DEADLINE):
        async with (
            gate(voter, tmp_path / "voter.err", watching),
            gate(decider, tmp_path / "decider.err", watching),
        ):
            allowed = await first.pre("pre_bash")
            vetoed = await second.pre("pre_bash", tool_input={"command": "rm -rf build"})
    assert allowed is not None and allowed["permissionDecision"] == "allow"
    assert denied(vetoed) == f"LogAct aborted intent 0 on bus {second.bus}: {RM_REASON}"
    for part in ("voter", "decider"):
        found = (tmp_path / f"{part}.err").read_text()
        assert f"watch {prefix}: serving {first.bus}" in found
        assert f"watch {prefix}: serving {second.bus}" in found
