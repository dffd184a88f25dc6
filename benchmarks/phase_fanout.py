"""Fan-out: one writer, many subscribers on one bus: how long until each one has each entry.

The writer (a load worker) appends ``messages`` bodies of 100 B one at a time, each stamped with
its send time; the subscribers (subscriber workers, 25 subscriptions each, every subscription
its own connection) take each entry from the bus's push stream. Delivery latency is stamp ->
a subscriber's receipt, one sample per entry and subscriber; messages/s delivered counts every
(entry, subscriber) pair from the first stamp to the last receipt. All on the machine-wide
monotonic clock.

Baselines in the same run: LogAct with a single subscriber (what the fan-out itself costs) and,
when the etcd baseline is on, etcd with as many watchers (one client connection each) on the
writer's key prefix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import trio

from logact.benchmarks import etcd as etcd_mod
from logact.benchmarks.processes import logact_cluster, run_workers
from logact.benchmarks.stats import summarize_us
from logact.client.client import Client
from logact.ops.test_config import ADMIN_TOKEN

MESSAGE_BYTES = 100
SUBSCRIBERS_PER_WORKER = 25
#: Bound on the writer's run; subscribers wait at most a grace period longer.
MAX_SECONDS = 45.0
#: The marker every subscription starts at: a body without a stamp.
MARKER = b"ready"


def shape(writer: dict[str, Any], subscribers: list[dict[str, Any]]) -> dict[str, Any]:
    """One fan-out run's figures from the writer's and the subscriber workers' results."""
    latencies = [lat for r in subscribers for lat in r["latencies_us"]]
    count = sum(r["subscribers"] for r in subscribers)
    firsts = [r["first_stamp_ns"] for r in subscribers if r["first_stamp_ns"] is not None]
    lasts = [r["last_receipt_ns"] for r in subscribers if r["last_receipt_ns"] is not None]
    span_s = (max(lasts) - min(firsts)) / 1e9 if firsts and lasts else 0.0
    errors: dict[str, int] = dict(writer["errors"])
    for r in subscribers:
        for name, n in r["errors"].items():
            errors[f"subscriber {name}"] = errors.get(f"subscriber {name}", 0) + n
    sent = writer["ops"]
    return {
        "subscribers": count,
        "sent": sent,
        "delivered": len(latencies),
        "expected": sent * count,
        "subscribers_complete": sum(r["complete"] for r in subscribers),
        "delivery": summarize_us(latencies),
        "delivered_per_s": round(len(latencies) / span_s, 1) if span_s > 0 else None,
        "writer_append": summarize_us(writer["latencies_us"]),
        "errors": errors,
    }


async def _run(
    target: dict[str, Any], bus: str, start: int, subscribers: int, messages: int, logs: Path
) -> dict[str, Any]:
    """One writer and ``subscribers`` subscriptions from ``start`` (the marker) on ``bus``."""
    writer = {
        **target,
        "mode": "seq",
        "size": MESSAGE_BYTES,
        "stamped": True,
        "bus": bus,
        "seed": 1,
        "warmup_ops": 0,  # anything appended now would reach the subscribers
        "count": messages,
        "max_seconds": MAX_SECONDS,
    }
    workers = math.ceil(subscribers / SUBSCRIBERS_PER_WORKER)
    subs = [
        {
            **target,
            "mode": "subscribe",
            "subscribers": subscribers // workers + (1 if i < subscribers % workers else 0),
            "bus": bus,
            "from": start,
            "messages": messages,
            "max_seconds": MAX_SECONDS,
        }
        for i in range(workers)
    ]
    results, _ = await run_workers([writer, *subs], logs)
    return shape(results[0], results[1:])


async def _logact(
    directory: Path, durability: str, subscribers: int, messages: int
) -> dict[str, dict[str, Any]]:
    async with logact_cluster(directory, durability) as (cluster, _leader):
        target = {"target": "logact", "addresses": cluster.addresses, "token": ADMIN_TOKEN}
        out: dict[str, dict[str, Any]] = {}
        for name, count in (("logact_single", 1), ("logact", subscribers)):
            bus = f"fanout-{count}"
            async with Client(cluster.addresses, ADMIN_TOKEN, timeout=30) as log:
                start = await log.append(bus, "data", MARKER)
            out[name] = await _run(target, bus, start, count, messages, directory / "logs")
        return out


async def _etcd(directory: Path, subscribers: int, messages: int) -> dict[str, Any]:
    cluster = etcd_mod.EtcdCluster(directory)
    try:
        cluster.start()
        await trio.to_thread.run_sync(cluster.wait_healthy, 30.0)
        leader = await trio.to_thread.run_sync(cluster.leader)
        bus = "fanout"
        start = await trio.to_thread.run_sync(cluster.put, leader, f"{bus}/marker".encode(), MARKER)
        target = {"target": "etcd", "endpoint": cluster.endpoint(leader)}
        return await _run(target, bus, start, subscribers, messages, directory / "logs")
    finally:
        cluster.kill_all()


async def measure(
    directory: Path, durability: str, subscribers: int, messages: int, with_etcd: bool
) -> dict[str, Any]:
    """The fan-out phase: LogAct with ``subscribers`` and with one, and etcd if asked."""
    out: dict[str, Any] = {
        "subscribers": subscribers,
        "messages": messages,
        "message_bytes": MESSAGE_BYTES,
        **await _logact(directory / "logact", durability, subscribers, messages),
    }
    if with_etcd:
        out["etcd"] = await _etcd(directory / "etcd", subscribers, messages)
    return out
