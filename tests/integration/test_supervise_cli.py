"""`logact supervise` against the real cluster: advice and gossip mailed once, as the mailer."""

from __future__ import annotations

import subprocess
import sys

import trio

from logact.agent.core import entries as e
from logact.agent.introspection.supervisor import ADVICE, GOSSIP
from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster

from .test_health_cli import read, unique_bus


def logact_supervise(cluster: LocalCluster, *args: str) -> str:
    command = [sys.executable, "-m", "logact.cli.main", "supervise", "--config"]
    done = subprocess.run(
        [*command, str(cluster.config_path), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def busy_bus(cluster: LocalCluster, bus: str, durations: list[int], path: str) -> list[int]:
    """An open task and shell actions that ran for ``durations`` ms (as the log records them)."""
    async with Client(cluster.addresses, cluster.admin_token(), timeout=30) as log:
        await log.append(bus, *e.AgentInput("hash every folder").to_entry())
        intents = []
        for ms in durations:
            action = e.ToolCall("shell", {"command": f"python3 slow_sha.py {path}"})
            intent = await log.append(bus, *e.Intent(action).to_entry())
            await log.append(bus, *e.Commit(intent, "ok").to_entry())
            await log.append(bus, *e.ExecStart(intent).to_entry())
            await log.append(bus, *e.Result(intent, ok=True, duration_ms=ms).to_entry())
            intents.append(intent)
        return intents


def test_advice_is_mailed_once_to_an_agent_that_works_slowly(cluster: LocalCluster) -> None:
    slow, fast = unique_bus("supervise"), unique_bus("supervise")
    # The log says three actions of ~1 h each: they dominate any elapsed time the test takes.
    hour = 3_600_000
    intents = trio.run(busy_bus, cluster, slow, [hour, hour, hour], "data/f000")
    trio.run(busy_bus, cluster, fast, [5, 5, 5], "data/f000")
    printed = logact_supervise(cluster, "--bus", slow, "--bus", fast, "--rounds", "2",
                               "--interval", "0")  # fmt: skip
    assert f"{slow}#" in printed and fast not in printed
    state = trio.run(read, cluster, slow)
    ((raw, mail),) = state.of_type(e.Mail)
    assert raw.author == "mailer" and mail.sender == "supervisor" and mail.subject == ADVICE
    assert "3 shell actions took a median of 3600.0 s" in mail.text
    assert raw.pos > intents[-1]
    assert not trio.run(read, cluster, fast).of_type(e.Mail)


def test_gossip_tells_each_agent_what_its_peers_did(cluster: LocalCluster) -> None:
    prefix = unique_bus("gossip") + "/"
    a, b = prefix + "a", prefix + "b"
    trio.run(busy_bus, cluster, a, [5], "data/a")
    trio.run(busy_bus, cluster, b, [5, 5], "data/b")
    logact_supervise(cluster, "--watch", prefix, "--no-advise", "--gossip", "--rounds", "2",
                     "--interval", "0")  # fmt: skip
    for bus, peer, path in ((a, b, "data/b"), (b, a, "data/a")):
        ((_, mail),) = trio.run(read, cluster, bus).of_type(e.Mail)
        assert mail.subject == GOSSIP
        lines = mail.text.splitlines()[1:]
        assert lines == [f"- {peer}: shell: python3 slow_sha.py {path}"], lines


def test_supervise_rejects_bad_arguments(cluster: LocalCluster) -> None:
    command = [sys.executable, "-m", "logact.cli.main", "supervise", "--config"]
    for args in ([], ["--bus", "x", "--rounds", "0"], ["--bus", "x", "--no-advise"]):
        done = subprocess.run(
            [*command, str(cluster.config_path), *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0 and "error" in done.stdout + done.stderr, args
