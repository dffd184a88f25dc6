"""Hook round trips: PreToolUse -> intent -> decision -> allow/deny, PostToolUse -> result.

Most tests use an in-process memory log; the last ones run ``logact hook`` as a real process
against the shared 3-node cluster. Decisions come from ``stand_in_decider``: a few lines that
commit or abort every intent on one bus by a verdict function, so these tests pin the hook's
side alone. It is a test double, not a policy; the real gate (``logact hook serve``) is tested
end to end in test_hook_e2e.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from logact.agent.core import entries as e
from logact.agent.integrations.hooks import (
    Harness,
    HookResponse,
    LogOpener,
    parse_payload,
    run_hook,
)
from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.ports import free_ports
from logact.ops.test_config import agent_token
from logact.protocol.api import LogAPI
from logact.protocol.errors import Unavailable
from logact.server.config import Principal, Role
from logact.server.local import LocalLog, open_memory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hooks"
DIRS = {Harness.CLAUDE_CODE: "claude_code", Harness.CODEX: "codex"}
USER = "alice"
#: Bound on every wait in these tests; nothing here should come near it.
DEADLINE = 60.0

Verdict = Callable[[e.Intent], tuple[bool, str]]


def payload(harness: Harness, name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / DIRS[harness] / f"{name}.json").read_text())
    return data | changes


def no_recursive_delete(intent: e.Intent) -> tuple[bool, str]:
    """The stand-in's verdict: abort anything with ``rm -rf``, commit the rest."""
    command = str(getattr(intent.action, "arguments", {}).get("command", ""))
    if "rm -rf" in command:
        return False, "rule: recursive delete"
    return True, "rule: allowed"


