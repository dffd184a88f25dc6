"""The log demo (``logact log-demo``): concurrent writers and a tailing subscriber on a 3-node
cluster of separate processes, the leader killed with SIGKILL mid-run and restarted, and checks
read from the log: every acknowledged append is present exactly once at its acknowledged
position, the subscriber saw a gap-free, duplicate-free stream, and the restarted node caught up.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.protocol.codec import Entry
from logact.scenarios.report import Check


class PortsInUse(Exception):
    """The cluster's ports are taken (a cluster is already running?)."""

    def __init__(self, ports: list[str]) -> None:
        super().__init__(", ".join(ports))
        self.ports = ports


def fresh_cluster(config_path: str, run_dir: str) -> LocalCluster:
    """A local cluster about to start on empty data (PortsInUse if its ports are taken: the
    demo would talk to that other cluster)."""
    local = LocalCluster(config_path, run_dir)
    busy = local.busy_addresses(local.node_ids)
    if busy:
        raise PortsInUse(busy)
    shutil.rmtree(Path(run_dir) / "data", ignore_errors=True)
    return local


@dataclass(frozen=True, slots=True)
class Workload:
    """What the workload saw: acknowledged positions, the subscriber's stream, the final log,
    the log as the restarted node holds it, and which node was killed."""

    bus: str
    acked: dict[str, int]
    seen: list[Entry]
    final: list[Entry]
    rejoined: list[Entry]
    killed: str


async def workload(
    local: LocalCluster,
    writers: int,
    per_writer: int,
    progress: Callable[[str], None] = lambda line: None,
) -> Workload:
    """``writers`` concurrent writers of ``per_writer`` appends each and a subscriber; the
    leader is killed half-way and restarted once the writers are done."""
    bus = f"demo/{uuid.uuid4().hex[:8]}"
    acked: dict[str, int] = {}
    seen: list[Entry] = []
    token = local.admin_token()
    half = writers * per_writer // 2
    killed: dict[str, str] = {}

    async def writer(index: int, client: Client) -> None:
        for seq in range(per_writer):
            payload = f"w{index}-{seq}"
            acked[payload] = await client.append(bus, "note", {"payload": payload}, timeout=30)
            if len(acked) == half and not killed:
                leader = await local.wait_for_leader(10)
                progress(f"kill -9 leader {leader} after {half} appends")
                killed["node"] = leader
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
        progress(f"{len(acked)} appends acknowledged in {time.monotonic() - started:.1f}s")
        local.start(killed["node"])
        progress(f"restarted {killed['node']}")
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
    return Workload(bus, acked, seen, final, rejoined, killed["node"])


def verify(result: Workload) -> list[Check]:
    """The checks of the log after the workload (all required)."""
    acked, final, seen = result.acked, result.final, result.seen
    by_pos = {e.pos: e.body["payload"] for e in final}
    payloads = [e.body["payload"] for e in final]
    return [
        Check(
            "every acknowledged append is in the log at its acknowledged position",
            all(by_pos.get(pos) == p for p, pos in acked.items()),
            f"{len(acked)} acknowledged",
        ),
        Check(
            "no payload appears twice (idempotent retries)",
            len(payloads) == len(set(payloads)),
            f"{len(payloads)} entries",
        ),
        Check(
            "positions are dense from 0",
            [e.pos for e in final] == list(range(len(final))),
            f"0..{len(final) - 1}",
        ),
        Check(
            "the subscriber saw every entry once, in order, across the failover",
            [e.pos for e in seen] == [e.pos for e in final],
            f"{len(seen)} pushed",
        ),
        Check(
            f"the restarted node {result.killed} caught up with the same log",
            [(e.pos, e.body) for e in result.rejoined] == [(e.pos, e.body) for e in final],
            f"{len(result.rejoined)} entries",
        ),
    ]
