"""The escapes of issue 14, each tried by a real shell action in the real bubblewrap sandbox
(through the executor's tool registry), and each closed."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.core.entries import ToolCall
from logact.agent.tools.registry import ToolOutcome, ToolRegistry, Workspace, standard_tools
from logact.agent.tools.sandbox import PIDS_HIERARCHY, ResourceLimits, Sandbox, unavailable

UNAVAILABLE = unavailable()

pytestmark = [
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no sandbox: {UNAVAILABLE}"),
    pytest.mark.process,
]

SECRET = "s3cret-token-of-the-executor"


@pytest.fixture
def tools(ws: Path) -> ToolRegistry:
    return standard_tools(ws, shell_timeout=10, env_allow=("PATH", "LOGACT_TOKEN"))


async def shell(tools: ToolRegistry, command: str, **arguments: object) -> ToolOutcome:
    with trio.fail_after(30):
        return await tools.run(ToolCall("shell", {"command": command, **arguments}))


async def test_the_executors_environment_and_command_line_are_out_of_sight(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = await shell(
        tools,
        "cat /proc/$PPID/environ /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; "
        "ls /proc | grep -c '^[0-9]'",
    )
    assert out.ok, out
    assert SECRET not in out.output
    own_command_line = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert own_command_line.strip() not in out.output
    assert int(out.output.split()[-1]) <= 5  # only the sandbox's few processes exist


async def test_only_allow_listed_variables_reach_the_action(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LOGACT_TOKEN", "allowed-by-this-registry")
    out = await shell(tools, "env")
    assert out.ok and SECRET not in out.output
    assert "LOGACT_TOKEN=allowed-by-this-registry" in out.output


async def test_files_outside_the_workspace_cannot_be_read_or_written(
    tools: ToolRegistry, tmp_path: Path
) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(f'token = "{SECRET}"\n')
    out = await shell(
        tools, f"cat {config}; cat /etc/shadow; echo pwned > {config}; touch /usr/pwned; true"
    )
    assert out.ok and SECRET not in out.output
    assert config.read_text() == f'token = "{SECRET}"\n'
    assert not Path("/usr/pwned").exists()
    out = await shell(tools, "echo here > /tmp/private && cat /tmp/private")
    assert out.output.strip() == "here" and not Path("/tmp/private").exists()


async def test_the_workspace_is_writable(tools: ToolRegistry, ws: Path) -> None:
    out = await shell(tools, "mkdir -p sub && echo made > sub/file && python3 -c 'print(6*7)'")
    assert out.ok and out.output.strip() == "42"
    assert (ws / "sub" / "file").read_text() == "made\n"


async def test_the_network_is_off(tools: ToolRegistry) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        out = await shell(
            tools,
            f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 3)\"",
        )
        assert not out.ok, out
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected


async def test_every_capability_is_dropped(tools: ToolRegistry) -> None:
    out = await shell(tools, "grep CapEff /proc/self/status")
    assert out.ok and out.output.split()[-1] == "0000000000000000", out


def running(marker: str) -> bool:
    for pid in os.listdir("/proc"):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


async def gone(marker: str) -> None:
    """Wait (bounded) until no process on the host has ``marker`` in its command line."""
    with trio.fail_after(10):
        while running(marker):
            await trio.sleep(0.05)


async def test_setsid_children_die_with_the_action(tools: ToolRegistry, ws: Path) -> None:
    # Finished normally: what it left behind in the background is killed with the sandbox.
    out = await shell(tools, "setsid sleep 31.3371 & nohup sleep 31.3372 & echo started")
    assert out.ok and "started" in out.output
    await gone("31.337")
    # Timed out: the whole sandbox is killed, a new session's children included.
    out = await shell(
        tools, "setsid sh -c 'sleep 31.3373; touch escaped' & sleep 31.3374", timeout=1
    )
    assert not out.ok and "timed out" in (out.error or "")
    await gone("31.337")
    assert not (ws / "escaped").exists()


async def test_rlimits_bind_the_action(ws: Path) -> None:
    limits = ResourceLimits(file_bytes=1 << 20, open_files=64)
    tools = standard_tools(ws, sandbox=Sandbox(limits=limits))
    out = await shell(tools, "ulimit -n; head -c 3000000 /dev/zero > big")
    assert not out.ok  # SIGXFSZ: file size limit exceeded
    assert out.output.split()[0] == "64"
    assert (ws / "big").stat().st_size <= 1 << 20


async def test_without_a_sandbox_nothing_runs_and_the_reason_says_how_to_fix_it(
    ws: Path,
) -> None:
    tools = standard_tools(ws, sandbox=Sandbox(bwrap="no-such-bubblewrap"))
    out = await shell(tools, "touch ran")
    assert not out.ok and "apt-get install bubblewrap" in (out.error or ""), out
    assert not (ws / "ran").exists()


async def test_file_tools_refuse_hard_links_to_files_outside(
    tools: ToolRegistry, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    os.link(outside, ws / "linked.txt")
    for call in (
        ToolCall("read_file", {"path": "linked.txt"}),
        ToolCall("write_file", {"path": "linked.txt", "content": "pwned"}),
        ToolCall("write_file", {"path": "linked.txt", "content": "pwned", "append": True}),
    ):
        out = await tools.run(call)
        assert not out.ok and "hard links" in (out.error or ""), out
        assert SECRET not in out.output
    assert outside.read_text() == SECRET


@pytest.mark.skipif(
    not os.access(PIDS_HIERARCHY, os.W_OK), reason="no writable v1 pids cgroup hierarchy"
)
async def test_a_fork_bomb_meets_the_process_limit_even_as_root(ws: Path) -> None:
    """RLIMIT_NPROC does not bind root; the action's own pids cgroup does."""
    tools = standard_tools(ws, sandbox=Sandbox(limits=ResourceLimits(processes=16)))
    out = await shell(tools, "for i in $(seq 1 64); do sleep 3 & done; wait")
    assert not out.ok and "Cannot fork" in out.output, out
    assert not list(PIDS_HIERARCHY.glob(f"logact-{os.getpid()}-*"))  # removed after the action