async def stand_in_decider(
    log: LogAPI,
    bus: str,
    verdict: Verdict = no_recursive_delete,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Test double for the decider: commit or abort each intent on ``bus`` as it arrives."""
    task_status.started()
    async with aclosing(log.subscribe(bus, 0, ["intent"])) as intents:
        async for raw in intents:
            approved, reason = verdict(e.Intent.from_body(raw.body))
            decision = e.Commit(raw.pos, reason) if approved else e.Abort(raw.pos, reason)
            await log.append(bus, *decision.to_entry())


def shared(log: LogAPI) -> LogOpener:
    """An opener handing out one already open log (the hook must not close it)."""

    @asynccontextmanager
    async def opener() -> AsyncIterator[LogAPI]:
        yield log

    return opener


async def hook(
    harness: Harness, log: LogAPI, data: dict[str, Any], timeout: float = 10.0
) -> HookResponse:
    with trio.fail_after(DEADLINE):
        return await run_hook(
            harness, json.dumps(data), shared(log), decision_timeout=timeout, user=USER
        )


def bus_of(harness: Harness, data: dict[str, Any]) -> str:
    return parse_payload(harness, data, USER).bus


def decision(response: HookResponse) -> dict[str, Any]:
    assert response.exit_code == 0, response
    return json.loads(response.stdout)["hookSpecificOutput"]


async def entries(log: LogAPI, bus: str, etype: str) -> list[Any]:
    return [raw for raw in await log.read_all(bus) if raw.type == etype]


@pytest.fixture
async def memory_log() -> AsyncIterator[LocalLog]:
    async with open_memory() as log:
        yield log


ROUND_TRIPS = [
    (Harness.CLAUDE_CODE, "pre_bash", "post_bash", True),
    (Harness.CLAUDE_CODE, "pre_edit", "post_edit", True),
    (Harness.CLAUDE_CODE, "pre_write", "post_write", True),
    (Harness.CLAUDE_CODE, "pre_bash_failing", "post_bash_failure", False),
    (Harness.CLAUDE_CODE, "pre_bash_subagent", None, True),
    (Harness.CODEX, "pre_bash", "post_bash", True),
    (Harness.CODEX, "pre_apply_patch", "post_apply_patch", True),
]


@pytest.mark.parametrize(
    ("harness", "pre", "post", "ok"),
    ROUND_TRIPS,
    ids=[f"{h.value}-{p}" for h, p, *_ in ROUND_TRIPS],
)
async def test_allowed_call_then_result_with_the_real_intent_id(
    memory_log: LocalLog, harness: Harness, pre: str, post: str | None, ok: bool
) -> None:
    pre_data = payload(harness, pre)
    if post is None:  # a subagent's Post looks like its Pre plus a response
        post_data = pre_data | {"hook_event_name": "PostToolUse", "tool_response": {"stdout": ""}}
    else:
        post_data = payload(harness, post)
    bus = bus_of(harness, pre_data)
    # Something else first, so the intent is not at position 0.
    await memory_log.append(bus, "note", {"text": "session started"})
    async with trio.open_nursery() as nursery:
        await nursery.start(stand_in_decider, memory_log, bus)

        response = await hook(harness, memory_log, pre_data)
        if harness is Harness.CLAUDE_CODE:
            assert decision(response)["permissionDecision"] == "allow"
            assert "committed intent 1" in decision(response)["permissionDecisionReason"]
        else:
            assert response == HookResponse()  # Codex: empty stdout means proceed

        recorded = await hook(harness, memory_log, post_data)
        assert recorded.stdout == "" and recorded.exit_code == 0
        assert "recorded for intent 1" in recorded.stderr
        nursery.cancel_scope.cancel()

    [intent] = await entries(memory_log, bus, "intent")
    [result_raw] = await entries(memory_log, bus, "result")
    result = e.Result.from_body(result_raw.body)
    assert intent.pos == 1 and result.intent_id == intent.pos
    assert e.Intent.from_body(intent.body).action.call_id == pre_data["tool_use_id"]
    assert result.ok is ok
    assert (result.error is None) is ok


@pytest.mark.parametrize("harness", list(Harness))
async def test_denied_call_is_blocked_with_the_reason_and_no_result(
    memory_log: LocalLog, harness: Harness
) -> None:
    data = payload(harness, "pre_bash", tool_input={"command": "rm -rf build && make"})
    if harness is Harness.CODEX:
        data = payload(harness, "pre_bash_destructive")
    bus = bus_of(harness, data)
    async with trio.open_nursery() as nursery:
        await nursery.start(stand_in_decider, memory_log, bus)
        response = await hook(harness, memory_log, data)
        nursery.cancel_scope.cancel()
    verdict = decision(response)
    assert verdict["hookEventName"] == "PreToolUse"
    assert verdict["permissionDecision"] == "deny"
    assert verdict["permissionDecisionReason"] == (
        f"LogAct aborted intent 0 on bus {bus}: rule: recursive delete"
    )
    assert [r.type for r in await memory_log.read_all(bus)] == ["intent", "abort"]


@pytest.mark.parametrize("harness", list(Harness))
async def test_no_decision_in_time_is_a_deny(
    memory_log: LocalLog, harness: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    data = payload(harness, "pre_bash")
    response = await hook(harness, memory_log, data, timeout=30.0)
    verdict = decision(response)
    assert verdict["permissionDecision"] == "deny"
    assert "no decision for intent 0" in verdict["permissionDecisionReason"]
    assert "within 30 s" in verdict["permissionDecisionReason"]
    assert "fail closed" in verdict["permissionDecisionReason"]
    bus = bus_of(harness, data)
    assert [r.type for r in await memory_log.read_all(bus)] == ["intent"]  # left undecided


@pytest.mark.parametrize("harness", list(Harness))
async def test_post_without_a_matching_intent_appends_nothing(
    memory_log: LocalLog, harness: Harness
) -> None:
    post = payload(harness, "post_bash")
    bus = bus_of(harness, post)
    other = e.Intent(action=e.ToolCall("Bash", {"command": "ls"}, call_id="call_or_toolu_other"))
    await memory_log.append(bus, *other.to_entry())
    await memory_log.append(bus, *e.Commit(0, "ok").to_entry())
    response = await hook(harness, memory_log, post)
    assert response.stdout == "" and response.exit_code == 0
    assert f"no intent for tool_use_id {post['tool_use_id']!r}" in response.stderr
    assert (await memory_log.check_tail(bus)).tail == 2
    assert await entries(memory_log, bus, "result") == []


async def test_post_is_recorded_once(memory_log: LocalLog) -> None:
    harness = Harness.CODEX
    async with trio.open_nursery() as nursery:
        bus = bus_of(harness, payload(harness, "pre_bash"))
        await nursery.start(stand_in_decider, memory_log, bus)
        await hook(harness, memory_log, payload(harness, "pre_bash"))
        nursery.cancel_scope.cancel()
    first = await hook(harness, memory_log, payload(harness, "post_bash"))
    again = await hook(harness, memory_log, payload(harness, "post_bash"))
    assert "recorded" in first.stderr and "already has a result" in again.stderr
    assert len(await entries(memory_log, bus, "result")) == 1


async def test_post_without_tool_use_id_matches_name_and_arguments(memory_log: LocalLog) -> None:
    harness = Harness.CLAUDE_CODE
    pre = payload(harness, "pre_edit")
    post = payload(harness, "post_edit")
    del pre["tool_use_id"], post["tool_use_id"]
    bus = bus_of(harness, pre)
    async with trio.open_nursery() as nursery:
        await nursery.start(stand_in_decider, memory_log, bus)
        assert decision(await hook(harness, memory_log, pre))["permissionDecision"] == "allow"
        assert decision(await hook(harness, memory_log, pre))["permissionDecision"] == "allow"
        nursery.cancel_scope.cancel()
    # Two identical open calls: the result goes to the most recent one (intent 2).
    assert "recorded for intent 2" in (await hook(harness, memory_log, post)).stderr
    assert "recorded for intent 0" in (await hook(harness, memory_log, post)).stderr
    assert "no intent" in (await hook(harness, memory_log, post)).stderr


class DeadLog(LogAPI):
    """A log whose every request fails as an unreachable cluster does."""

    async def _call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        raise Unavailable("no node reachable among ['127.0.0.1:1']")

    async def _open_subscription(
        self, bus: str, start: int, types: list[str] | None
    ) -> AsyncIterator[Any]:
        raise Unavailable("no node reachable")
        yield  # pragma: no cover


@pytest.mark.parametrize("harness", list(Harness))
async def test_log_unavailable_is_a_deny_and_a_lost_post_is_only_reported(
    harness: Harness,
) -> None:
    response = await hook(harness, DeadLog(), payload(harness, "pre_bash"))
    verdict = decision(response)
    assert verdict["permissionDecision"] == "deny"
    assert "no node reachable" in verdict["permissionDecisionReason"]
    post = await hook(harness, DeadLog(), payload(harness, "post_bash"))
    assert post.stdout == "" and post.exit_code == 0
    assert "result not recorded" in post.stderr


async def test_a_token_without_intent_rights_is_a_deny(memory_log: LocalLog) -> None:
    reader = memory_log.as_principal(Principal("reader", (Role("reader", frozenset()),)))
    verdict = decision(
        await hook(Harness.CLAUDE_CODE, reader, payload(Harness.CLAUDE_CODE, "pre_bash"))
    )
    assert verdict["permissionDecision"] == "deny"
    assert "fail closed" in verdict["permissionDecisionReason"]


# --- the real command, as a process, against the shared cluster ---------------------------------


async def run_cli(
    cluster: LocalCluster, harness: str, data: dict[str, Any], *extra: str
) -> trio.CompletedProcess[bytes]:
    argv = [
        sys.executable,
        "-m",
        "logact.cli.main",
        "hook",
        harness,
        "--config",
        str(cluster.config_path),
        "--token",
        agent_token("hook"),
        "--user",
        USER,
        *extra,
    ]
    return await trio.run_process(
        argv, stdin=json.dumps(data).encode(), capture_stdout=True, capture_stderr=True, check=False
    )


@pytest.mark.cluster
async def test_cli_round_trip_against_a_cluster(cluster: LocalCluster) -> None:
    session = str(uuid.uuid4())
    pre = payload(Harness.CLAUDE_CODE, "pre_bash", session_id=session)
    post = payload(Harness.CLAUDE_CODE, "post_bash", session_id=session)
    denied = payload(
        Harness.CLAUDE_CODE,
        "pre_bash",
        session_id=session,
        tool_use_id="toolu_01Deny",
        tool_input={"command": "rm -rf /"},
    )
    bus = f"claude_code.{USER}.{session}"
    with trio.fail_after(DEADLINE):
        async with (
            Client(cluster.addresses, agent_token("decider")) as decider,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(stand_in_decider, decider, bus)
            allowed = await run_cli(cluster, "claude-code", pre, "--decision-timeout", "20")
            refused = await run_cli(cluster, "claude-code", denied, "--decision-timeout", "20")
            recorded = await run_cli(cluster, "claude-code", post)
            nursery.cancel_scope.cancel()
        async with Client(cluster.addresses, cluster.admin_token()) as admin:
            log = await admin.read_all(bus)

    assert allowed.returncode == 0, allowed.stderr
    verdict = json.loads(allowed.stdout)["hookSpecificOutput"]
    assert verdict["permissionDecision"] == "allow"
    assert refused.returncode == 0, refused.stderr
    verdict = json.loads(refused.stdout)["hookSpecificOutput"]
    assert verdict["permissionDecision"] == "deny"
    assert verdict["permissionDecisionReason"].endswith("rule: recursive delete")
    assert recorded.returncode == 0 and recorded.stdout == b""
    assert [(r.type, r.author) for r in log] == [
        ("intent", "hook"),
        ("commit", "decider"),
        ("intent", "hook"),
        ("abort", "decider"),
        ("result", "hook"),
    ]
    result = e.Result.from_body(log[4].body)
    assert result.intent_id == log[0].pos and result.ok


@pytest.mark.cluster
async def test_cli_codex_fails_closed_without_a_decider(cluster: LocalCluster) -> None:
    data = payload(Harness.CODEX, "pre_bash", session_id=str(uuid.uuid4()))
    with trio.fail_after(DEADLINE):
        result = await run_cli(cluster, "codex", data, "--decision-timeout", "0.5")
    assert result.returncode == 0
    verdict = json.loads(result.stdout)["hookSpecificOutput"]
    assert verdict["permissionDecision"] == "deny"
    assert "no decision for intent 0" in verdict["permissionDecisionReason"]


# --- the click commands' own fail-closed paths (no cluster needed) ------------------------------


def hook_process(
    args: list[str], stdin: bytes | None, *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The hook as a harness runs it: a process, a payload on stdin (None: stdin stays open
    and silent, as a stuck pipe would), its answer on stdout and its exit code."""
    argv = [sys.executable, "-m", "logact.cli.main", "hook", *args]
    if stdin is not None:
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=120, env=env)
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.wait(timeout=120)  # stdin stays open meanwhile; the answers are a few KB
        return subprocess.CompletedProcess(
            argv, proc.returncode, proc.stdout.read(), proc.stderr.read()
        )


