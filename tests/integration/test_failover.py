"""Leader kill -9 under load, catch-up of the restarted node, subscriptions across failover.

Destructive: runs on a private 3-node cluster (processes), never on the shared one.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import aclosing
from functools import partial

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.codec import Entry
from logact.protocol.errors import LogError

from .support import History, at_least, ensure_all_running, read_node, wait_until, writer

pytestmark = pytest.mark.cluster

DEADLINE = 120.0
#: Client deadline per operation: long enough to ride out an election.
OP_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def failover_cluster(cluster_factory: Callable[..., LocalCluster]) -> Iterator[LocalCluster]:
    yield cluster_factory()


async def test_kill_leader_during_concurrent_appends(
    failover_cluster: LocalCluster, bus: str
) -> None:
    cluster = failover_cluster
    history = History()
    stop = trio.Event()
    with trio.fail_after(DEADLINE):
        leader = await ensure_all_running(cluster)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
            async with trio.open_nursery() as nursery:
                for w in range(4):
                    nursery.start_soon(writer, log, bus, history, f"w{w}", stop)
                nursery.start_soon(partial(writer, log, bus, history, "batch", stop, batch=3))
                await wait_until(at_least(lambda: len(history.acked), 60), 30)
                await trio.to_thread.run_sync(cluster.kill, leader)
                acked_at_kill = len(history.acked)
                # Service resumes: plenty of appends are acknowledged after the kill.
                await wait_until(at_least(lambda: len(history.acked), acked_at_kill + 60), 60)
                stop.set()
            new_leader = await cluster.wait_for_leader(30)
            entries = await log.read_all(bus)
            history.check(entries)
            after = await log.append(bus, "note", "after-failover")
            assert after == len(entries)
            expected = await log.read_all(bus)
    assert new_leader != leader
    assert len(history.acked) >= acked_at_kill + 60

    # The killed node comes back and catches up (read its own copy, no hop to the leader).
    with trio.fail_after(DEADLINE):
        cluster.start(leader)
        await cluster.wait_until_serving(leader, 30)
        address = cluster.config.node(leader).client_address

        async def caught_up() -> bool:
            try:
                return await read_node(address, bus, stale=True) == expected
            except LogError:  # not there yet (unknown bus, election in progress)
                return False

        await wait_until(caught_up, 30, interval=0.1)
        # Linearizable reads through the restarted node (a follower now) agree as well.
        assert await read_node(address, bus, stale=False) == expected


async def test_subscription_continues_across_failover(
    failover_cluster: LocalCluster, bus: str
) -> None:
    cluster = failover_cluster
    history = History()
    stop = trio.Event()
    received: list[Entry] = []
    with trio.fail_after(DEADLINE):
        leader = await ensure_all_running(cluster)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
            history.acked["seed"] = await log.append(bus, "note", history.payload("seed"))

            async def subscriber() -> None:
                async with aclosing(log.subscribe(bus, 0)) as entries:
                    async for entry in entries:
                        received.append(entry)

            async with trio.open_nursery() as outer:
                outer.start_soon(subscriber)
                async with trio.open_nursery() as writers:
                    writers.start_soon(writer, log, bus, history, "a", stop)
                    writers.start_soon(partial(writer, log, bus, history, "b", stop, batch=2))
                    await wait_until(at_least(lambda: len(received), 40), 30)
                    await trio.to_thread.run_sync(cluster.kill, leader)
                    acked_at_kill = len(history.acked)
                    await wait_until(at_least(lambda: len(history.acked), acked_at_kill + 40), 60)
                    stop.set()
                final = await log.read_all(bus)
                await wait_until(at_least(lambda: len(received), len(final)), 30)
                outer.cancel_scope.cancel()
    history.check(final)
    assert [e.pos for e in received] == list(range(len(received))), "gap or duplicate"
    assert received[: len(final)] == final


async def test_resumed_old_leader_serves_no_stale_linearizable_reads(
    failover_cluster: LocalCluster, bus: str
) -> None:
    """SIGSTOP the leader, write through the new one, SIGCONT: reads via the old leader that
    claim to be linearizable must see the new write at once (it may still think it leads)."""
    cluster = failover_cluster
    with trio.fail_after(DEADLINE):
        old = await ensure_all_running(cluster)
        others = [node_id for node_id in cluster.node_ids if node_id != old]
        other_addresses = [cluster.config.node(node_id).client_address for node_id in others]
        old_address = cluster.config.node(old).client_address
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
            assert await log.append(bus, "note", "before") == 0
        cluster.signal(old, signal.SIGSTOP)
        try:
            new = await cluster.wait_for_leader(30, among=others)
            async with Client(other_addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
                assert await log.append(bus, "note", "while-paused") == 1
        finally:
            cluster.signal(old, signal.SIGCONT)
        async with Client(
            [old_address], ADMIN_TOKEN, timeout=OP_TIMEOUT, prefer_leader=False
        ) as log:
            tail = await log.check_tail(bus)
            page = await log.read(bus)
    assert new != old
    assert tail.tail == 2
    assert [e.body for e in page.entries] == ["before", "while-paused"]


async def test_client_fails_over_from_a_paused_leader(
    failover_cluster: LocalCluster, bus: str
) -> None:
    cluster = failover_cluster
    with trio.fail_after(DEADLINE):
        old = await ensure_all_running(cluster)
        others = [node_id for node_id in cluster.node_ids if node_id != old]
        # The leader first: the client's connection is to the node about to be paused.
        addresses = [cluster.config.node(node_id).client_address for node_id in [old, *others]]
        async with Client(addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
            assert await log.append(bus, "note", "before") == 0
            cluster.signal(old, signal.SIGSTOP)
            try:
                await cluster.wait_for_leader(30, among=others)
                # A new leader serves; a 10 s deadline is ample to find it.
                assert await log.append(bus, "note", "after", timeout=10.0) == 1
            finally:
                cluster.signal(old, signal.SIGCONT)


async def test_a_client_on_a_node_that_knew_no_leader_moves_to_the_leader(
    failover_cluster: LocalCluster, bus: str
) -> None:
    """A client stays on the node it dialled when that node names no leader at hello; once one
    is elected it moves its requests there (a follower forwards appends and answers each only
    once applied), and appends in flight across the move are each acknowledged once.

    The node the client dials is the only one running, so it knows no leader; it was stopped
    before the other two took an append, so its log is behind theirs and it cannot be elected
    when they come back."""
    cluster = failover_cluster
    history = History()
    stop = trio.Event()
    with trio.fail_after(DEADLINE):
        leader = await ensure_all_running(cluster)
        behind, other = [node_id for node_id in cluster.node_ids if node_id != leader]
        address = {
            node_id: cluster.config.node(node_id).client_address for node_id in cluster.node_ids
        }
        await trio.to_thread.run_sync(cluster.stop, behind)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
            await log.append(bus, "note", "held by the two others only")
        await trio.to_thread.run_sync(cluster.stop_nodes, [leader, other])
        cluster.start(behind)
        await cluster.wait_until_serving(behind, 30)
        dialled = [address[behind], address[leader], address[other]]
        async with Client(dialled, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
            status = await log.status()
            assert status["node"]["leader"] is None and log.node == address[behind]
            first = log._conn  # the connection it leaves must be closed, not leaked
            assert first is not None
            cluster.start(leader)
            cluster.start(other)
            new_leader = await cluster.wait_for_leader(30)
            assert new_leader != behind

            async def follows_it() -> bool:
                status = await cluster.node_status(behind)
                return status is not None and status["node"]["leader"] == new_leader

            # Appends through it are forwarded, not refused: only the move takes the client away.
            await wait_until(follows_it, 30)

            async def moved() -> bool:
                return log.node == address[new_leader]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer, log, bus, history, "w", stop)
                await wait_until(moved, 30)
                acked_at_move = len(history.acked)
                await wait_until(at_least(lambda: len(history.acked), acked_at_move + 20), 30)
                stop.set()
            history.check(await log.read_all(bus))

            async def closed() -> bool:
                return first.broken is not None

            await wait_until(closed, 30)
    assert not history.errors, history.errors
