"""Memory per node for the bytes the log holds (issue 18: RSS <= 1.5x live bytes + 64 MiB).

A fresh 3-node cluster (separate processes, as ``logact bench`` starts it) gets ``mb`` MiB of
live entries: a mix of 100 B and 10 KB bodies (``small_share`` of the entries are 100 B),
appended by ``concurrency`` tasks of one client across ``buses`` buses, nothing trimmed. Once
every node has applied every entry, each node's RSS (and peak, anonymous and file-backed parts,
from /proc) is read next to its own count of live bytes (``status`` -> ``log``), the size of its
Raft journal file and of its snapshot, and compared with the target ``1.5 x live + 64 MiB``.
Then a follower is restarted (snapshot loaded, journal replayed) and measured again once it has
applied every entry: its peak is what a restart costs.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN, write_local_config
from logact.protocol.errors import LogError
from logact.server.node import data_dir_for

MIB = 1024 * 1024
SMALL = 100
LARGE = 10 * 1024
#: The goal of issue 18: RSS per node <= TARGET_FACTOR x live bytes + TARGET_BASE.
TARGET_FACTOR = 1.5
TARGET_BASE = 64 * MIB
#: How long the nodes may take to apply everything once the last append was acknowledged.
APPLY_TIMEOUT_S = 120.0

Log = Callable[[str], None]


@dataclass(frozen=True)
class MemorySettings:
    mb: float = 200.0
    small_share: float = 0.75
    concurrency: int = 16
    buses: int = 4
    durability: str = "fsync"
    #: The nodes' log_compaction_min_entries (a snapshot every so many Raft entries); None:
    #: the configured default.
    compact_every: int | None = None
    #: The fill gives up (and the run fails) after this long.
    max_seconds: float = 600.0
    #: Added to every node's environment (e.g. MALLOC_ARENA_MAX for an experiment).
    node_env: dict[str, str] = field(default_factory=dict)


def target_bytes(live: int) -> int:
    return int(TARGET_FACTOR * live + TARGET_BASE)


def is_small(index: int, small_share: float) -> bool:
    """Entry ``index`` is a 100 B one: exactly ``small_share`` of every prefix, interleaved."""
    return int((index + 1) * small_share) > int(index * small_share)


def process_memory(pid: int) -> dict[str, int] | None:
    """VmRSS, VmHWM (peak), RssAnon and RssFile of ``pid`` in bytes; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:
        return None
    names = {"VmRSS": "rss", "VmHWM": "peak", "RssAnon": "anon", "RssFile": "file"}
    return {
        name: int(fields[key].split()[0]) * 1024 for key, name in names.items() if key in fields
    }


class FillFailed(RuntimeError):
    """The cluster did not take (or apply) the load in time: nothing was measured."""


async def fill(addresses: list[str], settings: MemorySettings) -> dict[str, Any]:
    """Append until ``settings.mb`` MiB of bodies are acknowledged; what was appended."""
    goal = int(settings.mb * MIB)
    # Fresh random bodies: nothing can profit from compressing repeats.
    rng = random.Random(1)
    counter = iter(range(10**12))
    done = {"entries": 0, "bytes": 0}
    started = time.monotonic()

    async def appender(log: Client) -> None:
        while done["bytes"] < goal:
            index = next(counter)
            body = rng.randbytes(SMALL if is_small(index, settings.small_share) else LARGE)
            done["bytes"] += len(body)  # counted before the await: no task overshoots
            try:
                await log.append(f"memory-{index % settings.buses}", "data", body)
            except LogError as exc:
                raise FillFailed(f"append {index} failed: {exc}") from None
            done["entries"] += 1

    try:
        with trio.fail_after(settings.max_seconds):
            async with (
                Client(addresses, ADMIN_TOKEN, timeout=30) as log,
                trio.open_nursery() as nursery,
            ):
                for _ in range(settings.concurrency):
                    nursery.start_soon(appender, log)
    except trio.TooSlowError:
        raise FillFailed(
            f"{done['bytes'] / MIB:.0f} of {settings.mb:g} MiB appended in "
            f"{settings.max_seconds:g}s"
        ) from None
    return {**done, "seconds": round(time.monotonic() - started, 1)}


