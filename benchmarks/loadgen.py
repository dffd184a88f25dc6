"""Load generators: the measuring loops and the worker process that runs them.

The client is Python too, so one process can become the bottleneck before the server does.
The runner therefore starts each load shape as separate worker processes
(``python -m logact.benchmarks.loadgen SPEC``), each with its own connection, and sums them.

Worker protocol (one JSON object per line): the worker connects and warms up, prints
``{"ready": true}``, waits for ``{"start_at": T}`` on stdin (``T`` on the machine-wide monotonic
clock, so every worker starts together), runs, prints its result and exits. Every loop is
bounded by a count and a deadline. Modes: ``seq`` (one outstanding append), ``load``
(concurrent appenders), ``paced`` (a light load that prints each acknowledgement as it comes and
ends on a ``stop`` line: the failover phase) and ``subscribe`` (subscribers that time each
stamped body from its send time: the fan-out phase).

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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Any

import anyio
import trio

Append = Callable[[bytes], Awaitable[object]]
#: Extra time a worker may take past its window before it gives up on outstanding appends.
GRACE_S = 15.0
#: Bound on a subscriber worker's subscriptions all reaching the marker.
READY_S = 45.0


#: A stamped body starts with the send time: time.monotonic_ns(), 8 bytes big-endian.
STAMP_BYTES = 8


class Payloads:
    """Fresh pseudo-random bodies of a fixed size (cheap: no syscall per append).

    ``stamped``: each body starts with the time it was made (the machine-wide monotonic clock),
    so a subscriber in another process can tell how long it took to reach it.
    """

    def __init__(self, size: int, seed: int, *, stamped: bool = False) -> None:
        self.size = size
        self.stamped = stamped
        self._rng = random.Random(seed)

    def next(self) -> bytes:
        if not self.stamped:
            return self._rng.randbytes(self.size)
        stamp = time.monotonic_ns().to_bytes(STAMP_BYTES, "big")
        return stamp + self._rng.randbytes(max(0, self.size - STAMP_BYTES))


def stamp_of(body: bytes) -> int | None:
    """The send time (monotonic ns) of a stamped body; None for anything else (a marker)."""
    if not isinstance(body, bytes) or len(body) <= STAMP_BYTES:
        return None
    return int.from_bytes(body[:STAMP_BYTES], "big")


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


async def paced(
    append: Append,
    payloads: Payloads,
    tasks: int,
    interval_s: float,
    max_seconds: float,
    stop: anyio.Event,
    on_ack: Callable[[float, float], None],
) -> dict[str, Any]:
    """A light load: ``tasks`` appenders, each starting one append every ``interval_s`` (or as
    soon as the previous one is acknowledged, if later), until ``stop`` is set or
    ``max_seconds``. Each acknowledged append's (began, ended) on the monotonic clock goes to
    ``on_ack`` at once, so the caller can tell when appends are acknowledged again after a
    fault."""
    acks = 0
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + max_seconds

    async def appender(offset: float) -> None:
        nonlocal acks
        next_at = time.monotonic() + offset
        while True:
            await anyio.sleep(max(0.0, next_at - time.monotonic()))
            began = time.monotonic()
            if began >= deadline:
                return
            try:
                await append(payloads.next())
            except Exception as exc:  # counted; the load goes on through the fault
                errors[type(exc).__name__] += 1
            else:
                acks += 1
                on_ack(began, time.monotonic())
            next_at = max(next_at + interval_s, time.monotonic())

    async def until_stopped(scope: anyio.CancelScope) -> None:
        await stop.wait()
        scope.cancel()

    with anyio.move_on_after(max_seconds + GRACE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(until_stopped, group.cancel_scope)
            async with anyio.create_task_group() as appenders:
                for index in range(tasks):
                    appenders.start_soon(appender, interval_s * index / tasks)
            group.cancel_scope.cancel()
    return {"acks": acks, "errors": dict(errors)}


async def _read_line() -> str:
    return await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


# ---------------------------------------------------------------------------- worker process
def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _drive(spec: dict[str, Any], append: Append, payloads: Payloads) -> None:
    """Warm up, report ready, wait for the common start time, run the phase, report."""
    for _ in range(spec["warmup_ops"]):
        await append(payloads.next())
    _emit({"ready": True})
    start_at = json.loads(await _read_line())["start_at"]
    if spec["mode"] == "seq":
        await anyio.sleep(max(0.0, start_at - time.monotonic()))
        result = await sequential(append, payloads, spec["count"], spec["max_seconds"])
    elif spec["mode"] == "paced":
        stop = anyio.Event()

        async def stop_on_line() -> None:
            await _read_line()  # "stop", or EOF: the runner is gone
            stop.set()

        async with anyio.create_task_group() as group:
            group.start_soon(stop_on_line)
            await anyio.sleep(max(0.0, start_at - time.monotonic()))
            result = await paced(
                append,
                payloads,
                spec["tasks"],
                spec["interval_s"],
                spec["max_seconds"],
                stop,
                lambda began, ended: _emit({"ack": [began, ended]}),
            )
            group.cancel_scope.cancel()
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
    coalesce = spec.get("coalesce", True)
    async with Client(spec["addresses"], spec["token"], timeout=10.0, coalesce=coalesce) as log:

        async def append(payload: bytes) -> object:
            return await log.append(bus, "data", payload)

        await _drive(spec, append, _payloads(spec))


async def _etcd_worker(spec: dict[str, Any]) -> None:
    import aetcd

    host, _, port = spec["endpoint"].rpartition(":")
    prefix = f"{spec['bus']}/{spec['seed']}/"
    counter = iter(range(10**12))
    async with aetcd.Client(host=host, port=int(port), timeout=10) as client:

        async def append(payload: bytes) -> object:
            return await client.put(f"{prefix}{next(counter)}".encode(), payload)

        await _drive(spec, append, _payloads(spec))


# ---------------------------------------------------------------------------- subscribers
Bodies = Callable[[], AbstractAsyncContextManager[AsyncIterator[bytes]]]


class _Receipts:
    """What the subscribers of one worker received: one latency per stamped body and
    subscriber, from the body's stamp to its arrival here."""

    def __init__(self) -> None:
        self.latencies_us: list[int] = []
        self.first_stamp_ns: int | None = None
        self.last_receipt_ns: int | None = None
        self.ready = 0
        self.complete = 0
        self.errors: Counter[str] = Counter()

    def add(self, stamp_ns: int, now_ns: int) -> None:
        self.latencies_us.append((now_ns - stamp_ns) // 1000)
        if self.first_stamp_ns is None or stamp_ns < self.first_stamp_ns:
            self.first_stamp_ns = stamp_ns
        if self.last_receipt_ns is None or now_ns > self.last_receipt_ns:
            self.last_receipt_ns = now_ns

    def result(self, subscribers: int) -> dict[str, Any]:
        return {
            "subscribers": subscribers,
            "complete": self.complete,
            "received": len(self.latencies_us),
            "latencies_us": self.latencies_us,
            "first_stamp_ns": self.first_stamp_ns,
            "last_receipt_ns": self.last_receipt_ns,
            "errors": dict(self.errors),
        }


async def _subscriber(
    bodies: Bodies, receipts: _Receipts, expect: int, ready: anyio.Event, all_ready: int
) -> None:
    """One subscriber: ready at the marker (the first body without a stamp), then takes
    ``expect`` stamped bodies."""
    got = 0
    try:
        async with bodies() as stream:
            async for body in stream:
                stamp = stamp_of(body)
                if stamp is None:
                    receipts.ready += 1
                    if receipts.ready == all_ready:
                        ready.set()
                    continue
                receipts.add(stamp, time.monotonic_ns())
                got += 1
                if got >= expect:
                    receipts.complete += 1
                    return
    except Exception as exc:  # counted; the others go on
        receipts.errors[type(exc).__name__] += 1


async def subscribe(spec: dict[str, Any], bodies: Bodies) -> None:
    """``spec["subscribers"]`` subscribers, each on its own connection: report ready once every
    one has the marker, then wait for the start and take ``spec["messages"]`` bodies each,
    within ``spec["max_seconds"]`` of the start."""
    receipts = _Receipts()
    ready = anyio.Event()
    count = spec["subscribers"]
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(_subscriber, bodies, receipts, spec["messages"], ready, count)
        with anyio.fail_after(READY_S):
            await ready.wait()
        _emit({"ready": True})
        start_at = json.loads(await _read_line())["start_at"]
        deadline = start_at + spec["max_seconds"] + GRACE_S
        with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as scope:
            while receipts.complete + sum(receipts.errors.values()) < count:
                await anyio.sleep(0.05)
        if scope.cancelled_caught:
            receipts.errors["deadline"] += 1
        group.cancel_scope.cancel()
    _emit(receipts.result(count))


async def _logact_subscribers(spec: dict[str, Any]) -> None:
    from logact.client.client import Client

    async with Client(spec["addresses"], spec["token"], timeout=10.0) as log:

        @asynccontextmanager
        async def bodies() -> AsyncIterator[AsyncIterator[bytes]]:
            async with aclosing(log.subscribe(spec["bus"], spec["from"])) as entries:
                yield (entry.body async for entry in entries)

        await subscribe(spec, bodies)


async def _etcd_watchers(spec: dict[str, Any]) -> None:
    import aetcd

    host, _, port = spec["endpoint"].rpartition(":")

    @asynccontextmanager
    async def bodies() -> AsyncIterator[AsyncIterator[bytes]]:
        async with aetcd.Client(host=host, port=int(port), timeout=10) as client:
            watch = await client.watch_prefix(
                f"{spec['bus']}/".encode(), start_revision=spec["from"]
            )
            yield (event.kv.value async for event in watch)

    await subscribe(spec, bodies)


def _payloads(spec: dict[str, Any]) -> Payloads:
    return Payloads(spec["size"], spec["seed"], stamped=spec.get("stamped", False))


def main(argv: list[str]) -> None:
    """Entry point of a worker process: one phase, described by the JSON spec in argv[1]."""
    spec = json.loads(argv[1])
    subscriber = spec["mode"] == "subscribe"
    if spec["target"] == "etcd":
        asyncio.run(_etcd_watchers(spec) if subscriber else _etcd_worker(spec))
    else:
        trio.run(_logact_subscribers if subscriber else _logact_worker, spec)


if __name__ == "__main__":
    main(sys.argv)
