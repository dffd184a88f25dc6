"""The chaos nemeses (jepsen_tests/nemesis.py, partition.py, chaos_cluster.py) on real clusters.

Each cluster test starts its own ``ChaosCluster`` (3 node processes) and proves the fault is
real — a partition cuts Raft traffic (the isolated leader cannot commit, the majority elects a
new leader), a paused process is stopped — and that the cluster keeps every acknowledged
append through it: after healing, all three nodes converge on the committed log (each node's
own copy, read with ``stale=True``). The pure helpers are tested first, without clusters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.client.client import Client
from logact.jepsen_tests import nemesis
from logact.jepsen_tests.chaos_cluster import ChaosCluster, rewrite_nodes
from logact.jepsen_tests.history import HistoryWriter, read_history
from logact.jepsen_tests.partition import (
    NetnsPartitioner,
    ProxyPartitioner,
    link,
    links_between,
    netns_unavailable,
)
from logact.jepsen_tests.schedule import Fault
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.codec import Entry
from logact.protocol.errors import LogError, Timeout
from logact.server.storage import frame_record, synced_size_path

from .support import History, at_least, read_node, wait_until, writer

#: Bound on one whole cluster test.
DEADLINE = 120.0
#: Client deadline per operation on the healthy side: long enough to ride out an election.
OP_TIMEOUT = 20.0
#: How long an append on the isolated side may try before we call it failed (> the 3 s
#: leader_fallback_timeout after which the isolated leader steps down).
ISOLATED_TIMEOUT = 4.0

_NETNS_UNAVAILABLE = netns_unavailable()
NETS = [
    "proxy",
    pytest.param(
        "netns",
        marks=pytest.mark.skipif(
            _NETNS_UNAVAILABLE is not None, reason=f"netns: {_NETNS_UNAVAILABLE}"
        ),
    ),
]


# ---- pure helpers -----------------------------------------------------------------------


def test_links_between_groups() -> None:
    nodes = ["n1", "n2", "n3"]
    assert links_between([{"n1"}, {"n2", "n3"}], nodes) == {link("n1", "n2"), link("n1", "n3")}
    # A node in no group is alone.
    assert links_between([{"n1", "n2"}], nodes) == {link("n1", "n3"), link("n2", "n3")}
    assert links_between([set(nodes)], nodes) == frozenset()
    with pytest.raises(ValueError, match="two partition groups"):
        links_between([{"n1"}, {"n1", "n2"}], nodes)
    with pytest.raises(ValueError, match="unknown node"):
        links_between([{"n9"}], nodes)


def test_rewrite_nodes_sets_addresses_and_dial_tables() -> None:
    text = "\n".join(
        [
            'mode = "raft"',
            "[[nodes]]",
            'id = "n1"',
            'client = "127.0.0.1:1"',
            'raft = "127.0.0.1:2"',
            'data_dir = "data/n1"',
            "",
            "[[nodes]]",
            'id = "n2"',
            'client = "127.0.0.1:3"',
            'raft = "127.0.0.1:4"',
            'data_dir = "data/n2"',
            "",
            "[auth.roles.admin]",
            'client = "untouched"',
        ]
    )
    out = rewrite_nodes(
        text,
        addresses={"n2": {"client": "10.0.0.3:7100"}},
        dial={"n2": {"n1": "127.0.0.1:9"}},
    )
    assert 'client = "10.0.0.3:7100"' in out
    assert 'client = "127.0.0.1:1"' in out
    assert 'raft_dial = { "n1" = "127.0.0.1:9" }' in out
    assert out.count("raft_dial") == 1
    assert 'client = "untouched"' in out


def test_cut_to_synced_cuts_only_longer_files(tmp_path: Path) -> None:
    records = [frame_record(bytes([i]) * 100) for i in range(5)]
    journal = tmp_path / "raft.journal"
    journal.write_bytes(b"".join(records))
    synced_size_path(journal).write_text(str(2 * len(records[0])))
    shorter = tmp_path / "sub" / "other.log"
    shorter.parent.mkdir()
    shorter.write_bytes(records[0])
    synced_size_path(shorter).write_text(str(10 * len(records[0])))
    torn = tmp_path / "torn.log"
    torn.write_bytes(records[0])
    synced_size_path(torn).write_text("")  # killed while the trace was rewritten
    cuts = nemesis.cut_to_synced(tmp_path)
    assert journal.read_bytes() == records[0] + records[1]
    assert shorter.read_bytes() == records[0]
    assert torn.read_bytes() == records[0]
    assert {c["file"]: c["cut"] for c in cuts} == {
        "raft.journal": 3 * len(records[0]),
        "sub/other.log": 0,
        "torn.log": 0,
    }


# ---- cluster helpers ----------------------------------------------------------------------


async def node_log(cluster: ChaosCluster, node: str, bus: str) -> list[Entry] | None:
    """``bus`` as ``node`` holds it (stale read, no hop to the leader); None if unreadable."""
    try:
        return await read_node(cluster.client_address(node), bus, stale=True)
    except (LogError, OSError):
        return None


async def converge(cluster: ChaosCluster, bus: str, timeout: float = 60.0) -> list[Entry]:
    """The committed log of ``bus``, once every node's own copy equals it."""
    async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
        final = await log.read_all(bus)

    async def all_equal() -> bool:
        for node in cluster.node_ids:
            if await node_log(cluster, node, bus) != final:
                return False
        return True

    await wait_until(all_equal, timeout, interval=0.2)
    return final


