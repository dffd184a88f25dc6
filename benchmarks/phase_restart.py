"""Restart: three nodes holding a large live log are all killed and started again; how long
until the cluster serves.

First, as a baseline, the same full restart of the fresh cluster holding one entry: what
starting three node processes and electing a leader cost by themselves. Then the cluster gets
``entries`` entries of ``entry_bytes`` random bytes (incompressible), appended in batches by
``BUILD_TASKS`` concurrent tasks over as many buses as the per-bus quota needs, within
``build_seconds`` (a build cut short says how much it built). Once every node has applied
everything, all three are killed with SIGKILL and started again, and clients poll from the
moment of the start: the time to an agreed leader, to the first acknowledged append, and to the
first successful (leader-confirmed) read of the last entry written before the kill; serving is
the later of the last two.

The physical bound next to it: reading the bytes of one node's data directory from disk (each
node must at least read its own), timed here with 1 MiB reads; the page cache of those files is
dropped (``posix_fadvise(DONTNEED)``, only these files) before that read and again before the
nodes start, so both start cold.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import trio

from logact.benchmarks.loadgen import Payloads
from logact.benchmarks.processes import all_applied, logact_cluster
from logact.benchmarks.procstat import memory_kib
from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster, agreed_leader
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.errors import LogError
from logact.server.node import data_dir_for

BUILD_TASKS = 4
#: Bytes of bodies per append_batch (the frame limit is 4 MiB of bodies, 1000 entries).
BATCH_BYTES = 1024 * 1024
MAX_BATCH_ENTRIES = 1000
#: Live bytes per bus stay under the default per-bus quota (256 MiB).
BUS_BYTES = 128 * 1024 * 1024
#: Bound on the restarted cluster serving, and on the nodes applying the built log.
SERVE_BOUND_S = 300.0
SETTLE_BOUND_S = 300.0
POLL_S = 0.05
READ_CHUNK = 1024 * 1024


def layout(entries: int, entry_bytes: int) -> tuple[int, int]:
    """(entries per append_batch, buses) for a log of ``entries`` x ``entry_bytes``."""
    batch = max(1, min(MAX_BATCH_ENTRIES, BATCH_BYTES // max(1, entry_bytes)))
    buses = max(1, -(-entries * entry_bytes // BUS_BYTES))
    return batch, buses


def limits_toml(entries: int, entry_bytes: int) -> str:
    """The one quota the build may need raised: the admin principal holds the whole log."""
    need = 2 * entries * entry_bytes
    principal, log = max(need, 1 << 30), max(need, 4 << 30)
    return f"[limits]\nmax_principal_bytes = {principal}\nmax_log_bytes = {log}\n"


async def build(
    cluster: LocalCluster, entries: int, entry_bytes: int, build_seconds: float
) -> dict[str, Any]:
    """Append the log; returns what was built and where the last entry of each bus is."""
    batch, buses = layout(entries, entry_bytes)
    last: dict[str, int] = {}
    built = 0
    began = time.monotonic()

    async def appender(log: Client, task: int, payloads: Payloads) -> None:
        nonlocal built
        while built < entries:
            count = min(batch, entries - built)
            built += count  # claimed before the await, so tasks never overshoot
            bus = f"restart-{(built // batch + task) % buses}"
            batch_entries = [("data", payloads.next()) for _ in range(count)]
            positions = await log.append_batch(bus, batch_entries)
            last[bus] = max(last.get(bus, -1), positions[-1])

    client = Client(cluster.addresses, ADMIN_TOKEN, timeout=60, attempt_timeout=30)
    with trio.move_on_after(build_seconds) as scope:
        async with client as log, trio.open_nursery() as nursery:
            for task in range(BUILD_TASKS):
                nursery.start_soon(appender, log, task, Payloads(entry_bytes, task))
    appended = sum(p + 1 for p in last.values())
    return {
        "entries": appended,
        "entry_bytes": entry_bytes,
        "bytes": appended * entry_bytes,
        "buses": buses,
        "batch": batch,
        "seconds": round(time.monotonic() - began, 1),
        "complete": not scope.cancelled_caught and appended >= entries,
        "last": last,
    }


def _files(directory: Path) -> list[Path]:
    return [p for p in sorted(directory.rglob("*")) if p.is_file()]


def drop_cache(directory: Path) -> None:
    """Drop the page cache of every file under ``directory`` (and nothing else)."""
    for path in _files(directory):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(directory: Path) -> tuple[int, float]:
    """(bytes, seconds) to read every file under ``directory`` once, in 1 MiB reads."""
    total = 0
    began = time.perf_counter()
    for path in _files(directory):
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(READ_CHUNK):
                total += len(chunk)
    return total, time.perf_counter() - began


def physical_bound(data_dirs: dict[str, Path]) -> dict[str, Any]:
    """Cold read of each node's data directory; the bound is the largest one's time."""
    per_node = {}
    for node_id, directory in data_dirs.items():
        drop_cache(directory)
        size, seconds = read_all(directory)
        per_node[node_id] = {"bytes": size, "read_s": round(seconds, 3)}
    largest = max(per_node.values(), key=lambda n: n["bytes"])
    seconds = largest["read_s"]
    return {
        "per_node": per_node,
        "bound_s": seconds,
        "read_mb_per_s": round(largest["bytes"] / seconds / 1e6, 1) if seconds else None,
    }


async def _first(attempt: Any, started: float) -> float | None:
    """Seconds from ``started`` to the first attempt that succeeds (attempts bounded each by
    the client's own timeout, the whole by ``SERVE_BOUND_S``); None if none does."""
    with trio.move_on_after(SERVE_BOUND_S):
        while True:
            try:
                if await attempt():
                    return round(time.monotonic() - started, 3)
            except LogError:
                pass
            await trio.sleep(POLL_S)
    return None


async def serving(cluster: LocalCluster, bus: str, last: int) -> dict[str, Any]:
    """Start every node; time the first acknowledged append and the first read of ``last``."""
    out: dict[str, Any] = {}

    def client() -> Client:  # short attempts: the poll, not the client's backoff, sets the pace
        return Client(
            cluster.addresses, ADMIN_TOKEN, timeout=1.0, attempt_timeout=0.5, connect_timeout=0.5
        )

    async with client() as writer, client() as reader:

        async def append() -> bool:
            await writer.append("restart-probe", "data", b"after restart")
            return True

        async def read_last() -> bool:
            result = await reader.read(bus, last, 1)
            return bool(result.entries) and result.entries[0].pos == last

        async def leader() -> bool:
            return agreed_leader(await cluster.statuses(), len(cluster.node_ids)) is not None

        started = time.monotonic()
        cluster.start_all()

        async def time_it(name: str, attempt: Any) -> None:
            out[name] = await _first(attempt, started)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(time_it, "first_ack_s", append)
            nursery.start_soon(time_it, "first_read_last_s", read_last)
            nursery.start_soon(time_it, "leader_s", leader)
    return out


def _serving_s(times: dict[str, Any]) -> float | None:
    """Serving: both an append acknowledged and the last entry read."""
    ack, read = times.get("first_ack_s"), times.get("first_read_last_s")
    return None if ack is None or read is None else max(ack, read)


async def measure(
    directory: Path, durability: str, entries: int, entry_bytes: int, build_seconds: float
) -> dict[str, Any]:
    """The restart phase on a fresh cluster."""
    extra = limits_toml(entries, entry_bytes)
    async with logact_cluster(directory, durability, extra) as (cluster, _leader):
        # The same restart with nothing in the log: what starting costs by itself.
        async with Client(cluster.addresses, ADMIN_TOKEN) as log:
            empty_last = await log.append("restart-empty", "data", b"only entry")
        await all_applied(cluster, SETTLE_BOUND_S)
        cluster.kill_all()
        empty = await serving(cluster, "restart-empty", empty_last)
        built = await build(cluster, entries, entry_bytes, build_seconds)
        if not built["last"]:
            raise RuntimeError("nothing was appended within the build time")
        statuses = await all_applied(cluster, SETTLE_BOUND_S)
        held = {k: s["log"] for k, s in statuses.items()}
        memory = {n: memory_kib(pid) for n in cluster.node_ids if (pid := cluster.pid(n))}
        cluster.kill_all()
        data_dirs = {n: data_dir_for(cluster.config, n, cluster.run_dir) for n in cluster.node_ids}
        bound = await trio.to_thread.run_sync(physical_bound, data_dirs)
        for path in data_dirs.values():
            drop_cache(path)
        bus, last = max(built["last"].items(), key=lambda item: item[1])
        times = await serving(cluster, bus, last)
    return {
        "built": {k: v for k, v in built.items() if k != "last"},
        "log_held": held,
        "memory_before_kill": memory,
        "physical": bound,
        **times,
        "serving_s": _serving_s(times),
        "empty_log": {**empty, "serving_s": _serving_s(empty)},
    }
