"""The log workload: appenders, readers, check_tail callers and subscribers on one bus.

Every operation becomes one history record (docs/chaos.md). Payloads are unique; the client
retries an append with its idempotency key, so an ambiguous failure is recorded as ``info``
and may appear at most once. Errors the server guarantees changed nothing are ``fail``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import trio

from logact.client.client import Client
from logact.protocol.errors import ErrorCode, LogError

Record = Callable[[dict[str, Any]], None]

#: Errors that mean "this operation did not take effect" (anything else is indeterminate).
DEFINITE_FAILURES = frozenset(
    {
        ErrorCode.BAD_REQUEST,
        ErrorCode.TOO_LARGE,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.FORBIDDEN,
        ErrorCode.FENCED,
        ErrorCode.CONDITION_FAILED,
        ErrorCode.UNKNOWN_BUS,
        ErrorCode.TRIMMED,
    }
)

ENTRY_TYPE = "note"


@dataclass(frozen=True)
class LogWorkload:
    addresses: list[str]
    token: str
    bus: str
    appenders: int = 4
    readers: int = 2
    tailers: int = 1
    subscribers: int = 2
    op_timeout: float = 10.0  # one operation, retries included
    payload_bytes: int = 0  # pad payloads (the targeted nemesis wants >= 10 KB entries)
    #: Appenders sharing one client, whose concurrent appends go out coalesced in ``multi``
    #: requests: keys, retries and partial failures of multis go through the faults too.
    appenders_per_client: int = 2

    def __post_init__(self) -> None:
        if self.appenders_per_client < 1:
            raise ValueError("appenders_per_client must be >= 1")


class _Ids:
    def __init__(self) -> None:
        self._next = itertools.count()

    def __call__(self) -> int:
        return next(self._next)


def _outcome(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, LogError):
        return ("fail" if exc.code in DEFINITE_FAILURES else "info"), exc.code.value
    return "info", type(exc).__name__


async def timed(
    record: Record, base: dict[str, Any], call: Callable[[], Any], on_ok: Callable[[Any], dict]
) -> Any:
    """Run one operation and record it with its invoke/complete times and outcome."""
    op = {**base, "invoke": time.monotonic_ns()}
    try:
        value = await call()
    except trio.Cancelled:
        record({**op, "complete": time.monotonic_ns(), "outcome": "info", "error": "cancelled"})
        raise
    except Exception as exc:
        outcome, error = _outcome(exc)
        record({**op, "complete": time.monotonic_ns(), "outcome": outcome, "error": error})
        return None
    record({**op, "complete": time.monotonic_ns(), "outcome": "ok", **on_ok(value)})
    return value


def _payloads(entries: list[Any]) -> list[list[Any]]:
    return [[entry.pos, entry.body.get("p")] for entry in entries if entry.type == ENTRY_TYPE]


async def _appenders(w: LogWorkload, group: int, record: Record, ids: _Ids) -> None:
    """The appenders of one client (``appenders_per_client``), each one append at a time."""
    first = group * w.appenders_per_client
    last = min(first + w.appenders_per_client, w.appenders)
    async with (
        Client(w.addresses, w.token, timeout=w.op_timeout) as client,
        trio.open_nursery() as nursery,
    ):
        for index in range(first, last):
            nursery.start_soon(_appender, w, client, index, record, ids, name=f"append-{index}")


async def _appender(w: LogWorkload, client: Client, index: int, record: Record, ids: _Ids) -> None:
    pad = "x" * w.payload_bytes
    for seq in itertools.count():
        payload = f"a{index}-{seq}"
        await timed(
            record,
            {
                "process": f"append-{index}",
                "op": "append",
                "id": ids(),
                "bus": w.bus,
                "payload": payload,
            },
            lambda payload=payload: client.append(w.bus, ENTRY_TYPE, {"p": payload, "pad": pad}),
            lambda position: {"position": position},
        )


def _pinned(w: LogWorkload, index: int) -> Client:
    """A client bound to one node (readers and tailers spread over all of them, as Jepsen's
    clients do, so a node answering from a stale copy would show)."""
    address = w.addresses[index % len(w.addresses)]
    return Client([address], w.token, timeout=w.op_timeout, prefer_leader=False)


async def _reader(w: LogWorkload, index: int, record: Record, ids: _Ids) -> None:
    async with _pinned(w, index) as client:
        start = 0
        while True:
            result = await timed(
                record,
                {
                    "process": f"read-{index}",
                    "op": "read",
                    "id": ids(),
                    "bus": w.bus,
                    "start": start,
                },
                lambda start=start: client.read(w.bus, start, 200),
                lambda r: {"entries": _payloads(r.entries), "next": r.next, "tail": r.tail},
            )
            # Walk forward, then start over, so reads cover both old and fresh positions.
            start = result.next if result is not None and result.next < result.tail else 0
            await trio.sleep(0.01)  # pacing, not synchronisation: readers must not starve writers


async def _tailer(w: LogWorkload, index: int, record: Record, ids: _Ids) -> None:
    async with _pinned(w, index + 1) as client:
        while True:
            await timed(
                record,
                {"process": f"tail-{index}", "op": "check_tail", "id": ids(), "bus": w.bus},
                lambda: client.check_tail(w.bus),
                lambda t: {"tail": t.tail},
            )
            await trio.sleep(0.01)  # pacing


async def _subscriber(w: LogWorkload, index: int, record: Record, ids: _Ids) -> None:
    """One subscription for the whole run, recorded when the run cancels it (or it fails)."""
    deliveries: list[list[Any]] = []
    op = {"process": f"sub-{index}", "op": "subscribe", "id": ids(), "bus": w.bus, "start": 0}
    op["invoke"] = time.monotonic_ns()
    outcome: dict[str, Any] = {"outcome": "ok"}
    try:
        async with (
            Client(w.addresses, w.token, timeout=w.op_timeout) as client,
            aclosing(client.subscribe(w.bus, 0, [ENTRY_TYPE])) as entries,
        ):
            async for entry in entries:
                deliveries.append([entry.pos, entry.body.get("p"), time.monotonic_ns()])
    except Exception as exc:
        status, error = _outcome(exc)
        outcome = {"outcome": status, "error": error}
    finally:
        record({**op, "complete": time.monotonic_ns(), **outcome, "deliveries": deliveries})


async def run_log_workload(w: LogWorkload, record: Record, duration: float) -> None:
    """Drive the workload for ``duration`` seconds, then stop every worker."""
    ids = _Ids()
    with trio.move_on_after(duration):
        async with trio.open_nursery() as nursery:
            groups = -(-w.appenders // w.appenders_per_client)
            for role, count, worker in (
                ("append", groups, _appenders),
                ("read", w.readers, _reader),
                ("tail", w.tailers, _tailer),
                ("sub", w.subscribers, _subscriber),
            ):
                for index in range(count):
                    nursery.start_soon(worker, w, index, record, ids, name=f"{role}-{index}")


async def final_read(w: LogWorkload, record: Record, timeout: float = 120.0) -> None:
    """Everything on the bus once the faults are healed (the reference for lost writes)."""
    async with Client(w.addresses, w.token, timeout=timeout) as client:
        await timed(
            record,
            {"process": "final", "op": "final_read", "id": 0, "bus": w.bus},
            lambda: client.read_all(w.bus),
            lambda entries: {"entries": _payloads(entries)},
        )
