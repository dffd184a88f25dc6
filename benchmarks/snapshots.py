"""``logact bench-snapshots``: do snapshots of a large live state stall appends or call elections?

Two fresh 3-node clusters, one after the other, get the same load: ``--state-mb`` of live state
(10 KB entries, appended in 1 MB batches), then ``--seconds`` of one-at-a-time 100 B appends.
The baseline never snapshots; the measured cluster compacts every ``COMPACT_EVERY`` Raft entries,
so all three nodes snapshot the whole state at about the same index, repeatedly, during the
measured window. Printed and written to JSON: append latency (p50, p99, max), appends slower
than the election timeout, Raft term changes (elections), and snapshots written per node — a
run in which no snapshot was written is reported as such and exits non-zero.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import trio

from logact.benchmarks.options import results_options
from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.stopping import Stopped, stop_on_signals
from logact.ops.test_config import ADMIN_TOKEN, write_local_config
from logact.server.config import RaftTuning

ENTRY = "x" * 10_000
BATCH = 100
#: The measured cluster compacts this often (Raft entries): every ~2 s of the measured load.
COMPACT_EVERY = 300
NEVER = 10**9


async def _measure(directory: Path, state_mb: int, seconds: float, compact: int) -> dict[str, Any]:
    config = write_local_config(
        directory, extra=f"[raft]\nlog_compaction_min_entries = {compact}\n"
    )
    cluster = LocalCluster(config, directory / "run")
    try:
        cluster.start_all()
        await cluster.wait_for_leader(30)
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=30) as log:
            for start in range(0, state_mb * 100, BATCH):
                await log.append_batch(
                    "state", [("data", {"i": start + k, "b": ENTRY}) for k in range(BATCH)]
                )
            before = await cluster.statuses()
            latencies: list[float] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await log.append("load", "data", "y" * 100)
                latencies.append(time.perf_counter() - started)
            after = await cluster.statuses()
    finally:
        cluster.kill_all()
    terms = {n: [s["node"]["term"] if s else None for s in (before[n], after[n])] for n in before}
    written = {
        n: (after[n] or {}).get("node", {}).get("snapshots", {}).get("written", 0)
        - (before[n] or {}).get("node", {}).get("snapshots", {}).get("written", 0)
        for n in before
    }
    timeout = RaftTuning().raft_min_timeout
    ordered = sorted(latencies)
    return {
        "appends": len(latencies),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "slower_than_election_timeout": sum(1 for x in latencies if x > timeout),
        # Terms that began during the load: each is an election.
        "elections": max((b - a for a, b in terms.values() if a is not None and b), default=0),
        "terms": terms,
        "snapshots_written": written,
    }


@click.command("bench-snapshots")
@click.option("--state-mb", type=int, default=100, show_default=True, help="Live state to build.")
@click.option("--seconds", type=float, default=20.0, show_default=True, help="Measured load.")
@results_options("bench-results/snapshots.json")
def bench_snapshots(state_mb: int, seconds: float, out: str, as_json: bool) -> None:
    """Append latency and elections while every node snapshots a large live state."""
    results: dict[str, Any] = {"state_mb": state_mb, "seconds": seconds}

    def measure_both() -> None:
        with tempfile.TemporaryDirectory(prefix="logact-snapshots-") as tmp:
            for name, compact in (("baseline (no snapshots)", NEVER), ("snapshots", COMPACT_EVERY)):
                click.echo(
                    f"{name}: building {state_mb} MB of live state, then {seconds:g} s of load",
                    err=as_json,
                )
                results[name] = trio.run(
                    _measure, Path(tmp) / name.split()[0], state_mb, seconds, compact
                )

    try:  # Ctrl-C or SIGTERM: the cluster of the moment is killed, then one line, 130 / 143
        stop_on_signals(measure_both)
    except Stopped as stopped:
        click.echo(str(stopped), err=True)
        sys.exit(stopped.exit_code)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=1))
    if as_json:
        click.echo(json.dumps(results))
    for name in ("baseline (no snapshots)", "snapshots"):
        r = results[name]
        click.echo(
            f"{name:24} appends {r['appends']:6}  p50 {r['p50_ms']:7} ms  p99 {r['p99_ms']:7} ms"
            f"  max {r['max_ms']:8} ms  > election timeout {r['slower_than_election_timeout']:3}"
            f"  elections {r['elections']}  snapshots {r['snapshots_written']}",
            err=as_json,
        )
    click.echo(f"written: {out}", err=as_json)
    if not all(results["snapshots"]["snapshots_written"].values()):
        click.echo(
            "error: a node wrote no snapshot during the measured load: nothing was measured",
            err=True,
        )
        sys.exit(1)
