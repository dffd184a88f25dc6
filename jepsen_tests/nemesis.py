"""Carry out one scheduled fault on a ``ChaosCluster`` and record it in the history.

``apply(fault, cluster, record)`` resolves the fault's target against the cluster as it is now
(who leads, who follows), injects the fault, keeps it for ``fault.duration_s``, heals it, waits
until the cluster is whole again (bounded), and writes one ``fault`` record (docs/chaos.md):
``window`` is [injected, healed] in ``time.monotonic_ns()``; ``outcome`` is ``ok`` when the
fault was applied, ``fail`` when nothing was done (e.g. no leader to target), ``info`` when it
broke off midway (``error`` says why). ``settle_error`` marks an ``ok`` fault after which the
cluster was not whole within the settle timeout. Extra fields describe what was done
(``groups``/``cut``, ``cuts``, ``roles``). Whatever the fault changed is undone even on errors
or cancellation.

Random choices (which node to kill, which minority to cut off) come from an RNG seeded by the
fault itself, so replaying a schedule picks the same node ids.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from logact.client.client import Client
from logact.ops.test_config import agent_token
from logact.protocol.errors import LogError
from logact.server.storage import synced_size_path

from .chaos_cluster import ChaosCluster
from .history import Op, make_op, now_ns
from .hostile_input import Attacker
from .schedule import Fault

#: Runs load until the event is set (the targeted case passes ``>= 10 KB`` entries through it).
Load = Callable[[trio.Event], Awaitable[None]]

#: How long a fault waits for a leader to target, and for the cluster to be whole after healing.
LEADER_TIMEOUT = 20.0
SETTLE_TIMEOUT = 30.0
#: Entries written by the targeted case's built-in load.
TARGETED_ENTRY_BYTES = 16 * 1024
TARGETED_BUS = "nemesis/targeted"

_ids = itertools.count()


class Writer(Protocol):
    def write(self, op: Op) -> None: ...


Recorder = Writer | Callable[[Op], None]


class NoTarget(RuntimeError):
    """The fault's target does not exist right now (no leader, no follower): nothing was done."""


@dataclass
class _Effects:
    """What a fault has changed and not yet undone; restored on any exit."""

    killed: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    partitioned: bool = False
    start_ns: int | None = None
    end_ns: int | None = None
    targets: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def began(self) -> None:
        if self.start_ns is None:
            self.start_ns = now_ns()

    def healed(self) -> None:
        self.end_ns = now_ns()


async def apply(
    fault: Fault,
    cluster: ChaosCluster,
    record: Recorder | None = None,
    *,
    load: Load | None = None,
    op_id: int | None = None,
    settle_timeout: float = SETTLE_TIMEOUT,
) -> Op:
    """Inject ``fault``, hold it for its duration, heal, settle; returns the record written."""
    if fault.kind not in _KINDS:
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    invoke = now_ns()
    rng = random.Random(f"{fault.kind}/{fault.target}/{fault.at_s!r}")
    effects = _Effects()
    outcome = "ok"
    error: str | None = None
    op: Op = {}
    try:
        await _KINDS[fault.kind](fault, cluster, effects, rng, load)
    except NoTarget as exc:
        outcome, error = ("fail" if effects.start_ns is None else "info"), str(exc)
    except BaseException as exc:
        outcome, error = "info", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with trio.CancelScope(shield=True):
            await _restore(cluster, effects)
            # A cluster that does not recover is a finding, not a nemesis failure.
            if outcome == "ok" and (problem := await _settle(cluster, settle_timeout)):
                effects.details["settle_error"] = problem
            op = _write(record, fault, effects, invoke, outcome, error, op_id)
    return op


def _write(
    record: Recorder | None,
    fault: Fault,
    effects: _Effects,
    invoke: int,
    outcome: str,
    error: str | None,
    op_id: int | None,
) -> Op:
    fields: dict[str, Any] = {
        "fault": fault.kind,
        "targets": effects.targets,
        "target": fault.target,
        "duration_s": fault.duration_s,
        **effects.details,
    }
    if effects.start_ns is not None:
        fields["window"] = [effects.start_ns, effects.end_ns or now_ns()]
    if error is not None:
        fields["error"] = error
    op = make_op(
        "nemesis",
        "fault",
        next(_ids) if op_id is None else op_id,
        invoke,
        now_ns(),
        outcome,  # type: ignore[arg-type]
        **fields,
    )
    if record is not None:
        write = getattr(record, "write", record)
        write(op)
    return op


