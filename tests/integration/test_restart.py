"""Whole-cluster kill -9 and restart, and catch-up from a snapshot after log compaction.

Destructive: a private 3-node cluster that compacts its Raft log every few dozen commands, so
restarts and catch-up go through snapshots as well as journals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.api import Tail
from logact.protocol.codec import Entry
from logact.protocol.errors import Fenced, LogError, Trimmed

from .support import History, at_least, ensure_all_running, read_node, unique, wait_until, writer

pytestmark = pytest.mark.cluster

DEADLINE = 120.0
COMPACT_EVERY = 50  # Raft log entries (= group-commit batches) between snapshots

RAFT_TUNING = f"""
[raft]
log_compaction_min_entries = {COMPACT_EVERY}
"""


@pytest.fixture(scope="module")
def restart_cluster(cluster_factory: Callable[..., LocalCluster]) -> Iterator[LocalCluster]:
    yield cluster_factory(extra=RAFT_TUNING)


async def test_kill_all_and_restart_keeps_everything_acknowledged(
    restart_cluster: LocalCluster,
) -> None:
    cluster = restart_cluster
    notes, trimmed, fenced, loaded = (unique("restart") for _ in range(4))
    key = ("restart-test-client", 7)
    history = History()
    stop = trio.Event()
    with trio.fail_after(DEADLINE):
        await ensure_all_running(cluster)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=10.0) as log:
            # Phase 1: a known history on several buses, long enough to be compacted.
            for i in range(3 * COMPACT_EVERY):
                await log.append(notes, "note" if i % 2 else "plan", {"i": i})
            await log.append_batch(notes, [("data", {"batch": k}) for k in range(7)])
            keyed = await log.append(notes, "note", "keyed", key=key)
            for i in range(40):
                await log.append(trimmed, "note", i)
            assert await log.trim(trimmed, 25) == 25
            first_epoch = await log.claim(fenced, "driver")
            epoch = await log.claim(fenced, "driver")
            await log.append(fenced, "note", "fenced-ok", fence=("driver", epoch))
            expected: dict[str, list[Entry]] = {
                notes: await log.read_all(notes),
                trimmed: await log.read_all(trimmed, 25),
                fenced: await log.read_all(fenced),
            }
            # Phase 2: writers in full flight when every node is killed at once.
            async with trio.open_nursery() as nursery:
                for w in range(3):
                    nursery.start_soon(
                        partial(writer, log, loaded, history, f"w{w}", stop, timeout=5.0)
                    )
                await wait_until(at_least(lambda: len(history.acked), 60), 30)
                await trio.to_thread.run_sync(cluster.kill_all)
                stop.set()  # writers finish their current append (bounded by its timeout)
    assert all(cluster.pid(node_id) is None for node_id in cluster.node_ids)

    with trio.fail_after(DEADLINE):
        await ensure_all_running(cluster)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=20.0) as log:
            for bus, entries in expected.items():
                assert await log.read_all(bus, entries[0].pos) == entries, bus
            assert await log.check_tail(trimmed) == Tail(40, 25)
            with pytest.raises(Trimmed):
                await log.read(trimmed, 24)
            with pytest.raises(Fenced):
                await log.append(fenced, "note", "stale", fence=("driver", first_epoch))
            assert await log.claim(fenced, "driver") == epoch + 1
            # The dedup state survived: a retry of an acknowledged append is not re-applied.
            assert await log.append(notes, "note", "keyed", key=key) == keyed
            assert (await log.check_tail(notes)).tail == len(expected[notes])
            survived = await log.read_all(loaded)
            history.check(survived)
            assert await log.append(loaded, "note", "after-restart") == len(survived)
            # Every node holds the same history.
            for node_id in cluster.node_ids:
                address = cluster.config.node(node_id).client_address
                assert await read_node(address, notes, stale=False) == expected[notes]


async def test_lagging_follower_catches_up_from_a_snapshot(restart_cluster: LocalCluster) -> None:
    cluster = restart_cluster
    bus = unique("lagging")
    with trio.fail_after(DEADLINE):
        leader = await ensure_all_running(cluster)
        follower = next(node_id for node_id in cluster.node_ids if node_id != leader)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=20.0) as log:
            await log.append(bus, "note", "before")
            await trio.to_thread.run_sync(cluster.kill, follower)
            for i in range(4 * COMPACT_EVERY):
                await log.append(bus, "data", {"i": i})
            await log.trim(bus, 10)
            await log.append_batch(bus, [("note", k) for k in range(5)])
            expected = await log.read_all(bus, 10)

            async def compacted() -> bool:
                status = await log.status()
                return status["node"]["log_len"] < 2 * COMPACT_EVERY

            # The leader no longer holds the entries the follower is missing.
            await wait_until(compacted, 30)

        cluster.start(follower)
        await cluster.wait_until_serving(follower, 30)
        address = cluster.config.node(follower).client_address

        async def caught_up() -> bool:
            try:
                return await read_node(address, bus, stale=True, start=10) == expected
            except LogError:
                return False

        await wait_until(caught_up, 30, interval=0.1)
