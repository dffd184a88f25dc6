"""The trio network client: leader discovery, retries with the same idempotency key,
a deadline on every call, and subscriptions that resume after failover.

Use as ``async with Client(["127.0.0.1:7101", ...], token) as log: ...``.
"""

from __future__ import annotations

import math
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

#: Encoded appends per ``multi`` request: about 400 appends of 100 B, or 6 of 10 KB.
DEFAULT_BATCH_BYTES = 64 * 1024

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


def append_items(request: dict[str, Any]) -> int:
    """Items (keys and values) of an append request as a node counts them in a frame, from
    its shape (``protocol.api``: entries are maps of scalars, key and fence are pairs), without
    walking it: the map, each key and value, each entry's map, keys and values, and the
    elements of the key and fence."""
    items = 1 + 2 * len(request)
    for entry in request["entries"]:
        items += 1 + 2 * len(entry)
    return items + len(request.get("key", ())) + len(request.get("fence", ()))


class _Pending:
    """A caller waiting for its answer: a response frame, None if the connection broke, or
    ``TIMED_OUT`` from the connection's watchdog once ``deadline`` has passed.

    It parks its task directly rather than through a ``trio.Event`` or a cancel scope: on the
    hot path those cost as much as the rest of an append."""

    __slots__ = ("deadline", "done", "reply", "task")

    def __init__(self, deadline: float = math.inf) -> None:
        self.deadline = deadline
        self.done = False
        self.reply: dict[str, Any] | None = None
        self.task: trio.lowlevel.Task | None = None

    def deliver(self, frame: dict[str, Any] | None) -> None:
        if self.done:
            return  # answered already (e.g. timed out before its reply came)
        self.done = True
        self.reply = frame
        if self.task is not None:
            trio.lowlevel.reschedule(self.task)
            self.task = None

    async def wait(self) -> dict[str, Any] | None:
        if not self.done:
            self.task = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        return self.reply

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self.task = None  # the caller was cancelled: nobody to wake any more
        return trio.lowlevel.Abort.SUCCEEDED


#: The answer an append gets from the watchdog when its attempt's deadline passes unanswered.
TIMED_OUT: dict[str, Any] = {"ok": False, "error": {"code": "timeout", "message": "no answer"}}
#: How often a connection's watchdog looks for appends past their deadline (its precision).
WATCHDOG_PERIOD = 0.1
#: A client connected to a node that is not the leader asks it which node is, first after
#: this many seconds, then at doubling intervals up to the second figure (``_seek_leader``).
LEADER_SEEK_FIRST = 0.05
LEADER_SEEK_MAX = 5.0


class _Queued:
    """An append waiting for the next ``multi``, encoded once by its caller."""

    __slots__ = ("entries", "items", "op", "pending", "sent")

    def __init__(self, op: bytes, entries: int, items: int, deadline: float) -> None:
        self.op = op
        self.entries = entries
        self.items = items
        self.pending = _Pending(deadline)
        self.sent = False


class _Multi:
    """The callers of one ``multi``: its reply's ``results``, in order, one to each."""

    __slots__ = ("pendings",)

    def __init__(self, pendings: list[_Pending]) -> None:
        self.pendings = pendings

    def deliver(self, frame: dict[str, Any] | None) -> None:
        if frame is None or not frame.get("ok"):
            for pending in self.pendings:  # the connection broke, or the node refused it all
                pending.deliver(frame)
            return
        result = frame.get("result")
        results = result.get("results") if isinstance(result, dict) else None
        if not (
            isinstance(results, list)
            and len(results) == len(self.pendings)
            and all(isinstance(item, dict) for item in results)
        ):
            results = [MALFORMED_MULTI] * len(self.pendings)
        for pending, item in zip(self.pendings, results, strict=True):
            pending.deliver(item)


#: What each caller of a ``multi`` gets if the node's answer does not fit (retried, same key).
MALFORMED_MULTI: dict[str, Any] = {
    "ok": False,
    "error": {"code": "unavailable", "message": "the node answered a multi malformed"},
}


