"""``logact agent run --watch PREFIX`` as a real process against the shared 3-node cluster: a
whole agent on every bus under the prefix, buses created after it started included, each acting
in its own directory of the workspace; a bus outside the prefix untouched; drivers that wait for
the next mail instead of exiting; a clean stop on SIGTERM; usage errors in one line.

Waits are for the lines the process prints (``ready: watching``, each part's activity) under
``trio.fail_after``; what happened is then read back from the buses with an admin client.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.integrations.mailbox import send_mail
from logact.agent.models.llm import tool_call
from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import agent_token
from logact.protocol.codec import Entry

from .test_hook_e2e import cli, gate, read_bus

pytestmark = pytest.mark.cluster

#: Bound on each test: process start-ups (a few seconds each here) and two agents' work.
DEADLINE = 180.0

#: The scripted driver of every bus: write notes.txt, answer; a second task gets a second answer.
SCRIPT = [
    {"tool_calls": [tool_call("write_file", {"path": "notes.txt", "content": "hello"}, "c1")]},
    {"content": "done: wrote notes.txt"},
    {"content": "second task: nothing to do"},
]


async def logact(*args: str) -> trio.CompletedProcess[bytes]:
    """One ``logact`` command run to completion (bounded by the caller's deadline)."""
    return await trio.run_process(cli(*args), capture_stdout=True, capture_stderr=True, check=False)


def folded(bus: str, entries: Sequence[Entry]) -> BusState:
    """The bus as every component sees it."""
    state = BusState(bus)
    for entry in entries:
        state.apply(entry)
    return state


async def test_agent_run_watch_serves_a_whole_agent_on_each_new_bus_in_its_own_workspace(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    prefix = f"demo-{uuid.uuid4().hex[:8]}."
    one, two = f"{prefix}one", f"{prefix}team/two"  # a '/' in an id: one directory all the same
    outside = f"{prefix[:-1]}/one"  # starts like the prefix, is not under it
    workspace = tmp_path / "ws"
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    config = ["--config", str(cluster.config_path)]
    argv = cli(
        "agent", "run", *config, "--watch", prefix, "--workspace", str(workspace),
        "--llm", "script", "--script", str(script),
    )  # fmt: skip
    errors = tmp_path / "run.err"

    async def mail(bus: str, text: str) -> None:
        """What ``logact mail --create`` sends (a new bus starts with it), as the mailer."""
        async with Client(cluster.addresses, agent_token("mailer"), timeout=20) as log:
            await send_mail(log, bus, "ann", text)

    printed: list[str] = []
    waiting_for = "ready: watching"
    try:
        with trio.fail_after(DEADLINE):
            async with gate(argv, errors, f"ready: watching {prefix}".__eq__) as running:
                printed = running.lines

                async def answered(bus: str, text: str) -> None:
                    nonlocal waiting_for
                    waiting_for = f"INFO {bus}: answered: {text}"
                    await running.wait_for_line(lambda line: waiting_for in line)

                await mail(outside, "write notes")  # first, so the watch lists it many times
                await mail(one, "write notes")
                await mail(two, "write notes")
                await answered(one, "done: wrote notes.txt")
                await answered(two, "done: wrote notes.txt")
                await mail(one, "anything else?")  # its driver waited for this mail
                await answered(one, "second task: nothing to do")
                said_before = len(errors.read_text())
                waiting_for = "the end after SIGTERM"
                stopped = await running.stop()
            logs = {bus: await read_bus(cluster, bus) for bus in (one, two, outside)}
    except trio.TooSlowError:
        pytest.fail(
            f"no {waiting_for!r} after {DEADLINE}s; stdout:\n"
            + "\n".join(printed)
            + f"\nstderr:\n{errors.read_text()}"
        )

    assert running.lines[:4] == [
        "driver: model scripted",
        "voters: rule (no --rules: allows everything), llm (scripted, approves every action)",
        'decider: veto {"kinds": ["rule", "llm"]}, deadline 120 s',
        f"ready: watching {prefix}",
    ]
    # Each bus: its task run by a whole agent, every part appending as its own principal.
    for bus in (one, two):
        state = folded(bus, logs[bus])
        [written] = state.intents.values()
        assert written.committed and written.result is not None and written.result.ok
        assert {vote.voter_id for _, vote in written.votes} == {"rules", "llm"}
        authors = {raw.type: raw.author for raw in logs[bus]}
        assert authors["intent"] == "driver" and authors["commit"] == "decider"
        assert authors["result"] == "executor"
    outputs = [o.text for _, o in [*folded(one, logs[one]).of_type(e.AgentOutput)]]
    assert outputs == ["done: wrote notes.txt", "second task: nothing to do"]
    # ... in its own directory of the workspace, and nowhere else.
    assert sorted(p.relative_to(workspace).as_posix() for p in workspace.rglob("*")) == [
        f"{prefix}one",
        f"{prefix}one/notes.txt",
        f"{prefix}team%2Ftwo",
        f"{prefix}team%2Ftwo/notes.txt",
    ]
    assert (workspace / f"{prefix}team%2Ftwo" / "notes.txt").read_text() == "hello"
    # The bus outside the prefix: its mail, nothing else; never served.
    assert [(raw.type, raw.author) for raw in logs[outside]] == [("mail", "mailer")]
    said = errors.read_text()
    assert f"watch {prefix}: serving {one}" in said and f"watch {prefix}: serving {two}" in said
    assert outside not in said
    # SIGTERM: one line, exit 143, no traceback.
    assert stopped == 128 + signal.SIGTERM, said
    assert said[said_before:] == "stopped by SIGTERM\n", said
    assert "Traceback" not in said + "\n".join(running.lines)


async def test_agent_run_refuses_task_with_watch_and_wants_one_target() -> None:
    """Usage errors, before anything connects: one line, exit 2."""
    common = ["--config", "no-such-config.toml", "--workspace", "ws"]
    runs: list[trio.CompletedProcess[bytes]] = []
    with trio.fail_after(DEADLINE):
        for extra in (
            ["--watch", "demo.", "--task", "write notes"],
            [],
            ["--bus", "demo.a", "--watch", "demo."],
        ):
            runs.append(await logact("agent", "run", *common, *extra))
    with_task, neither, both = runs
    for ran, message in (
        (with_task, "--task is for one bus (--bus); with --watch, give each bus its task"),
        (neither, "give --bus BUS or --watch PREFIX (one of them)"),
        (both, "give --bus BUS or --watch PREFIX (one of them)"),
    ):
        stderr = ran.stderr.decode()
        assert ran.returncode == 2 and ran.stdout == b"", stderr
        assert stderr.startswith("error: ") and message in stderr, stderr
        assert stderr.count("\n") == 1, stderr