def payloads(entries: list[Entry]) -> list[Any]:
    return [e.body["id"] if isinstance(e.body, dict) else e.body for e in entries]


async def under_load(
    cluster: ChaosCluster,
    bus: str,
    history: History,
    during: Callable[[], Awaitable[None]],
    *,
    after: int = 30,
) -> None:
    """Three writers run across ``during``; they stop ``after`` more acks once it is over."""
    stop = trio.Event()
    async with (
        Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log,
        trio.open_nursery() as nursery,
    ):
        for w in range(3):
            nursery.start_soon(writer, log, bus, history, f"w{w}", stop)
        await wait_until(at_least(lambda: len(history.acked), 30), 30)
        await during()
        await wait_until(at_least(lambda: len(history.acked), len(history.acked) + after), 60)
        stop.set()


# ---- partitions ---------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("net", NETS)
async def test_isolate_leader_then_heal(tmp_path: Path, net: str, bus: str) -> None:
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path, net=net) as cluster:
            old = await cluster.leader()
            majority = [n for n in cluster.node_ids if n != old]
            async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
                before = [await log.append(bus, "data", {"id": f"before-{i}"}) for i in range(3)]

            await cluster.partitioner.isolate(old)
            partitioner = cluster.partitioner
            if isinstance(partitioner, ProxyPartitioner):
                for pair in partitioner.cut:
                    assert not partitioner.links[pair].connections, "cut connection left open"
            else:
                assert isinstance(partitioner, NetnsPartitioner)
                for peer in majority:
                    assert f"blackhole {partitioner.ips[peer]}" in partitioner.routes(old)

            # The majority elects a new leader and commits without the old one.
            new = await cluster.leader(30, among=majority)
            assert new != old
            async with Client(
                [cluster.client_address(n) for n in majority], ADMIN_TOKEN, timeout=OP_TIMEOUT
            ) as log:
                committed = [await log.append(bus, "data", {"id": f"major-{i}"}) for i in range(5)]
            # The old leader cannot commit (its own applied state never shows the append), and
            # never hears of the majority's entries.
            async with Client(
                [cluster.client_address(old)],
                ADMIN_TOKEN,
                timeout=ISOLATED_TIMEOUT,
                prefer_leader=False,
            ) as log:
                with pytest.raises(LogError) as failed:
                    await log.append(bus, "data", {"id": "isolated"})
            isolated_view = await node_log(cluster, old, bus)
            assert isolated_view is not None
            assert payloads(isolated_view) == [f"before-{i}" for i in range(3)]

            await cluster.partitioner.heal()
            assert cluster.partitioner.cut == frozenset()
            await cluster.wait_healthy(30)
            final = await converge(cluster, bus)
    expected = [f"before-{i}" for i in range(3)] + [f"major-{i}" for i in range(5)]
    assert [e.pos for e in final[: len(expected)]] == before + committed
    assert payloads(final[: len(expected)]) == expected
    # The isolated append was indeterminate (a timeout): a node without a leader keeps the
    # command queued (PySyncObj commandsWaitLeader) and forwards it once it learns the new
    # leader after healing, so it may land after everything else — but at most once.
    # A definite failure must never land.
    late = payloads(final[len(expected) :])
    if isinstance(failed.value, Timeout):
        assert late in ([], ["isolated"]), late
    else:
        assert late == [], (failed.value, late)


