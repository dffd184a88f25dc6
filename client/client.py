"""The trio network client: leader discovery, retries with the same idempotency key,
a deadline on every call, and subscriptions that resume after failover.

Use as ``async with Client(["127.0.0.1:7101", ...], token) as log: ...``.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import trio

from logact.protocol import codec
from logact.protocol.api import LogAPI
from logact.protocol.codec import Entry
from logact.protocol.errors import (
    LogError,
    NotLeader,
    Timeout,
    TooLarge,
    Unauthorized,
    Unavailable,
    error_from_wire,
)

CONNECTION_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be host:port, got {address!r}")
    return host, int(port)


async def _handshake(
    stream: trio.abc.Stream, tls: ssl.SSLContext, host: str, address: str
) -> trio.SSLStream[trio.abc.Stream]:
    """``stream`` in TLS, the node's certificate verified for ``host``."""
    wrapped = trio.SSLStream(stream, tls, server_hostname=host)
    try:
        await wrapped.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(stream)
        raise ConnectionError(f"TLS with {address} failed: {exc.__cause__ or exc}") from None
    return wrapped


class Connection:
    """One authenticated TCP connection with pipelined requests."""

    def __init__(self, stream: trio.abc.Stream, address: str) -> None:
        self.stream = stream
        self.address = address
        self.decoder = codec.FrameDecoder()
        self.ids = iter(range(1, 2**62))
        self.waiting: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        self.broken: BaseException | None = None
        self.hello: dict[str, Any] = {}
        self._send_lock = trio.Lock()

    @classmethod
    async def open(
        cls, address: str, token: str, timeout: float, tls: ssl.SSLContext | None = None
    ) -> Connection:
        host, port = parse_address(address)
        with trio.fail_after(timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            if tls is not None:
                stream = await _handshake(stream, tls, host, address)
            conn = cls(stream, address)
            await conn._send(
                {"id": 0, "op": "hello", "token": token, "version": codec.PROTOCOL_VERSION}
            )
            reply = await conn.receive()
        if not reply.get("ok"):
            await trio.aclose_forcefully(stream)
            raise error_from_wire(reply.get("error"))
        conn.hello = reply["result"]
        return conn

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.stream.send_all(codec.encode(message))

    async def receive(self) -> dict[str, Any]:
        """The next frame (used before the reader task starts, and by subscriptions)."""
        while True:
            for frame in self.decoder.frames():
                if isinstance(frame, codec.BadFrame):
                    raise Unavailable(f"server sent a malformed frame: {frame}")
                return frame
            data = await self.stream.receive_some(256 * 1024)
            if not data:
                raise EOFError("connection closed by the server")
            self.decoder.feed(data)

    async def reader(self) -> None:
        """Route responses to their waiters until the connection breaks."""
        try:
            while True:
                frame = await self.receive()
                request_id = frame.get("id")
                waiter = self.waiting.pop(request_id, None) if isinstance(request_id, int) else None
                if waiter is not None:
                    waiter[1].append(frame)
                    waiter[0].set()
        except (*CONNECTION_ERRORS, LogError, codec.FrameTooLarge) as exc:
            self.broken = exc
        finally:
            self.broken = self.broken or EOFError("connection closed")
            for event, _ in self.waiting.values():
                event.set()
            self.waiting.clear()
            await trio.aclose_forcefully(self.stream)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its response (caller imposes the deadline)."""
        if self.broken is not None:
            raise EOFError(str(self.broken))
        request_id = next(self.ids)
        frame = codec.encode({**message, "id": request_id})
        max_frame = self.hello.get("limits", {}).get("max_frame", codec.MAX_FRAME)
        if len(frame) - codec.HEADER.size > max_frame:
            raise TooLarge(
                f"request of {len(frame)} bytes exceeds the node's frame limit {max_frame}"
            )
        event = trio.Event()
        box: list[dict[str, Any]] = []
        self.waiting[request_id] = (event, box)
        try:
            async with self._send_lock:
                try:
                    await self.stream.send_all(frame)
                except BaseException:
                    # A frame cut off midway (e.g. the caller's deadline) would desynchronise
                    # the stream for every later request: this connection is finished.
                    self.broken = self.broken or EOFError("send interrupted")
                    await trio.aclose_forcefully(self.stream)
                    raise
            await event.wait()
        finally:
            self.waiting.pop(request_id, None)
        if not box:
            raise EOFError(f"connection to {self.address} lost: {self.broken}")
        return box[0]

    async def close(self) -> None:
        self.broken = self.broken or EOFError("closed")
        await trio.aclose_forcefully(self.stream)


class Client(LogAPI):
    def __init__(
        self,
        addresses: Sequence[str],
        token: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 2.0,
        attempt_timeout: float = 3.0,
        client_id: str | None = None,
        prefer_leader: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: talk TLS to the nodes (``server.tls.client_context``); None: plain TCP."""
        super().__init__(client_id)
        if not addresses:
            raise ValueError("at least one node address is required")
        self.addresses = list(addresses)
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        #: One attempt may take this long before the client gives up on that node (a paused
        #: or partitioned node keeps its TCP connection open) and retries elsewhere.
        self.attempt_timeout = attempt_timeout
        self.prefer_leader = prefer_leader
        self.tls = tls
        self._conn: Connection | None = None
        self._next_index = 0
        self._connect_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None

    async def __aenter__(self) -> Client:
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._nursery is not None
        try:
            if self._conn is not None:
                # Leaving a cancelled scope must still close: shield the (instant) close.
                with trio.CancelScope(shield=True):
                    await self._conn.close()
        finally:
            self._nursery.cancel_scope.cancel()
            # Close the background nursery on its own so an exception from the caller's block
            # propagates as itself, not wrapped in an ExceptionGroup.
            await self._nursery_cm.__aexit__(None, None, None)

    # ---- connection management -------------------------------------------------------
    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and conn.broken is None:
            return conn  # the common case, without taking the lock
        async with self._connect_lock:
            if self._conn is not None and self._conn.broken is None:
                return self._conn
            self._conn = await self._connect_any()
            assert self._nursery is not None, "use 'async with Client(...)'"
            self._nursery.start_soon(self._conn.reader)
            return self._conn

    async def _connect_any(self) -> Connection:
        """Connect to the next reachable node, then hop to the leader it names if possible."""
        last: BaseException | None = None
        for _ in range(len(self.addresses)):
            address = self.addresses[self._next_index % len(self.addresses)]
            self._next_index += 1
            try:
                conn = await Connection.open(address, self.token, self.connect_timeout, self.tls)
            except Unauthorized:
                raise
            except (*CONNECTION_ERRORS, LogError, trio.TooSlowError) as exc:
                last = exc
                continue
            leader = conn.hello.get("node", {}).get("leader_client")
            if self.prefer_leader and leader and leader != address and leader in self.addresses:
                try:
                    leader_conn = await Connection.open(
                        leader, self.token, self.connect_timeout, self.tls
                    )
                except (*CONNECTION_ERRORS, LogError, trio.TooSlowError):
                    return conn
                await conn.close()
                self._next_index = self.addresses.index(leader) + 1
                return leader_conn
            return conn
        raise Unavailable(f"no node reachable among {self.addresses}: {last}")

    def _drop(self, conn: Connection | None) -> None:
        if conn is not None and conn is self._conn:
            self._conn = None
            if conn.broken is None:
                conn.broken = EOFError("dropped")
                assert self._nursery is not None
                self._nursery.start_soon(conn.close)

    # ---- calls with retries -----------------------------------------------------------
    async def _call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Retry retryable failures (same request, same idempotency key) until the deadline."""
        deadline = trio.current_time() + (timeout if timeout is not None else self.timeout)
        attempt = 0
        last_error: LogError | None = None
        sent = False
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                break
            conn: Connection | None = None
            try:
                with trio.move_on_after(min(remaining, self.attempt_timeout)) as attempt_scope:
                    conn = await self._connection()
                    sent = True
                    reply = await conn.request(request)
                if attempt_scope.cancelled_caught:
                    self._drop(conn)  # a silent node (paused, partitioned): try another
                else:
                    if reply.get("ok"):
                        return reply["result"]
                    error = error_from_wire(reply.get("error"))
                    if not error.retryable:
                        raise error
                    last_error = error
                    if isinstance(error, NotLeader | Unavailable):
                        self._drop(conn)
            except (*CONNECTION_ERRORS, Unavailable) as exc:
                if isinstance(exc, Unavailable):
                    last_error = exc
                self._drop(conn)
            attempt += 1
            backoff = min(1.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0)
            await trio.sleep(min(backoff, max(0.0, deadline - trio.current_time())))
        if sent:
            raise Timeout(
                f"{request.get('op')} got no definite answer in time (last: {last_error}); "
                "it may have taken effect"
            )
        raise last_error or Unavailable("no node reachable")

    # ---- subscriptions ----------------------------------------------------------------
    async def _open_subscription(
        self, bus: str, start: int, types: list[str] | None
    ) -> AsyncGenerator[Entry, None]:
        """A dedicated connection per subscription; reconnect and resume at the next position."""
        next_pos = start
        attempt = 0
        while True:
            conn: Connection | None = None
            try:
                conn = await self._connect_any()
                request: dict[str, Any] = {"id": 1, "op": "subscribe", "bus": bus, "from": next_pos}
                if types is not None:
                    request["types"] = types
                await conn._send(request)
                while True:
                    frame = await conn.receive()
                    if frame.get("ok") is False or frame.get("event") == "error":
                        error = error_from_wire(frame.get("error"))
                        if not error.retryable:
                            raise error
                        break
                    for wire in frame.get("entries", ()):
                        entry = Entry.from_wire(wire)
                        if entry.pos < next_pos:
                            continue  # already delivered before a reconnect
                        next_pos = entry.pos + 1
                        attempt = 0
                        yield entry
            except (*CONNECTION_ERRORS, Unavailable):
                pass
            finally:
                if conn is not None:
                    await conn.close()
            attempt += 1
            await trio.sleep(min(1.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0))
