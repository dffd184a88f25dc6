"""Failover: kill -9 the leader under a light append load; how long until appends are
acknowledged again.

A paced load worker (``TASKS`` appenders, each one 100 B append every ``INTERVAL_S``, the real
client with its own retries) runs for the whole phase and reports every acknowledged append's
(began, ended) on the machine-wide monotonic clock as it happens. Meanwhile, ``kills`` times:
with every node up and the load running, the leader is killed with SIGKILL; once it is reaped,
the time to the first acknowledgement of an append *begun after it died* (so no reply of the
dead leader can count) is the failover time, measured from the kill. The time until the
survivors agree on a new leader (polled every 0.1 s) is recorded too, to tell the election
from the client's retry delays. The killed node is then restarted and caught up.

Printed next to the cluster's configured election timeout (``[raft] raft_min_timeout`` ..
``raft_max_timeout``). For etcd (optional baseline), the same with its members and its default
election timeout; its load worker talks to a follower that is never killed (``aetcd`` has one
endpoint and does not fail over), which forwards to whichever member leads.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from logact.benchmarks import etcd as etcd_mod
from logact.benchmarks.processes import LiveWorker, all_applied, live_worker, logact_cluster
from logact.benchmarks.stats import summarize_s
from logact.ops.local_cluster import agreed_leader
from logact.ops.test_config import ADMIN_TOKEN

TASKS = 4
INTERVAL_S = 0.02
#: Load before each kill, so the client is connected and appending steadily.
STEADY_S = 1.0
#: Bound on each kill: a new leader and an acknowledged append, then the restarted node's
#: catch-up.
FAILOVER_BOUND_S = 30.0
CATCH_UP_BOUND_S = 60.0
POLL_S = 0.1
#: etcd's defaults (``--heartbeat-interval 100 --election-timeout 1000``), which the bench keeps.
ETCD_ELECTION_TIMEOUT_S = 1.0


def first_ack_after(acks: list[tuple[float, float]], dead_at: float) -> float | None:
    """When the first append begun at or after ``dead_at`` was acknowledged; None if none."""
    ends = [ended for began, ended in acks if began >= dead_at]
    return min(ends) if ends else None


def shape(kills: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kill: seconds from the kill to a new leader and to the first acknowledged append
    (monotonic times ``kill_at``, ``leader_at``, ``ack_at``), and their summaries; a kill with
    no leader or no acknowledgement within its bound counts as missed."""

    def since(kill: dict[str, Any], key: str) -> float | None:
        at = kill.get(key)
        return None if at is None else round(at - kill["kill_at"], 3)

    per_kill = [
        {
            "killed": kill["killed"],
            "new_leader": kill.get("new_leader"),
            "leader_s": since(kill, "leader_at"),
            "first_ack_s": since(kill, "ack_at"),
        }
        for kill in kills
    ]
    return {
        "per_kill": per_kill,
        "first_ack": summarize_s([k["first_ack_s"] for k in per_kill]),
        "new_leader": summarize_s([k["leader_s"] for k in per_kill]),
    }


Find = Callable[[], Awaitable[str | None]]


async def _poll(find: Find, bound: float) -> str | None:
    """The first non-None answer of ``find``, polled every ``POLL_S`` within ``bound``."""
    with trio.move_on_after(bound):
        while (found := await find()) is None:
            await trio.sleep(POLL_S)
        return found
    return None


@dataclass(frozen=True)
class Target:
    """What a failover run needs of a system: its load worker's spec, the leader (None while
    there is none), the leader to kill (None until there is one that may be killed), and how
    to kill a node and bring it back."""

    spec: dict[str, Any]
    leader: Find
    victim: Find
    kill: Callable[[str], None]
    restart_and_catch_up: Callable[[str], Awaitable[None]]


async def _first_ack(worker: LiveWorker, after: float, seen: int, timeout: float) -> float | None:
    """When the first append the worker began at or after ``after`` was acknowledged, waiting
    up to ``timeout`` for it; ``seen``: reports that came before ``after`` (not looked at)."""

    def found() -> float | None:
        acks = [(r["ack"][0], r["ack"][1]) for r in worker.reports[seen:] if "ack" in r]
        return first_ack_after(acks, after)

    await worker.wait_until(lambda: found() is not None, max(0.0, timeout))
    return found()