def denial(result: subprocess.CompletedProcess[bytes]) -> str:
    """The reason of a deny that both harnesses honour (JSON on stdout, exit code 0)."""
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    verdict = json.loads(result.stdout)["hookSpecificOutput"]
    assert verdict["permissionDecision"] == "deny", verdict
    return str(verdict["permissionDecisionReason"])


@pytest.mark.parametrize("harness", ["claude-code", "codex"])
def test_cli_denies_when_no_node_is_reachable(harness: str) -> None:
    [port] = free_ports(1)
    data = json.dumps(payload(Harness(harness.replace("-", "_")), "pre_bash")).encode()
    args = [harness, "--nodes", f"127.0.0.1:{port}", "--token", "t", "--timeout", "1"]
    assert "no node reachable" in denial(hook_process(args, data))


@pytest.mark.parametrize("harness", ["claude-code", "codex"])
def test_cli_denies_when_stdin_stays_open(harness: str, tmp_path: Path) -> None:
    """The payload never ends: after its stdin guard the hook denies and exits 0 (it used to
    abort with 134 at shutdown, which both harnesses take as "run the tool")."""
    args = [harness, "--config", str(tmp_path / "missing.toml")]
    assert "could not read stdin" in denial(hook_process(args, None))


def test_cli_denies_when_the_node_never_answers() -> None:
    with socket.socket() as silent:  # accepts connections, never answers a byte
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host, port = silent.getsockname()
        data = json.dumps(payload(Harness.CLAUDE_CODE, "pre_bash")).encode()
        args = ["claude-code", "--nodes", f"{host}:{port}", "--token", "t", "--timeout", "600"]
        assert "not running this tool" in denial(
            hook_process([*args, "--decision-timeout", "1"], data)
        )