@pytest.mark.cluster
async def test_partition_faults_under_load(tmp_path: Path, bus: str) -> None:
    """majority-minority and bridge through nemesis.apply: links cut as recorded, healed after."""
    history = History()
    records: list[dict[str, Any]] = []
    cuts_seen: list[frozenset[frozenset[str]]] = []
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path) as cluster:
            partitioner = cluster.partitioner

            async def faults() -> None:
                for target in ("majority-minority", "bridge"):

                    async def watch() -> None:
                        await wait_until(partial(_partitioned, cluster), 10, interval=0.01)
                        cuts_seen.append(partitioner.cut)

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(watch)
                        fault = Fault(0.0, "partition", 2.0, target)
                        await nemesis.apply(fault, cluster, records.append)
                    assert partitioner.cut == frozenset()

            await under_load(cluster, bus, history, faults)
            final = await converge(cluster, bus)
    history.check(final)
    minority, bridge = records
    assert minority["outcome"] == bridge["outcome"] == "ok"
    (alone,) = minority["targets"]
    assert minority["groups"] == [[alone], sorted(set(cluster.node_ids) - {alone})]
    assert {frozenset(pair) for pair in minority["cut"]} == cuts_seen[0]
    assert len(cuts_seen[0]) == 2 and all(alone in pair for pair in cuts_seen[0])
    (hub,) = bridge["targets"]
    assert {frozenset(pair) for pair in bridge["cut"]} == cuts_seen[1]
    assert cuts_seen[1] == {frozenset(set(cluster.node_ids) - {hub})}


async def _partitioned(cluster: ChaosCluster) -> bool:
    return bool(cluster.partitioner.cut)


# ---- process faults through nemesis.apply -------------------------------------------------


@pytest.mark.cluster
async def test_pause_follower_then_resume(tmp_path: Path, bus: str) -> None:
    history = History()
    records = HistoryWriter(tmp_path / "history.jsonl")
    seen_stopped: list[str] = []
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path / "cluster") as cluster:
            leader = await cluster.leader()

            async def pause_while_writing() -> None:
                acked_before = len(history.acked)

                async def watch() -> None:
                    # The follower really is stopped (SIGSTOP lands asynchronously: wait for
                    # the kernel to show it), and appends still commit meanwhile.
                    await wait_until(partial(_stopped, cluster), 10, interval=0.01)
                    (node,) = cluster.paused
                    seen_stopped.append(node)
                    await wait_until(at_least(lambda: len(history.acked), acked_before + 20), 10)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    await nemesis.apply(Fault(0.0, "pause", 2.0, "follower"), cluster, records)

            await under_load(cluster, bus, history, pause_while_writing)
            final = await converge(cluster, bus)
            assert all(cluster.process_state(n) not in (None, "T") for n in cluster.node_ids)
    records.close()
    history.check(final)
    (fault,) = read_history(tmp_path / "history.jsonl")
    assert fault["fault"] == "pause" and fault["outcome"] == "ok"
    assert fault["targets"] == seen_stopped and seen_stopped[0] != leader
    start, end = fault["window"]
    assert fault["invoke"] <= start < end <= fault["complete"]
    assert end - start >= 2.0e9


async def _stopped(cluster: ChaosCluster) -> bool:
    return any(cluster.process_state(node) == "T" for node in cluster.paused)


@pytest.mark.cluster
@pytest.mark.parametrize("target", ["follower", "all"])
async def test_lose_unsynced_keeps_acknowledged_appends(
    tmp_path: Path, bus: str, target: str
) -> None:
    """fsync durability: losing every unsynced write of a follower (or of every node at once,
    a cluster-wide power loss) loses no acknowledged append."""
    history = History()
    records: list[dict[str, Any]] = []
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path) as cluster:

            async def fault() -> None:
                await nemesis.apply(
                    Fault(0.0, "lose-unsynced", 0.5, target), cluster, records.append
                )

            await under_load(cluster, bus, history, fault)
            final = await converge(cluster, bus)
    history.check(final)
    (record,) = records
    assert record["outcome"] == "ok", record
    assert len(record["targets"]) == (3 if target == "all" else 1)
    for node in record["targets"]:
        assert [c["file"] for c in record["cuts"][node]] == ["raft.journal"]