async def _restore(cluster: ChaosCluster, effects: _Effects) -> None:
    """Undo whatever is still in effect (normally nothing: each kind heals itself)."""
    if not (effects.killed or effects.paused or effects.partitioned):
        if effects.start_ns is not None and effects.end_ns is None:
            effects.healed()
        return
    for node in sorted(effects.paused):
        cluster.resume(node)
    effects.paused.clear()
    if effects.partitioned:
        await cluster.partitioner.heal()
        effects.partitioned = False
    for node in sorted(effects.killed):
        if not cluster.running(node):
            await cluster.start(node)
    effects.killed.clear()
    if effects.start_ns is not None and effects.end_ns is None:
        effects.healed()


async def _settle(cluster: ChaosCluster, timeout: float) -> str | None:
    """Wait until every node serves and all agree on a leader; the problem if not."""
    try:
        await cluster.wait_healthy(timeout)
    except trio.TooSlowError:
        statuses = await cluster.statuses()
        summary = {
            n: (s["node"]["role"], s["node"]["leader"]) if s else None for n, s in statuses.items()
        }
        return f"cluster not whole {timeout:.0f}s after healing: {summary}"
    return None


# ---- target resolution -----------------------------------------------------------------


async def _leader(cluster: ChaosCluster) -> str:
    try:
        return await cluster.leader(LEADER_TIMEOUT)
    except trio.TooSlowError:
        raise NoTarget(f"no leader within {LEADER_TIMEOUT:.0f}s") from None


async def _follower(cluster: ChaosCluster, rng: random.Random) -> tuple[str, str]:
    """(a follower, the leader)."""
    leader = await _leader(cluster)
    followers = await cluster.followers(leader)
    if not followers:
        raise NoTarget(f"no running follower of {leader}")
    return rng.choice(sorted(followers)), leader


async def _node(cluster: ChaosCluster, target: str, rng: random.Random) -> str:
    if target == "leader":
        return await _leader(cluster)
    if target == "follower":
        return (await _follower(cluster, rng))[0]
    if target == "random":
        return rng.choice(cluster.node_ids)
    raise ValueError(f"unknown node target {target!r}")


# ---- the kinds ----------------------------------------------------------------------------


