"""`logact health` against the real cluster: findings printed, recorded once, mailed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster


def unique_bus(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def logact_health(cluster: LocalCluster, *args: str) -> list[dict]:
    """The JSON reports of ``logact health``, which must exit 2 (CRITICAL): each check here
    includes a bus with an error streak."""
    command = [sys.executable, "-m", "logact.cli.main", "health", "--config"]
    done = subprocess.run(
        [*command, str(cluster.config_path), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


async def troubled_bus(cluster: LocalCluster, bus: str) -> list[int]:
    """An open task, then three actions that failed or were vetoed."""
    async with Client(cluster.addresses, cluster.admin_token(), timeout=30) as log:
        await log.append(bus, *e.AgentInput("tidy up").to_entry())
        streak = []
        for tool in ("a", "b", "c"):
            intent = await log.append(bus, *e.Intent(e.ToolCall(tool, {})).to_entry())
            await log.append(bus, *e.Abort(intent, "vetoed").to_entry())
            streak.append(intent)
        return streak


async def read(cluster: LocalCluster, bus: str) -> BusState:
    state = BusState(bus)
    async with Client(cluster.addresses, cluster.admin_token(), timeout=30) as log:
        for entry in await log.read_all(bus):
            state.apply(entry)
    return state


def test_findings_are_recorded_and_mailed_once_per_change(cluster: LocalCluster) -> None:
    bus = unique_bus("health")
    streak = trio.run(troubled_bus, cluster, bus)
    (report,) = logact_health(cluster, "--bus", bus, "--mail")
    assert report["bus"] == bus
    assert {f["signal"]: f["positions"] for f in report["findings"]}["error_streak"] == streak
    logact_health(cluster, "--bus", bus, "--mail")  # nothing changed: nothing new appended

    state = trio.run(read, cluster, bus)
    health = state.of_type(e.Health)
    assert len(health) == 1 and health[0][0].author == "supervisor"
    assert health[0][1].through == streak[-1] + 1  # the abort after the last intent
    (mail,) = state.of_type(e.Mail)
    assert mail[0].author == "mailer" and "error_streak" in mail[1].text


def test_a_supervisor_watches_every_bus_under_a_prefix(cluster: LocalCluster) -> None:
    prefix = unique_bus("swarm") + "/"
    quiet, troubled = prefix + "quiet", prefix + "troubled"

    async def setup() -> None:
        async with Client(cluster.addresses, cluster.admin_token(), timeout=30) as log:
            await log.append(quiet, *e.AgentInput("t").to_entry())
            await log.append(quiet, *e.AgentOutput("done").to_entry())
        await troubled_bus(cluster, troubled)

    trio.run(setup)
    reports = logact_health(cluster, "--watch", prefix, "--rounds", "2", "--interval", "0")
    assert [r["bus"] for r in reports] == [quiet, troubled, quiet, troubled]
    assert reports[0]["findings"] == [] and reports[1]["findings"]
    assert trio.run(read, cluster, troubled).of_type(e.Health) == []  # no --record: read-only


def test_bad_options_are_refused(cluster: LocalCluster) -> None:
    command = [sys.executable, "-m", "logact.cli.main", "health", "--config"]
    for args in ([], ["--bus", "x", "--rounds", "0"]):
        done = subprocess.run(
            [*command, str(cluster.config_path), *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1 and "error:" in done.stderr and "Traceback" not in done.stderr


def test_a_model_judgement_of_the_digest_is_recorded_with_the_findings(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    bus = unique_bus("judged")
    trio.run(troubled_bus, cluster, bus)
    script = tmp_path / "judge.json"
    script.write_text(json.dumps([{"content": "scripted: stuck on vetoes; ask the user"}]))
    (report,) = logact_health(
        cluster, "--bus", bus, "--record", "--judge", "--llm", "script", "--script", str(script)
    )
    assert report["judgement"] == "scripted: stuck on vetoes; ask the user"
    ((_, entry),) = trio.run(read, cluster, bus).of_type(e.Health)
    assert entry.judgement == report["judgement"] and entry.findings
