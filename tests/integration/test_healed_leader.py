"""A healed old leader must deliver the committed log, never its own uncommitted suffix.

The scenario of issue 12 on real processes: subscribers follow the leader; the leader is
isolated and appends an entry it can never commit (its uncommitted suffix); the majority elects
a new leader that commits past that position; the partition heals. Every subscriber of the old
leader must then receive exactly the final log, and every node's own copy must equal it.

With ``log_compaction_min_entries`` small the new leader has compacted its journal past the
old leader's suffix by the time it heals, so the old leader is brought up to date by a
snapshot install (the path that applied the unverified suffix); with the default it gets plain
AppendEntries that overwrite the suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from logact.client.client import Client
from logact.jepsen_tests.chaos_cluster import ChaosCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.errors import LogError

from .support import at_least, read_node, wait_until

DEADLINE = 150.0
OP_TIMEOUT = 20.0
#: Appends the majority commits while the old leader is cut off.
MAJORITY_APPENDS = 60
#: Padding of each majority append: a snapshot of many 64 KiB chunks takes many ticks to send.
PAD = "x" * 200_000
#: The isolated leader must keep believing it leads while the test appends to it.
FALLBACK = "leader_fallback_timeout = 120.0"
COMPACTING = f"[raft]\n{FALLBACK}\nlog_compaction_min_entries = 10\n"
NOT_COMPACTING = f"[raft]\n{FALLBACK}\n"


async def journal(cluster: ChaosCluster, node: str) -> dict[str, Any]:
    status = await cluster.cluster.node_status(node)
    assert status is not None, f"{node} does not answer"
    return status["node"]


async def subscriber(
    address: str, bus: str, deliveries: list[tuple[int, Any]], ready: trio.Event
) -> None:
    """Follow ``bus`` on one node only (no hop to the leader), recording every delivery."""
    async with Client([address], ADMIN_TOKEN, timeout=OP_TIMEOUT, prefer_leader=False) as log:
        async for entry in log.subscribe(bus, 0):
            deliveries.append((entry.pos, entry.body["id"]))
            ready.set()


@pytest.mark.cluster
@pytest.mark.parametrize(
    "extra", [COMPACTING, NOT_COMPACTING], ids=["snapshot-install", "append-entries"]
)
async def test_a_healed_old_leader_delivers_exactly_the_committed_log(
    tmp_path: Path, bus: str, extra: str
) -> None:
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path, extra=extra) as cluster, trio.open_nursery() as nursery:
            old = await cluster.leader()
            majority = [n for n in cluster.node_ids if n != old]
            async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
                for i in range(3):
                    await log.append(bus, "data", {"id": f"before-{i}"})
            streams: list[list[tuple[int, Any]]] = [[], []]
            for deliveries in streams:
                ready = trio.Event()
                nursery.start_soon(subscriber, cluster.client_address(old), bus, deliveries, ready)
                await ready.wait()

            await cluster.partitioner.isolate(old)
            before = (await journal(cluster, old))["journal"][1]
            async with Client(
                [cluster.client_address(old)], ADMIN_TOKEN, timeout=3.0, prefer_leader=False
            ) as log:
                with pytest.raises(LogError):
                    await log.append(bus, "data", {"id": "uncommitted"})
            cut_off = await journal(cluster, old)
            # The scenario really happened: the old leader holds an entry nobody else has.
            assert cut_off["role"] == "leader" and cut_off["journal"][1] > before, cut_off
            suffix = cut_off["journal"][1]

            new = await cluster.leader(30, among=majority)
            async with Client(
                [cluster.client_address(n) for n in majority], ADMIN_TOKEN, timeout=OP_TIMEOUT
            ) as log:
                for i in range(MAJORITY_APPENDS):
                    await log.append(bus, "data", {"id": f"major-{i}", "pad": PAD})
            first_kept = (await journal(cluster, new))["journal"][0]
            if extra is COMPACTING:
                assert first_kept > suffix, "the new leader has not compacted past the suffix"
            else:
                assert first_kept <= suffix

            await cluster.partitioner.heal()
            await cluster.wait_healthy(30)
            async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
                final = [(e.pos, e.body["id"]) for e in await log.read_all(bus)]
            assert final[:3] == [(i, f"before-{i}") for i in range(3)]
            assert all(payload != "uncommitted" for _, payload in final)
            for deliveries in streams:
                await wait_until(at_least(lambda d=deliveries: len(d), len(final)), 30)
                assert deliveries[: len(final)] == final
            for node in cluster.node_ids:
                own = await read_node(cluster.client_address(node), bus, stale=True)
                assert [(e.pos, e.body["id"]) for e in own] == final, node
            installed = (await journal(cluster, old))["snapshots"]["installed"]
            assert installed >= 1 if extra is COMPACTING else installed == 0
            nursery.cancel_scope.cancel()