async def _applied_everywhere(cluster: LocalCluster, entries: int) -> dict[str, Any]:
    """Every node's status once each has applied ``entries`` entries."""
    with trio.move_on_after(APPLY_TIMEOUT_S):
        while True:
            statuses = await cluster.statuses()
            if all(s is not None and s["log"]["entries"] >= entries for s in statuses.values()):
                return statuses  # type: ignore[return-value]
            await trio.sleep(0.2)  # polling a separate process's status: no event to wait on
    raise FillFailed(f"not every node applied the {entries} entries in {APPLY_TIMEOUT_S:g}s")


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def node_figures(pid: int, status: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """One node's memory next to what its log holds."""
    memory = process_memory(pid) or {}
    live = status["log"]["bytes"]
    span = status["node"].get("journal") or []
    rss = memory.get("rss", 0)
    return {
        **memory,
        "live": live,
        "entries": status["log"]["entries"],
        "journal_entries": span[1] - span[0] + 1 if span else 0,
        "journal_file": _file_size(data_dir / "raft.journal"),
        "snapshot_file": _file_size(data_dir / "raft.snapshot"),
        "role": status["node"].get("role"),
        "target": target_bytes(live),
        "ratio": round(rss / live, 2) if live else None,
        "meets_target": rss <= target_bytes(live),
    }


async def measure(settings: MemorySettings, directory: Path, log: Log) -> dict[str, Any]:
    """One run on a fresh cluster in ``directory``: the fill and every node's figures."""
    extra = (
        f"[raft]\nlog_compaction_min_entries = {settings.compact_every}\n"
        if settings.compact_every is not None
        else ""
    )
    config = write_local_config(directory, durability=settings.durability, extra=extra)
    cluster = LocalCluster(config, directory / "run", env=settings.node_env)
    try:
        cluster.start_all()
        await cluster.wait_for_leader(30)
        idle = {nid: process_memory(pid) for nid, pid in _pids(cluster).items()}
        log(f"appending {settings.mb:g} MiB ({settings.small_share:.0%} of entries 100 B)")
        appended = await fill(cluster.addresses, settings)
        statuses = await _applied_everywhere(cluster, appended["entries"])
        nodes = {
            nid: node_figures(
                pid, statuses[nid], data_dir_for(cluster.config, nid, cluster.run_dir)
            )
            for nid, pid in _pids(cluster).items()
        }
        for nid, figures in nodes.items():
            figures["idle_rss"] = (idle.get(nid) or {}).get("rss")
        log("restarting a follower")
        restarted = await _restart_follower(cluster, nodes, appended["entries"])
    finally:
        cluster.kill_all()
    return {"fill": appended, "nodes": nodes, "restart": restarted}


async def _restart_follower(
    cluster: LocalCluster, nodes: dict[str, Any], entries: int
) -> dict[str, Any]:
    """Stop a follower, start it again and, once it has applied every entry, its figures: a
    restart loads the snapshot and replays the journal, so its peak says what that costs."""
    nid = next(nid for nid, figures in sorted(nodes.items()) if figures["role"] == "follower")
    cluster.stop(nid)
    started = time.monotonic()
    pid = cluster.start(nid)
    statuses = await _applied_everywhere(cluster, entries)
    seconds = round(time.monotonic() - started, 1)
    figures = node_figures(pid, statuses[nid], data_dir_for(cluster.config, nid, cluster.run_dir))
    return {"node": nid, "seconds": seconds, **figures}


def _pids(cluster: LocalCluster) -> dict[str, int]:
    pids = {nid: cluster.pid(nid) for nid in cluster.node_ids}
    return {nid: pid for nid, pid in pids.items() if pid is not None}


async def run(settings: MemorySettings, repeat: int, log: Log) -> dict[str, Any]:
    """``repeat`` runs, each on a fresh cluster, and the median of each run's worst node."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="logact-memory-") as tmp:
        for index in range(repeat):
            log(f"run {index + 1} of {repeat}")
            runs.append(await measure(settings, Path(tmp) / f"run{index}", log))
    worst = [max(r["nodes"].values(), key=lambda n: n["rss"] - n["target"]) for r in runs]
    keys = ("rss", "peak", "live", "target", "ratio")
    return {
        "settings": asdict(settings),
        "runs": runs,
        "median_worst_node": {key: statistics.median(n[key] for n in worst) for key in keys},
        "median_restarted": {
            key: statistics.median(r["restart"][key] for r in runs) for key in (*keys, "seconds")
        },
    }


def describe(result: dict[str, Any]) -> list[str]:
    """The results for people: one line per node of each run, then the medians."""
    lines = []
    for index, one in enumerate(result["runs"]):
        fill_ = one["fill"]
        lines.append(
            f"run {index + 1}: {fill_['entries']} entries, {fill_['bytes'] / MIB:.0f} MiB of "
            f"bodies in {fill_['seconds']} s"
        )
        for nid, n in sorted(one["nodes"].items()):
            lines.append(
                f"  {nid} {n['role']:9} RSS {n['rss'] / MIB:6.0f} MiB (peak "
                f"{n['peak'] / MIB:.0f}, idle {(n['idle_rss'] or 0) / MIB:.0f})  live "
                f"{n['live'] / MIB:6.1f} MiB  RSS/live {n['ratio']}  target "
                f"{n['target'] / MIB:.0f} MiB {'met' if n['meets_target'] else 'MISSED'}  "
                f"journal {n['journal_entries']} entries {n['journal_file'] / MIB:.0f} MiB  "
                f"snapshot {n['snapshot_file'] / MIB:.0f} MiB"
            )
        r = one["restart"]
        lines.append(
            f"  {r['node']} restarted: serving every entry after {r['seconds']} s, RSS "
            f"{r['rss'] / MIB:.0f} MiB (peak {r['peak'] / MIB:.0f}), RSS/live {r['ratio']}, "
            f"target {r['target'] / MIB:.0f} MiB {'met' if r['meets_target'] else 'MISSED'}"
        )
    for key, what in (
        ("median_worst_node", "the worst node per run"),
        ("median_restarted", "the restarted node"),
    ):
        m = result[key]
        lines.append(
            f"median of {what}: RSS {m['rss'] / MIB:.0f} MiB (peak {m['peak'] / MIB:.0f}) for "
            f"{m['live'] / MIB:.1f} MiB live, RSS/live {m['ratio']:.2f}, target "
            f"{m['target'] / MIB:.0f} MiB"
        )
    return lines