async def test_limits_hold_in_an_executor_holding_many_descriptors(ws: Path) -> None:
    """The executor may hold more descriptors than the action's limit (a long-running
    process does): the action still starts, with the lower limit."""
    held = [open(os.devnull) for _ in range(300)]  # noqa: SIM115
    try:
        tools = standard_tools(ws, sandbox=Sandbox(limits=ResourceLimits(open_files=64)))
        out = await shell(tools, "ulimit -n")
    finally:
        for handle in held:
            handle.close()
    assert out.ok and out.output.split() == ["64"], out


# --- program tools: how an application's untrusted tool runs --------------------------------

PROGRAM = """\
import json, socket, sys
args = json.load(sys.stdin)
open("from-program.txt", "w").write(args["text"])
for attempt in ("open(sys.argv[1], 'a').write('x')", "open(sys.argv[2]).read()"):
    try:
        exec(attempt)
        print("escaped:", attempt)
    except OSError:
        pass
if "port" in args:
    try:
        socket.create_connection(("127.0.0.1", args["port"]), 3).close()
        print("connected")
    except OSError as exc:
        print("no network:", exc)
print("done", args["text"])
"""


def program_tools(ws: Path, tmp_path: Path, *, network: bool = False, **kw: Any) -> ToolRegistry:
    """A registry with one program tool: PROGRAM in a read-only directory outside the
    workspace, next to a secret it must not read."""
    tool_dir = tmp_path / "tool"
    tool_dir.mkdir()
    (tool_dir / "tool.py").write_text(PROGRAM)
    secret = tmp_path / "secret.toml"
    secret.write_text(SECRET)
    workspace = Workspace(ws, shell_timeout=10, **kw)
    registry = ToolRegistry()
    argv = ["/usr/bin/python3", str(tool_dir / "tool.py"), str(tool_dir / "tool.py"), str(secret)]
    registry.register(
        "tool",
        workspace.program(argv, network=network, read_only=[str(tool_dir)]),
        description="a tool handling untrusted input",
        schema={"type": "object", "properties": {"text": {"type": "string"}}},
    )
    return registry


async def run_tool(registry: ToolRegistry, **arguments: object) -> ToolOutcome:
    with trio.fail_after(30):
        return await registry.run(ToolCall("tool", arguments))


async def test_a_program_tool_gets_its_arguments_and_only_the_workspace(
    ws: Path, tmp_path: Path
) -> None:
    out = await run_tool(program_tools(ws, tmp_path), text="héllo")
    assert out.ok, out
    assert out.output.split("\n")[-2:] == ["done héllo", ""]
    assert "escaped" not in out.output and SECRET not in out.output
    assert (ws / "from-program.txt").read_text() == "héllo"
    assert (tmp_path / "tool" / "tool.py").read_text() == PROGRAM


@pytest.mark.parametrize("network", [False, True])
async def test_a_program_tool_has_the_network_only_if_its_registration_allows_it(
    ws: Path, tmp_path: Path, network: bool
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out = await run_tool(program_tools(ws, tmp_path, network=network), text="x", port=port)
    assert out.ok, out
    assert ("connected" in out.output) is network
    assert ("no network" in out.output) is not network


async def test_a_program_tool_without_a_sandbox_does_not_run(ws: Path, tmp_path: Path) -> None:
    registry = program_tools(ws, tmp_path, sandbox=Sandbox(bwrap="no-such-bubblewrap"))
    out = await run_tool(registry, text="x")
    assert not out.ok and "apt-get install bubblewrap" in (out.error or ""), out
    assert not (ws / "from-program.txt").exists()


def test_a_program_tool_needs_absolute_read_only_paths(ws: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        Workspace(ws).program(["/usr/bin/true"], read_only=["relative/dir"])
    with pytest.raises(ValueError, match="absolute"):
        Workspace(ws).program(["/usr/bin/true"], read_only=["/"])