def test_the_hook_answers_a_deny_even_if_everything_below_it_hangs() -> None:
    """The last resort: the alarm set at start answers for a hook stuck anywhere."""
    program = (
        "import threading\n"
        "from logact.agent.integrations.hooks import Harness\n"
        "from logact.cli.hook import _answer_in_time\n"
        "_answer_in_time(Harness.CODEX, 1)\n"
        "threading.Event().wait()\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60)
    assert "no answer within 1s" in denial(result)


def test_cli_denies_without_a_usable_config(tmp_path: Path) -> None:
    data = json.dumps(payload(Harness.CODEX, "pre_bash")).encode()
    env = {k: v for k, v in os.environ.items() if k != "LOGACT_TOKEN"}
    args = ["codex", "--config", str(tmp_path / "missing.toml")]
    assert "missing.toml" in denial(hook_process(args, data, env=env))


def test_cli_denies_garbage_and_only_reports_a_lost_post(tmp_path: Path) -> None:
    args = ["claude-code", "--config", str(tmp_path / "missing.toml")]
    assert "cannot read" in denial(hook_process(args, b"{not json"))
    post = json.dumps(payload(Harness.CLAUDE_CODE, "post_bash")).encode()
    lost = hook_process(args, post)
    assert lost.returncode == 0 and lost.stdout == b""
    assert b"result not recorded" in lost.stderr