class Connection:
    """One authenticated TCP connection with pipelined requests.

    Appends (``append``) are coalesced the way a Kafka producer batches records with linger 0:
    every append queued while the connection's batcher was not running goes out in one
    ``multi`` frame (docs/protocol.md), within the node's frame, item and entry limits; each
    keeps its own idempotency key, answer and error, so retries work as for single appends.
    """

    def __init__(self, stream: trio.abc.Stream, address: str) -> None:
        self.stream = stream
        self.address = address
        self.decoder = codec.FrameDecoder()
        self.ids = iter(range(1, 2**62))
        self.waiting: dict[int, _Pending | _Multi] = {}
        self.broken: BaseException | None = None
        self.hello: dict[str, Any] = {}
        self._send_lock = trio.Lock()
        self._queue: list[_Queued] = []
        self._queued = trio.Event()
        #: Replaced by a connection to the leader: closed once nothing sent here is unanswered.
        self.retiring = False

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

    @property
    def limits(self) -> dict[str, Any]:
        limits = self.hello.get("limits")
        return limits if isinstance(limits, dict) else {}

    @property
    def coalesces(self) -> bool:
        """Whether the node speaks ``multi`` (it says so in ``hello``)."""
        return "multi" in (self.hello.get("features") or ())

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
                    waiter.deliver(frame)
                    if self.retiring and self.idle:
                        return
        except (*CONNECTION_ERRORS, LogError, codec.FrameTooLarge) as exc:
            self.broken = exc
        finally:
            self.broken = self.broken or EOFError("connection closed")
            for waiter in self.waiting.values():
                waiter.deliver(None)
            self.waiting.clear()
            self._queued.set()  # the batcher fails what is still queued, and ends
            await trio.aclose_forcefully(self.stream)

    def _check_size(self, size: int) -> None:
        max_frame = self.limits.get("max_frame", codec.MAX_FRAME)
        if size > max_frame:
            raise TooLarge(f"request of {size} bytes exceeds the node's frame limit {max_frame}")

    async def _send_frame(self, frame: bytes) -> None:
        async with self._send_lock:
            try:
                await self.stream.send_all(frame)
            except BaseException:
                # A frame cut off midway (e.g. the caller's deadline) would desynchronise
                # the stream for every later request: this connection is finished.
                self.broken = self.broken or EOFError("send interrupted")
                await trio.aclose_forcefully(self.stream)
                raise

    async def _answer(self, pending: _Pending) -> dict[str, Any]:
        reply = await pending.wait()
        if reply is None:
            raise EOFError(f"connection to {self.address} lost: {self.broken}")
        return reply

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its response (caller imposes the deadline)."""
        if self.broken is not None:
            raise EOFError(str(self.broken))
        request_id = next(self.ids)
        frame = codec.encode({**message, "id": request_id})
        self._check_size(len(frame) - codec.HEADER.size)
        pending = _Pending()
        self.waiting[request_id] = pending
        try:
            await self._send_frame(frame)
            return await self._answer(pending)
        finally:
            self.waiting.pop(request_id, None)

    async def append(self, message: dict[str, Any], deadline: float = math.inf) -> dict[str, Any]:
        """An ``append`` request's response, sent in the next ``multi`` if the node speaks it;
        ``TIMED_OUT`` if it has none by ``deadline`` (``trio.current_time()``)."""
        if not self.coalesces:
            return await self.request(message)
        if self.broken is not None:
            raise EOFError(str(self.broken))
        op = codec.encode_item(message)
        self._check_size(len(op) + codec.MULTI_OVERHEAD)
        queued = _Queued(op, len(message["entries"]), append_items(message), deadline)
        self._queue.append(queued)
        self._queued.set()
        try:
            return await self._answer(queued.pending)
        finally:
            if not queued.sent:
                self._queue.remove(queued)

    async def batcher(self, linger: float = 0.0, batch_bytes: int = DEFAULT_BATCH_BYTES) -> None:
        """Send what callers queued, as ``multi`` frames, until the connection breaks; each
        frame waits ``linger`` seconds after its first append for others to join, and holds
        at most ``batch_bytes`` of appends."""
        try:
            while self.broken is None:
                await self._queued.wait()
                if linger:
                    await trio.sleep(linger)
                self._queued = trio.Event()
                while self._queue and self.broken is None:
                    batch = self._take(batch_bytes)
                    request_id = next(self.ids)
                    waiter = self.waiting[request_id] = _Multi([q.pending for q in batch])
                    try:
                        await self._send_frame(
                            codec.encode_multi(request_id, [q.op for q in batch])
                        )
                    except CONNECTION_ERRORS:
                        self.waiting.pop(request_id, None)
                        waiter.deliver(None)
        finally:
            for queued in self._queue:
                queued.pending.deliver(None)

    async def watchdog(self, period: float = WATCHDOG_PERIOD) -> None:
        """Answer ``TIMED_OUT`` to appends past their deadline, queued or sent, every ``period``
        seconds until the connection breaks: one task instead of a cancel scope per append."""
        while self.broken is None:
            await trio.sleep(period)
            now = trio.current_time()
            for queued in self._queue:
                if queued.pending.deadline <= now:
                    queued.pending.deliver(TIMED_OUT)
            for waiter in self.waiting.values():
                if isinstance(waiter, _Multi):
                    for pending in waiter.pendings:
                        if pending.deadline <= now:
                            pending.deliver(TIMED_OUT)

    def _take(self, batch_bytes: int) -> list[_Queued]:
        """The longest prefix of the queue one ``multi`` may hold (at least one append)."""
        limits = self.limits
        max_frame = limits.get("max_frame", codec.MAX_FRAME) - codec.MULTI_OVERHEAD
        max_bytes = min(batch_bytes, max_frame)
        max_entries = limits.get("max_batch_entries", 1000)
        max_items = limits.get("max_frame_items", 8 * max_entries + 1024) - 16
        size = entries = items = count = 0
        for queued in self._queue:
            size += len(queued.op)
            entries += queued.entries
            items += queued.items
            if count and (size > max_bytes or entries > max_entries or items > max_items):
                break
            count += 1
        batch = self._queue[:count]
        del self._queue[:count]
        for queued in batch:
            queued.sent = True
        return batch

    @property
    def idle(self) -> bool:
        """Nothing sent here waits for an answer, and nothing queued waits to be sent."""
        return not self.waiting and not self._queue

    async def retire(self) -> None:
        """Close once every request sent or queued here is answered (the reader closes it
        after the last answer); at once if none is. New requests go elsewhere."""
        self.retiring = True
        if self.idle:
            await self.close()

    async def close(self) -> None:
        self.broken = self.broken or EOFError("closed")
        self._queued.set()
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
        coalesce: bool = True,
        linger: float = 0.0,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        """``tls``: talk TLS to the nodes (``server.tls.client_context``); None: plain TCP.
        ``coalesce``: send concurrent appends together in ``multi`` requests (when the node
        speaks it), after waiting ``linger`` seconds for more to join (0: no wait), each
        request holding at most ``batch_bytes`` of encoded appends (and always at least one),
        so that under load several requests are in flight and the node overlaps them."""
        if linger < 0 or batch_bytes < 1:
            raise ValueError("linger must be >= 0 and batch_bytes >= 1")
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
        self.coalesce = coalesce
        self.linger = linger
        self.batch_bytes = batch_bytes
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

    @property
    def node(self) -> str | None:
        """The address of the node this client's requests go to now (None before the first)."""
        conn = self._conn
        return conn.address if conn is not None and conn.broken is None else None

    # ---- connection management -------------------------------------------------------
    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and conn.broken is None:
            return conn  # the common case, without taking the lock
        async with self._connect_lock:
            if self._conn is not None and self._conn.broken is None:
                return self._conn
            assert self._nursery is not None, "use 'async with Client(...)'"
            self._conn = await self._connect_any()
            self._serve(self._conn)
            return self._conn

    def _serve(self, conn: Connection) -> None:
        """Start ``conn``'s tasks; and, if its node is a follower or candidate, a task that
        moves the client to the leader once that node names one."""
        assert self._nursery is not None
        self._nursery.start_soon(conn.reader)
        if self.coalesce and conn.coalesces:
            self._nursery.start_soon(conn.batcher, self.linger, self.batch_bytes)
            self._nursery.start_soon(conn.watchdog)
        node = conn.hello.get("node")
        if (
            self.prefer_leader
            and len(self.addresses) > 1
            and isinstance(node, dict)
            and node.get("mode") == "raft"
            and node.get("role") != "leader"
        ):
            self._nursery.start_soon(self._seek_leader, conn)

    async def _seek_leader(self, conn: Connection) -> None:
        """Move this client's requests from ``conn`` to the leader once ``conn``'s node names
        one (issue 18). The node knew no leader when the client connected (an election, or a
        node that had not yet heard from a new leader), so the client stayed; its appends are
        then forwarded, and each is answered only once that node has applied it. Asks after
        ``LEADER_SEEK_FIRST`` s, then at doubling intervals up to ``LEADER_SEEK_MAX`` s, while
        ``conn`` is still the client's connection; a named leader is used only if it is one of
        the client's own addresses."""
        delay = LEADER_SEEK_FIRST
        while True:
            await trio.sleep(delay)
            delay = min(2 * delay, LEADER_SEEK_MAX)
            if conn is not self._conn or conn.broken is not None:
                return
            leader = await self._leader_named_by(conn)
            if leader is None:
                continue
            if leader == conn.address:
                return  # its node became the leader
            moved = await self._open_leader(leader)
            if moved is None:
                continue
            if conn is not self._conn or conn.broken is not None:
                await moved.close()  # the client reconnected meanwhile
                return
            self._conn = moved
            self._serve(moved)
            await conn.retire()
            return

    async def _open_leader(self, address: str) -> Connection | None:
        """A connection to the leader at ``address`` (one of the client's addresses, where the
        next reconnection starts after it); None if it cannot be opened now."""
        try:
            conn = await Connection.open(address, self.token, self.connect_timeout, self.tls)
        except (*CONNECTION_ERRORS, LogError, trio.TooSlowError):
            return None
        self._next_index = self.addresses.index(address) + 1
        return conn

    async def _leader_named_by(self, conn: Connection) -> str | None:
        """The client address of the leader ``conn``'s node names (its own if it leads), if it
        is one of this client's addresses; None if it names none or does not answer in time."""
        reply: dict[str, Any] = {}
        with trio.move_on_after(self.attempt_timeout):
            try:
                reply = await conn.request({"op": "status"})
            except (*CONNECTION_ERRORS, LogError):
                return None
        result = reply.get("result") if reply.get("ok") else None
        node = result.get("node") if isinstance(result, dict) else None
        if not isinstance(node, dict):
            return None
        if node.get("role") == "leader":
            return conn.address
        leader = node.get("leader_client")
        return leader if isinstance(leader, str) and leader in self.addresses else None

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
                leader_conn = await self._open_leader(leader)
                if leader_conn is None:
                    return conn
                await conn.close()
                return leader_conn
            return conn
        raise Unavailable(f"no node reachable among {self.addresses}: {last}")

    def _drop(self, conn: Connection | None) -> None:
        """Give up on ``conn`` (the client's connection, or one it is leaving for the leader
        whose node has gone silent): close it; the next request connects again."""
        if conn is None or (conn is not self._conn and not conn.retiring):
            return
        if conn is self._conn:
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
        coalesced = self.coalesce and request.get("op") == "append"
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                break
            conn = self._conn
            limit = min(remaining, self.attempt_timeout)
            try:
                if coalesced and conn is not None and conn.broken is None and conn.coalesces:
                    # The hot path: the connection's watchdog bounds the wait (TIMED_OUT).
                    sent = True
                    reply = await conn.append(request, trio.current_time() + limit)
                else:
                    reply = TIMED_OUT
                    with trio.move_on_after(limit):
                        conn = await self._connection()
                        sent = True
                        reply = await (conn.append if coalesced else conn.request)(request)
                if reply is TIMED_OUT:
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
