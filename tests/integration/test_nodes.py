"""Every node of the shared cluster serves the same log: writes through followers, linearizable
reads on any node right after an acknowledgement, subscriptions on each node."""

from __future__ import annotations

import stat
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN, WRITER_TOKEN, write_local_config
from logact.protocol.codec import Entry
from logact.protocol.errors import LogError
from logact.server.node import data_dir_for

from .support import STEP_TIMEOUT, read_node, wait_until

pytestmark = pytest.mark.cluster

DEADLINE = 60.0


async def test_nodes_agree_on_the_leader(cluster: LocalCluster) -> None:
    with trio.fail_after(DEADLINE):
        leader = await cluster.wait_for_leader(30)
        statuses = await cluster.statuses()
    roles = {node_id: s["node"]["role"] for node_id, s in statuses.items() if s is not None}
    assert roles[leader] == "leader"
    assert sorted(roles.values()) == ["follower", "follower", "leader"]
    assert {s["durability"] for s in statuses.values() if s is not None} == {"fsync"}


async def test_writes_through_any_node_are_read_linearizably_everywhere(
    cluster: LocalCluster, bus: str
) -> None:
    with trio.fail_after(DEADLINE):
        leader = await cluster.wait_for_leader(30)
        rounds_before = await commit_rounds(cluster, leader)
        for round_no, address in enumerate(cluster.addresses):
            async with Client(
                [address], WRITER_TOKEN, timeout=STEP_TIMEOUT, prefer_leader=False
            ) as via:
                pos = await via.append(bus, "note", {"via": address})
                assert pos == round_no
            # Acknowledged => visible to a linearizable read on every node, immediately.
            for other in cluster.addresses:
                entries = await read_node(other, bus, stale=False)
                assert [e.pos for e in entries] == list(range(round_no + 1)), other
                assert entries[-1].body == {"via": address}
                assert entries[-1].author == "writer"
                async with Client([other], ADMIN_TOKEN, prefer_leader=False) as node:
                    assert (await node.check_tail(bus)).tail == round_no + 1
        # A follower answers a forwarded append once it has applied it: the leader told the
        # followers each commit at once instead of leaving it to the next heartbeat.
        assert await commit_rounds(cluster, leader) > rounds_before


async def commit_rounds(cluster: LocalCluster, node_id: str) -> int:
    status = (await cluster.statuses())[node_id]
    assert status is not None and status["node"]["role"] == "leader"
    return int(status["node"]["commit_rounds"])


async def test_stale_reads_converge_on_every_node(cluster: LocalCluster, bus: str) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log:
            for i in range(20):
                await log.append(bus, "note", i)
            expected = await log.read_all(bus)
        for address in cluster.addresses:

            async def converged(address: str = address) -> bool:
                try:
                    return await read_node(address, bus, stale=True) == expected
                except LogError:
                    return False

            await wait_until(converged, 20)


async def test_subscriptions_on_each_node(cluster: LocalCluster, bus: str) -> None:
    views: dict[str, list[Entry]] = {}
    count = 30

    async def watch(address: str, task_status: trio.TaskStatus[None]) -> None:
        async with Client([address], ADMIN_TOKEN, prefer_leader=False) as node:
            got: list[Entry] = []
            async with aclosing(node.subscribe(bus, 0)) as entries:
                task_status.started()
                async for entry in entries:
                    got.append(entry)
                    if len(got) == count:
                        break
            views[address] = got

    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log:
            async with trio.open_nursery() as nursery:
                for address in cluster.addresses:
                    await nursery.start(watch, address)
                for i in range(0, count, 3):
                    await log.append_batch(bus, [("note", i + k) for k in range(3)])
            expected = await log.read_all(bus)
    assert len(expected) == count
    assert all(view == expected for view in views.values())
    assert set(views) == set(cluster.addresses)


async def test_data_and_logs_are_readable_by_their_owner_only(cluster: LocalCluster) -> None:
    await cluster.wait_for_leader(30)
    for node_id in cluster.node_ids:
        data = data_dir_for(cluster.config, node_id, cluster.run_dir)
        files = [p for p in data.rglob("*") if p.is_file()]
        assert files, f"{node_id} wrote nothing"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files), files
        assert stat.S_IMODE(cluster.log_file(node_id).stat().st_mode) == 0o600


def test_a_node_off_loopback_with_weak_secrets_refuses_to_start(tmp_path: Path) -> None:
    """It stops before binding anything (so this test binds nothing beyond 127.0.0.1)."""
    config = write_local_config(tmp_path)
    text = config.read_text().replace("127.0.0.1", "0.0.0.0", 1)
    config.write_text(text)
    argv = [sys.executable, "-m", "logact.cli.main", "node", "--config", str(config), "--id", "n1"]
    done = subprocess.run(argv, capture_output=True, timeout=60, cwd=tmp_path)
    said = " ".join((done.stdout + done.stderr).decode().split())  # the console wraps lines
    assert done.returncode == 1
    assert "listens beyond loopback with weak secrets" in said
    assert "token of principal 'admin'" in said
    assert not (tmp_path / "data").exists()