async def _kill_leader(target: Target, worker: LiveWorker) -> dict[str, Any]:
    """One kill: steady load, SIGKILL the leader, time the new leader and the first
    acknowledged append, bring the node back."""
    if await _first_ack(worker, time.monotonic(), len(worker.reports), 30) is None:
        raise RuntimeError("the load gets no append acknowledged")
    await trio.sleep(STEADY_S)
    killed = await _poll(target.victim, FAILOVER_BOUND_S)
    if killed is None:
        raise RuntimeError("no leader to kill")
    seen = len(worker.reports)
    kill_at = time.monotonic()
    await trio.to_thread.run_sync(target.kill, killed)
    dead_at = time.monotonic()
    found: dict[str, Any] = {}

    async def another() -> str | None:
        leader = await target.leader()
        return leader if leader != killed else None

    async def new_leader() -> None:
        found["new_leader"] = await _poll(another, FAILOVER_BOUND_S)
        found["leader_at"] = time.monotonic() if found["new_leader"] is not None else None

    async def first_ack() -> None:
        found["ack_at"] = await _first_ack(worker, dead_at, seen, FAILOVER_BOUND_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(new_leader)
        nursery.start_soon(first_ack)
    await target.restart_and_catch_up(killed)
    return {"killed": killed, "kill_at": kill_at, **found}


async def _run(target: Target, kills: int, logs: Path) -> dict[str, Any]:
    spec = {
        **target.spec,
        "mode": "paced",
        "size": 100,
        "bus": "bench-failover",
        "seed": 1,
        "warmup_ops": 5,
        "tasks": TASKS,
        "interval_s": INTERVAL_S,
        "max_seconds": kills * (STEADY_S + FAILOVER_BOUND_S + CATCH_UP_BOUND_S + 30),
    }
    async with live_worker(spec, logs / f"failover-{spec['target']}.log") as worker:
        done = [await _kill_leader(target, worker) for _ in range(kills)]
    errors = (worker.result or {}).get("errors", {})
    return {**shape(done), "load_errors": errors}


async def _logact(directory: Path, durability: str, kills: int) -> dict[str, Any]:
    async with logact_cluster(directory, durability) as (cluster, _leader):
        raft = cluster.config.raft

        async def leader() -> str | None:
            alive = [n for n in cluster.node_ids if cluster.pid(n) is not None]
            return agreed_leader(await cluster.statuses(), len(cluster.node_ids), alive)

        async def restart_and_catch_up(node_id: str) -> None:
            cluster.start(node_id)
            await all_applied(cluster, CATCH_UP_BOUND_S)

        spec = {"target": "logact", "addresses": cluster.addresses, "token": ADMIN_TOKEN}
        target = Target(spec, leader, leader, cluster.kill, restart_and_catch_up)
        result = await _run(target, kills, directory / "logs")
    return {
        "election_timeout_s": [raft.raft_min_timeout, raft.raft_max_timeout],
        **result,
    }


async def _etcd(directory: Path, kills: int) -> dict[str, Any]:
    cluster = etcd_mod.EtcdCluster(directory)
    try:
        cluster.start()
        await trio.to_thread.run_sync(cluster.wait_healthy, 30.0)
        first = await trio.to_thread.run_sync(cluster.leader)
        names = cluster.names
        # The load's member: never killed, so the worker's one endpoint stays up.
        anchor = names[(names.index(first) + 1) % len(names)]

        async def leader() -> str | None:
            try:
                return await trio.to_thread.run_sync(cluster.leader)
            except RuntimeError:
                return None

        async def victim() -> str | None:
            found = await leader()
            if found == anchor:  # hand leadership to a member that may be killed
                other = next(n for n in names if n != anchor)
                await trio.to_thread.run_sync(cluster.move_leader, found, other)
                return None
            return found

        async def restart_and_catch_up(name: str) -> None:
            cluster.start_member(name)
            await trio.to_thread.run_sync(cluster.wait_healthy, CATCH_UP_BOUND_S)

        spec = {"target": "etcd", "endpoint": cluster.endpoint(anchor)}
        target = Target(spec, leader, victim, cluster.kill, restart_and_catch_up)
        result = await _run(target, kills, directory / "logs")
        return {
            "election_timeout_s": [ETCD_ELECTION_TIMEOUT_S, 2 * ETCD_ELECTION_TIMEOUT_S],
            **result,
        }
    finally:
        cluster.kill_all()


async def measure(directory: Path, durability: str, kills: int, with_etcd: bool) -> dict[str, Any]:
    """The failover phase: ``kills`` leader kills on LogAct, and on etcd if asked."""
    out: dict[str, Any] = {"kills": kills, "load": f"{TASKS} appenders, 1 per {INTERVAL_S} s each"}
    out["logact"] = await _logact(directory / "logact", durability, kills)
    if with_etcd:
        out["etcd"] = await _etcd(directory / "etcd", kills)
    return out
