"""Load generators: the measuring loops and the worker process that runs them.

The client is Python too, so one process can become the bottleneck before the server does.
The runner therefore starts each load shape as separate worker processes
(``python -m logact.benchmarks.loadgen SPEC``), each with its own connection, and sums them.

Worker protocol (one JSON object per line): the worker connects and warms up, prints
``{"ready": true}``, waits for ``{"start_at": T}`` on stdin (``T`` on the machine-wide monotonic
clock, so every worker starts together), runs, prints its result and exits. Every loop is
bounded by a count and a deadline.

Payloads are random bytes, new for every append, so no layer (etcd, a future LogAct transport)
can profit from compressing repeated bodies.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import trio

Append = Callable[[bytes], Awaitable[object]]
#: Extra time a worker may take past its window before it gives up on outstanding appends.
GRACE_S = 15.0


class Payloads:
    """Fresh pseudo-random bodies of a fixed size (cheap: no syscall per append)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self._rng = random.Random(seed)

    def next(self) -> bytes:
        return self._rng.randbytes(self.size)


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Window:
    """Counts completions inside [start, end) and keeps latencies of ops wholly inside it."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.ops = 0
        self.ops_total = 0
        self.latencies_us: list[int] = []
        self.errors: Counter[str] = Counter()
        self.cpu_start: float | None = None
        self.cpu_end: float | None = None

    def record(self, began: float, ended: float) -> None:
        self.ops_total += 1
        if self.start <= ended < self.end:
            self.ops += 1
            if began >= self.start:
                self.latencies_us.append(int((ended - began) * 1e6))

    def result(self) -> dict[str, Any]:
        cpu = None
        if self.cpu_start is not None and self.cpu_end is not None:
            cpu = round(self.cpu_end - self.cpu_start, 3)
        return {
            "ops": self.ops,
            "ops_total": self.ops_total,
            "window_s": round(self.end - self.start, 3),
            "errors": dict(self.errors),
            "latencies_us": self.latencies_us,
            "cpu_s": cpu,
        }


# ---------------------------------------------------------------------------- loops
# Written once with anyio: the LogAct worker runs them under trio, the etcd worker (aetcd is
# asyncio-only) under asyncio.
async def sequential(
    append: Append, payloads: Payloads, count: int, max_seconds: float
) -> dict[str, Any]:
    """One outstanding append at a time: ``count`` appends or ``max_seconds``, whichever first."""
    now = time.monotonic()
    window = _Window(now, now + max_seconds)
    window.cpu_start = _cpu_now()
    with anyio.move_on_after(max_seconds + GRACE_S) as scope:
        for _ in range(count):
            if time.monotonic() >= window.end:
                break
            payload = payloads.next()
            began = time.monotonic()
            try:
                await append(payload)
            except Exception as exc:  # any failure is counted, never fatal to the run
                window.errors[type(exc).__name__] += 1
                await anyio.sleep(0.01)
                continue
            window.record(began, time.monotonic())
    if scope.cancelled_caught:
        window.errors["deadline"] += 1
    window.cpu_end = _cpu_now()
    window.end = min(window.end, time.monotonic())
    return window.result()


async def concurrent(
    append: Append,
    payloads: Payloads,
    concurrency: int,
    start_at: float,
    warmup_s: float,
    duration_s: float,
) -> dict[str, Any]:
    """``concurrency`` tasks append back to back; only the window after warm-up counts."""
    window = _Window(start_at + warmup_s, start_at + warmup_s + duration_s)

    async def appender() -> None:
        while (began := time.monotonic()) < window.end:
            try:
                await append(payloads.next())
            except Exception as exc:
                window.errors[type(exc).__name__] += 1
                await anyio.sleep(0.01)
                continue
            window.record(began, time.monotonic())

    async def cpu_probe() -> None:
        await anyio.sleep(max(0.0, window.start - time.monotonic()))
        window.cpu_start = _cpu_now()
        await anyio.sleep(max(0.0, window.end - time.monotonic()))
        window.cpu_end = _cpu_now()

    await anyio.sleep(max(0.0, start_at - time.monotonic()))
    with anyio.move_on_after(warmup_s + duration_s + GRACE_S) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(cpu_probe)
            for _ in range(concurrency):
                group.start_soon(appender)
    if scope.cancelled_caught:
        window.errors["deadline"] += 1
    return window.result()


# ---------------------------------------------------------------------------- worker process
def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _drive(spec: dict[str, Any], append: Append, payloads: Payloads) -> None:
    """Warm up, report ready, wait for the common start time, run the phase, report."""
    for _ in range(spec["warmup_ops"]):
        await append(payloads.next())
    _emit({"ready": True})
    line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    start_at = json.loads(line)["start_at"]
    if spec["mode"] == "seq":
        await anyio.sleep(max(0.0, start_at - time.monotonic()))
        result = await sequential(append, payloads, spec["count"], spec["max_seconds"])
    else:
        result = await concurrent(
            append,
            payloads,
            spec["concurrency"],
            start_at,
            spec["warmup_s"],
            spec["duration_s"],
        )
    _emit(result)


async def _logact_worker(spec: dict[str, Any]) -> None:
    from logact.client.client import Client

    bus = spec["bus"]
    async with Client(spec["addresses"], spec["token"], timeout=10.0) as log:

        async def append(payload: bytes) -> object:
            return await log.append(bus, "data", payload)

        await _drive(spec, append, Payloads(spec["size"], spec["seed"]))


async def _etcd_worker(spec: dict[str, Any]) -> None:
    import aetcd

    host, _, port = spec["endpoint"].rpartition(":")
    prefix = f"{spec['bus']}/{spec['seed']}/"
    counter = iter(range(10**12))
    async with aetcd.Client(host=host, port=int(port), timeout=10) as client:

        async def append(payload: bytes) -> object:
            return await client.put(f"{prefix}{next(counter)}".encode(), payload)

        await _drive(spec, append, Payloads(spec["size"], spec["seed"]))


def main(argv: list[str]) -> None:
    """Entry point of a worker process: one phase, described by the JSON spec in argv[1]."""
    spec = json.loads(argv[1])
    if spec["target"] == "etcd":
        asyncio.run(_etcd_worker(spec))
    else:
        trio.run(_logact_worker, spec)


if __name__ == "__main__":
    main(sys.argv)
