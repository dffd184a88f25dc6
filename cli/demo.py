"""``logact log-demo``: the log alone — a real 3-node cluster, a workload, a leader failure.

Brings the cluster up as separate processes, runs concurrent writers and a tailing subscriber,
kills the leader with SIGKILL mid-run, restarts it, verifies from the log that every
acknowledged append is present exactly once at its acknowledged position and that the
subscriber saw a gap-free, duplicate-free stream, shows status, and shuts the cluster down.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
import trio
from rich.console import Console
from rich.table import Table

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.protocol.codec import Entry
from logact.protocol.errors import LogError

console = Console() if Console().is_terminal else Console(width=120)


def fresh_cluster(config_path: str, run_dir: str) -> LocalCluster:
    """A local cluster about to start on empty data; exits if its ports are taken."""
    local = LocalCluster(config_path, run_dir)
    busy = ports_in_use(local)
    if busy:
        console.print(
            f"[red]ports in use: {', '.join(busy)}[/red] — is a cluster already "
            "running? (`logact cluster down`)"
        )
        sys.exit(1)
    shutil.rmtree(Path(run_dir) / "data", ignore_errors=True)
    return local


def ports_in_use(local: LocalCluster) -> list[str]:
    busy = []
    for node in local.config.nodes:
        for host, port in ((node.client_host, node.client_port), (node.raft_host, node.raft_port)):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    busy.append(f"{host}:{port}")
    return busy


async def _workload(local: LocalCluster, writers: int, per_writer: int) -> dict[str, Any]:
    bus = f"demo/{uuid.uuid4().hex[:8]}"
    acked: dict[str, int] = {}
    seen: list[Entry] = []
    token = local.admin_token()
    half = writers * per_writer // 2
    killed: dict[str, Any] = {}

    async def writer(index: int, client: Client) -> None:
        for seq in range(per_writer):
            payload = f"w{index}-{seq}"
            acked[payload] = await client.append(bus, "note", {"payload": payload}, timeout=30)
            if len(acked) == half and not killed:
                killed["at"] = len(acked)
                leader = await local.wait_for_leader(10)
                console.print(f"  [yellow]kill -9 leader {leader}[/yellow] after {half} appends")
                killed["node"] = leader
                killed["t"] = time.monotonic()
                local.kill(leader)

    async def subscriber(done: trio.Event) -> None:
        async with Client(local.addresses, token) as client:
            async for entry in client.subscribe(bus, 0):
                seen.append(entry)
                if len(seen) == writers * per_writer:
                    done.set()
                    return

    started = time.monotonic()
    sub_done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber, sub_done)
        async with Client(local.addresses, token) as client, trio.open_nursery() as writers_n:
            for index in range(writers):
                writers_n.start_soon(writer, index, client)
        console.print(f"  {len(acked)} appends acknowledged in {time.monotonic() - started:.1f}s")
        local.start(killed["node"])
        console.print(f"  restarted {killed['node']}")
        with trio.fail_after(60):
            await sub_done.wait()
        async with Client(local.addresses, token) as client:
            final = await client.read_all(bus)
        await local.wait_until_serving(killed["node"])
        async with Client(
            [local.config.node(killed["node"]).client_address], token, prefer_leader=False
        ) as direct:
            with trio.fail_after(30):
                while (await direct.check_tail(bus, stale=True)).tail < len(final):
                    await trio.sleep(0.05)
            rejoined = await direct.read_all(bus) if final else []
    return {
        "bus": bus,
        "acked": acked,
        "seen": seen,
        "final": final,
        "rejoined": rejoined,
        "killed": killed["node"],
    }


def _verify(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    acked, final, seen = result["acked"], result["final"], result["seen"]
    by_pos = {e.pos: e.body["payload"] for e in final}
    payloads = [e.body["payload"] for e in final]
    return [
        (
            "every acknowledged append is in the log at its acknowledged position",
            all(by_pos.get(pos) == p for p, pos in acked.items()),
            f"{len(acked)} acknowledged",
        ),
        (
            "no payload appears twice (idempotent retries)",
            len(payloads) == len(set(payloads)),
            f"{len(payloads)} entries",
        ),
        (
            "positions are dense from 0",
            [e.pos for e in final] == list(range(len(final))),
            f"0..{len(final) - 1}",
        ),
        (
            "the subscriber saw every entry once, in order, across the failover",
            [e.pos for e in seen] == [e.pos for e in final],
            f"{len(seen)} pushed",
        ),
        (
            f"the restarted node {result['killed']} caught up with the same log",
            [(e.pos, e.body) for e in result["rejoined"]] == [(e.pos, e.body) for e in final],
            f"{len(result['rejoined'])} entries",
        ),
    ]


@click.command("log-demo")
@click.option(
    "--config",
    "config_path",
    default="config/cluster.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option(
    "--run-dir", default=".run/log-demo", show_default=True, type=click.Path(file_okay=False)
)
@click.option("--writers", default=4, show_default=True)
@click.option("--appends", "per_writer", default=150, show_default=True, help="Appends per writer.")
@click.option("--keep", is_flag=True, help="Leave the cluster running afterwards.")
def log_demo(config_path: str, run_dir: str, writers: int, per_writer: int, keep: bool) -> None:
    """Bring up a 3-node cluster, run a workload through a leader failure, verify, shut down."""
    local = fresh_cluster(config_path, run_dir)
    console.rule("LogAct demo: 3-node Raft shared log")
    console.print(
        f"config {local.config_path} · durability [bold]{local.config.durability}"
        f"[/bold] · run dir {local.run_dir}"
    )
    ok = False
    try:
        local.start_all()
        leader = trio.run(local.wait_for_leader, 30)
        console.print(f"1. cluster up: nodes {', '.join(local.node_ids)}, leader {leader}")
        console.print(f"2. workload: {writers} writers x {per_writer} appends, one subscriber")
        result = trio.run(_workload, local, writers, per_writer)
        console.print("3. checks from the log")
        checks = _verify(result)
        for name, passed, detail in checks:
            mark = "[green]ok[/green]  " if passed else "[red]FAIL[/red]"
            console.print(f"  {mark} {name} ({detail})")
        ok = all(passed for _, passed, _ in checks)
        console.print("4. status")
        statuses = trio.run(local.statuses)
        table = Table()
        for column in ("node", "role", "leader", "term", "commit", "applied", "entries"):
            table.add_column(column)
        for node_id, status in statuses.items():
            if status is None:
                table.add_row(node_id, "down", *["-"] * 5)
                continue
            info = status["node"]
            table.add_row(
                node_id,
                info["role"],
                str(info["leader"]),
                str(info["term"]),
                str(info["commit_index"]),
                str(info["last_applied"]),
                str(status["log"]["entries"]),
            )
        console.print(table)
    except (LogError, trio.TooSlowError) as exc:
        console.print(f"[red]demo failed: {exc!r}[/red]; node logs in {local.run_dir / 'logs'}")
    finally:
        if not keep:
            local.stop_all()
            console.print("5. cluster down")
    console.rule("[green]all checks passed[/green]" if ok else "[red]checks failed[/red]")
    sys.exit(0 if ok else 1)