async def fault_under_load(
    tmp_path: Path, bus: str, fault: Fault, history: History
) -> tuple[list[Entry], list[dict[str, Any]], dict[str, int | None], dict[str, int | None]]:
    """Apply ``fault`` on a fresh cluster while a workload writes; (the converged log, the
    fault records, node pids before, node pids after)."""
    records: list[dict[str, Any]] = []
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path) as cluster:
            before = {n: cluster.cluster.pid(n) for n in cluster.node_ids}
            await under_load(
                cluster, bus, history, partial(nemesis.apply, fault, cluster, records.append)
            )
            final = await converge(cluster, bus)
            after = {n: cluster.cluster.pid(n) for n in cluster.node_ids}
    return final, records, before, after


@pytest.mark.cluster
async def test_restart_all_keeps_acknowledged_appends(tmp_path: Path, bus: str) -> None:
    history = History()
    fault = Fault(0.0, "restart-all", 0.5, "all")
    final, records, before, after = await fault_under_load(tmp_path, bus, fault, history)
    assert all(after[n] not in (None, before[n]) for n in before)
    history.check(final)
    assert records[0]["targets"] == ["n1", "n2", "n3"] and records[0]["outcome"] == "ok"


@pytest.mark.cluster
async def test_hostile_input_at_the_leader_keeps_acknowledged_appends(
    tmp_path: Path, bus: str
) -> None:
    """Every kind of hostile input at once, at the leader, while a workload writes: every
    acknowledged append is kept, every node still runs, and the cluster is whole after."""
    history = History()
    fault = Fault(0.0, "hostile", 4.0, "leader")
    final, records, before, after = await fault_under_load(tmp_path, bus, fault, history)
    assert after == before  # no node died or restarted
    history.check(final)
    (record,) = records
    assert record["outcome"] == "ok" and "settle_error" not in record, record
    sent = record["sent"]
    for kind in ("unauthenticated_frames", "authenticated_frames", "raft_junk"):
        assert sent.get(kind, 0) > 0, sent
    assert sent.get("authenticated_answers", 0) > 0 and sent.get("idle_connections", 0) > 0


@pytest.mark.cluster
async def test_targeted_follower_truncation_case(tmp_path: Path, bus: str) -> None:
    """Pause a follower, load with >= 10 KB entries, kill the leader, resume the follower."""
    history = History()
    records: list[dict[str, Any]] = []
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path) as cluster:

            async def fault() -> None:
                # Connected before the follower is paused: a client that first dials the paused
                # node would wait out its timeout instead of loading the leader.
                async with Client(cluster.addresses, ADMIN_TOKEN, timeout=OP_TIMEOUT) as log:
                    await log.list_buses()

                    async def big_entries(stop: trio.Event) -> None:
                        async with trio.open_nursery() as nursery:
                            for w in range(3):
                                nursery.start_soon(big_writer, log, bus, history, f"big{w}", stop)

                    await nemesis.apply(
                        Fault(0.0, "targeted", 2.0, "follower"),
                        cluster,
                        records.append,
                        load=big_entries,
                    )

            await under_load(cluster, bus, history, fault)
            final = await converge(cluster, bus)
    history.check(final)
    (record,) = records
    assert record["outcome"] == "ok", record
    assert record["roles"]["paused"] != record["roles"]["killed"]
    assert sum(1 for pid in history.acked if pid.startswith("big")) >= 10


async def big_writer(log: Client, bus: str, history: History, name: str, stop: trio.Event) -> None:
    """Like support.writer, with 12 KB entries."""
    i = 0
    while not stop.is_set():
        pid = f"{name}-{i}"
        i += 1
        body = {**history.payload(pid), "pad": "x" * 12_000}
        try:
            history.acked[pid] = await log.append(bus, "data", body)
        except LogError as exc:
            history.errors[pid] = type(exc).__name__


@pytest.mark.cluster
async def test_a_fault_without_its_target_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis, "LEADER_TIMEOUT", 1.0)
    records: list[dict[str, Any]] = []
    with trio.fail_after(DEADLINE):
        async with ChaosCluster(tmp_path) as cluster:
            leader = await cluster.leader()
            for node in cluster.node_ids:
                if node != leader:
                    await cluster.kill(node)
            await wait_until(partial(_leaderless, cluster, leader), 10)
            await nemesis.apply(Fault(0.0, "pause", 1.0, "leader"), cluster, records.append)
            assert not cluster.paused and cluster.process_state(leader) != "T"
    (record,) = records
    assert record["outcome"] == "fail" and "no leader" in record["error"]
    assert "window" not in record and record["targets"] == []


async def _leaderless(cluster: ChaosCluster, survivor: str) -> bool:
    status = await cluster.cluster.node_status(survivor)
    return status is not None and status["node"]["role"] != "leader"