async def _kill(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    node = await _node(cluster, fault.target, rng)
    fx.targets = [node]
    fx.began()
    fx.killed.add(node)
    await cluster.kill(node)
    await trio.sleep(fault.duration_s)
    await cluster.start(node)
    fx.killed.discard(node)
    fx.healed()


async def _pause(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    node = await _node(cluster, fault.target, rng)
    fx.targets = [node]
    fx.began()
    fx.paused.add(node)
    cluster.pause(node)
    await trio.sleep(fault.duration_s)
    cluster.resume(node)
    fx.paused.discard(node)
    fx.healed()


async def _partition(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    nodes = cluster.node_ids
    partitioner = cluster.partitioner
    if fault.target == "isolate-leader":
        leader = await _leader(cluster)
        groups = [{leader}, set(nodes) - {leader}]
        fx.targets = [leader]
    elif fault.target == "majority-minority":
        shuffled = rng.sample(nodes, len(nodes))
        minority = set(shuffled[: len(nodes) // 2])
        groups = [minority, set(nodes) - minority]
        fx.targets = sorted(minority)
    elif fault.target == "bridge":
        hub = rng.choice(nodes)
        fx.targets = [hub]
        groups = []
    else:
        raise ValueError(f"unknown partition {fault.target!r}")
    fx.began()
    fx.partitioned = True
    if fault.target == "bridge":
        await partitioner.bridge(fx.targets[0])
    else:
        await partitioner.partition(groups)
        fx.details["groups"] = [sorted(g) for g in groups]
    fx.details["cut"] = sorted(sorted(pair) for pair in partitioner.cut)
    await trio.sleep(fault.duration_s)
    await partitioner.heal()
    fx.partitioned = False
    fx.healed()


async def _restart_all(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    fx.targets = cluster.node_ids
    fx.began()
    fx.killed.update(cluster.node_ids)
    await cluster.kill_all()
    await trio.sleep(fault.duration_s)
    await cluster.start_all()
    fx.killed.clear()
    fx.healed()


def cut_to_synced(data_dir: Path) -> list[dict[str, Any]]:
    """Cut every traced record file under ``data_dir`` back to its last fsync'd size.

    What a power loss would leave of a killed node (the page cache is gone). A file is only cut
    if it is longer than its recorded synced size. The trace is one fixed-width write in place
    after each fdatasync; an empty trace (the node died between creating it and its first sync
    at open) is left alone (``synced`` None in the report).
    Returns one entry per trace: file, size, synced, cut.
    """
    cuts: list[dict[str, Any]] = []
    for trace in sorted(data_dir.rglob("*.synced")):
        target = trace.with_name(trace.name.removesuffix(".synced"))
        assert synced_size_path(target) == trace
        if not target.exists():
            continue
        size = target.stat().st_size
        text = trace.read_text().strip()
        entry: dict[str, Any] = {"file": str(target.relative_to(data_dir)), "size": size}
        if not text.isdigit():
            entry.update(synced=None, cut=0)
        else:
            synced = int(text)
            entry.update(synced=synced, cut=max(0, size - synced))
            if size > synced:
                with open(target, "r+b") as handle:
                    handle.truncate(synced)
        cuts.append(entry)
    return cuts


async def _lose_unsynced(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    """A power loss: kill (target ``all``: every node at once), drop unsynced writes, restart.

    With ``all`` it checks the durability claim itself: an acknowledged append is fsync'd on a
    majority, so it must survive every node losing what it had not synced.
    """
    nodes = cluster.node_ids if fault.target == "all" else [await _node(cluster, fault.target, rng)]
    fx.targets = nodes
    fx.began()
    fx.killed.update(nodes)
    if fault.target == "all":
        await cluster.kill_all()
    else:
        await cluster.kill(nodes[0])
    fx.details["cuts"] = {node: cut_to_synced(cluster.data_dir(node)) for node in nodes}
    await trio.sleep(fault.duration_s)
    for node in nodes:
        await cluster.start(node)
    fx.killed.clear()
    fx.healed()


async def _targeted(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    """Pause a follower, load with >= 10 KB entries, kill -9 the leader, resume the follower.

    The paused follower's socket buffers fill with pipelined appends of a leader that then
    dies; on resuming it reads them after the new leader has taken over (PySyncObj's suspected
    truncation of already-applied entries, see the reference note). Load runs until the old
    leader is back.
    """
    follower, leader = await _follower(cluster, rng)
    fx.targets = [follower, leader]
    fx.details["roles"] = {"paused": follower, "killed": leader}
    fx.began()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(load or _big_entry_load(cluster), stop)
        try:
            fx.paused.add(follower)
            cluster.pause(follower)
            await trio.sleep(fault.duration_s)
            fx.killed.add(leader)
            await cluster.kill(leader)
            cluster.resume(follower)
            fx.paused.discard(follower)
            # Let the two survivors elect a leader and replicate under load before the old
            # leader returns (bounded; the settle step reports a cluster that never recovers).
            with trio.move_on_after(LEADER_TIMEOUT):
                await cluster.leader(LEADER_TIMEOUT)
            await cluster.start(leader)
            fx.killed.discard(leader)
            fx.healed()
        finally:
            stop.set()


def _big_entry_load(cluster: ChaosCluster, writers: int = 4) -> Load:
    """Appenders of ``TARGETED_ENTRY_BYTES`` entries on their own bus, outcomes ignored."""

    async def run(stop: trio.Event) -> None:
        body = "x" * TARGETED_ENTRY_BYTES

        async def writer() -> None:
            while not stop.is_set():
                try:
                    await log.append(TARGETED_BUS, "data", body, timeout=5.0)
                except LogError:
                    await trio.sleep(0.05)

        async with (
            Client(cluster.addresses, cluster.admin_token(), timeout=5.0) as log,
            trio.open_nursery() as nursery,
        ):
            for _ in range(writers):
                nursery.start_soon(writer)
            await stop.wait()
            nursery.cancel_scope.cancel()

    return run


async def _hostile(
    fault: Fault, cluster: ChaosCluster, fx: _Effects, rng: random.Random, load: Load | None
) -> None:
    """Hostile input at one node for the fault's duration (``hostile_input.Attacker``).

    Nothing is left to undo: the attack ends with its connections. ``sent`` in the record
    counts what was sent and answered, so a run shows the attack happened.
    """
    node = await _node(cluster, fault.target, rng)
    fx.targets = [node]
    attacker = Attacker(
        cluster.client_address(node),
        cluster.raft_address(node),
        agent_token("mailer"),
        seed=f"{fault.at_s!r}/{node}",
    )
    fx.began()
    fx.details["sent"] = await attacker.run(fault.duration_s)
    fx.healed()


_KINDS: dict[
    str,
    Callable[[Fault, ChaosCluster, _Effects, random.Random, Load | None], Awaitable[None]],
] = {
    "kill": _kill,
    "pause": _pause,
    "partition": _partition,
    "restart-all": _restart_all,
    "lose-unsynced": _lose_unsynced,
    "targeted": _targeted,
    "hostile": _hostile,
}
