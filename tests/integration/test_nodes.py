"""Every node of the shared cluster serves the same log: writes through followers, linearizable
reads on any node right after an acknowledgement, subscriptions on each node."""

from __future__ import annotations

from contextlib import aclosing

import pytest
import trio

from logact.cli.cluster import LocalCluster
from logact.client.client import Client
from logact.client.errors import LogError
from logact.client.protocol import Entry

from .support import ADMIN_TOKEN, STEP_TIMEOUT, WRITER_TOKEN, read_node, wait_until

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
