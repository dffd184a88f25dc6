"""Helpers for the real-process integration tests: raw protocol sockets and history checks."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from logact.client.client import Client, parse_address
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol import codec
from logact.protocol.api import LogAPI
from logact.protocol.codec import Entry
from logact.protocol.errors import LogError

#: Bound on any single wait for a reply or a state on a healthy cluster.
STEP_TIMEOUT = 10.0


class RawConnection:
    """A bare TCP connection speaking the framing by hand (for malformed-input tests)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = codec.FrameDecoder()

    @classmethod
    async def open(cls, address: str, *, local: str | None = None) -> RawConnection:
        """Connected to ``address``, from ``local`` if given (e.g. another 127.x address)."""
        host, port = parse_address(address)
        with trio.fail_after(STEP_TIMEOUT):
            return cls(await trio.open_tcp_stream(host, port, local_address=local))

    async def send_bytes(self, data: bytes) -> None:
        with trio.fail_after(STEP_TIMEOUT):
            await self.stream.send_all(data)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_bytes(codec.encode(message))

    async def receive(self, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """The next frame from the server; fails if it is malformed or never comes."""
        with trio.fail_after(timeout):
            while True:
                for frame in self.decoder.frames():
                    if isinstance(frame, codec.BadFrame):
                        raise AssertionError(f"server sent a malformed frame: {frame}")
                    return frame
                data = await self.stream.receive_some(1 << 16)
                if not data:
                    raise EOFError("connection closed by the server")
                self.decoder.feed(data)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.receive()

    async def hello(self, token: str = ADMIN_TOKEN) -> dict[str, Any]:
        reply = await self.request({"id": 0, "op": "hello", "token": token})
        assert reply.get("ok") is True, reply
        return reply["result"]

    async def assert_usable(self) -> None:
        """An authenticated connection still answers a request after whatever came before."""
        reply = await self.request({"id": 424242, "op": "ping"})
        assert reply == {"id": 424242, "ok": True, "result": {"pong": True}}

    async def assert_closed(self, timeout: float = STEP_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until the server closes the connection; returns any frames it sent first."""
        frames: list[dict[str, Any]] = []
        with trio.fail_after(timeout):
            while True:
                for frame in self.decoder.frames():
                    assert not isinstance(frame, codec.BadFrame), frame
                    frames.append(frame)
                try:
                    data = await self.stream.receive_some(1 << 16)
                except trio.BrokenResourceError:  # reset instead of an orderly close
                    return frames
                if not data:
                    return frames
                self.decoder.feed(data)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def unique(prefix: str) -> str:
    """A bus name no other test uses."""
    return f"{prefix}/{uuid.uuid4().hex[:16]}"


def error_code(reply: dict[str, Any]) -> str | None:
    """The error code of an error reply (None for a success)."""
    if reply.get("ok") is True:
        return None
    error = reply.get("error")
    assert isinstance(error, dict), f"an error reply needs an error map: {reply!r}"
    assert isinstance(error.get("message"), str) and error["message"], reply
    return error.get("code")


def at_least(counter: Callable[[], int], target: int) -> Callable[[], Awaitable[bool]]:
    """A ``wait_until`` predicate: ``counter()`` has reached ``target``."""

    async def reached() -> bool:
        return counter() >= target

    return reached


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; fails after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(interval)


async def read_node(address: str, bus: str, *, stale: bool, start: int = 0) -> list[Entry]:
    """Every entry of ``bus`` from ``start`` as one specific node sees it (no hop to the leader)."""
    async with Client([address], ADMIN_TOKEN, timeout=STEP_TIMEOUT, prefer_leader=False) as log:
        return await log.read_all(bus, start, stale=stale)


@dataclass
class History:
    """What concurrent writers were told: acknowledged positions and indeterminate outcomes."""

    attempted: set[str] = field(default_factory=set)  # every payload id ever sent
    acked: dict[str, int] = field(default_factory=dict)  # payload id -> acknowledged position
    errors: dict[str, str] = field(default_factory=dict)  # payload id -> indeterminate error

    def payload(self, pid: str) -> dict[str, Any]:
        """Register an attempt before sending it."""
        self.attempted.add(pid)
        return {"id": pid}

    def check(self, entries: list[Entry]) -> None:
        """Jepsen-style: one total order, no lost or duplicated acknowledged appends."""
        assert [e.pos for e in entries] == list(
            range(entries[0].pos, entries[0].pos + len(entries))
        )
        where: dict[str, list[int]] = {}
        for entry in entries:
            if isinstance(entry.body, dict) and "id" in entry.body:
                where.setdefault(entry.body["id"], []).append(entry.pos)
        duplicated = {pid: positions for pid, positions in where.items() if len(positions) > 1}
        assert not duplicated, f"payloads appended more than once: {duplicated}"
        lost = {pid: pos for pid, pos in self.acked.items() if where.get(pid) != [pos]}
        assert not lost, f"acknowledged appends missing or moved (id: acked pos): {lost}"
        phantom = set(where) - self.attempted
        assert not phantom, f"entries nobody tried to append: {phantom}"
        failed = {pid for pid, err in self.errors.items() if err != "Timeout"}
        assert not failed & set(where), f"definitely failed appends are in the log: {failed}"
        # Real-time order: each writer appends sequentially, so its positions only grow.
        by_writer: dict[str, list[tuple[int, int]]] = {}
        for pid, pos in self.acked.items():
            name, _, seq = pid.rpartition("-")
            if seq.isdigit():
                by_writer.setdefault(name, []).append((int(seq), pos))
        for name, acks in by_writer.items():
            positions = [pos for _, pos in sorted(acks)]
            assert positions == sorted(positions), f"writer {name} saw positions go backwards"


async def writer(
    log: LogAPI,
    bus: str,
    history: History,
    name: str,
    stop: trio.Event,
    *,
    batch: int = 1,
    timeout: float | None = None,
) -> None:
    """Append unique payloads until ``stop`` is set, recording every outcome in ``history``."""
    i = 0
    while not stop.is_set():
        pids = [f"{name}-{i + k}" for k in range(batch)]
        i += batch
        bodies = [history.payload(pid) for pid in pids]
        try:
            positions = await log.append_batch(
                bus, [("data", body) for body in bodies], timeout=timeout
            )
        except LogError as exc:
            for pid in pids:
                history.errors[pid] = type(exc).__name__
            continue
        assert len(positions) == batch
        for pid, pos in zip(pids, positions, strict=True):
            history.acked[pid] = pos


async def ensure_all_running(cluster: LocalCluster, timeout: float = 30.0) -> str:
    """Start any stopped node, wait until every node serves; returns the leader."""
    cluster.start_all()
    with trio.fail_after(timeout):
        for node_id in cluster.node_ids:
            await cluster.wait_until_serving(node_id, timeout)
        return await cluster.wait_for_leader(timeout)
