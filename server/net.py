"""The trio TCP front end: framing, authentication, pipelining and subscriptions.

One connection = one reader loop, one writer task draining a bounded queue, and one task per
in-flight request or subscription. Everything a client can make a node hold is bounded (the
[server] settings; docs/protocol.md, "Limits and hostile input"): connections per node and per
peer address; until 'hello' succeeds, a small frame and a deadline; idle connections; and the
bytes of request frames in flight plus replies not yet sent, per connection and per node —
past either bound the node stops reading from the connection, so its client meets TCP
backpressure instead of the node growing. Bad input gets a typed error and is logged at a
bounded rate; an unauthenticated or corrupt stream is answered and closed; nothing here can
take the node down.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import trio

from logact.protocol import codec
from logact.protocol.errors import (
    BadRequest,
    LogError,
    Overloaded,
    QuotaExceeded,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from logact.server.config import ClusterConfig, Principal, ServerSettings
from logact.server.ratelog import RateLimitedLog
from logact.server.service import LogService
from logact.server.tls import server_context

log = logging.getLogger(__name__)
READ_CHUNK = 256 * 1024
COALESCE_BYTES = 256 * 1024
#: accept() errors that mean "out of descriptors or memory for now": wait and try again.
ACCEPT_RETRY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_RETRY_DELAY = 0.1
#: How long a refused connection may take to receive the reason.
REFUSAL_TIMEOUT = 1.0
#: Failed hellos remembered per address, for this long, for at most this many addresses.
FAILED_HELLO_MEMORY = 60.0
FAILED_HELLO_PEERS = 10_000
MAX_HELLO_DELAY = 5.0


#: What this node speaks beyond protocol 2's first requests; a client uses a feature only if
#: its node names it in ``hello``.
FEATURES = ("multi",)


def ok_frame(request_id: int | None, result: dict[str, Any]) -> bytes:
    return codec.encode({"id": request_id, "ok": True, "result": result})


def error_frame(request_id: int | None, error: LogError) -> bytes:
    return codec.encode({"id": request_id, "ok": False, "error": error.to_wire()})


class ByteBudget:
    """Bytes held for clients, with a cap that pauses readers rather than refusing work.

    A reader waits in ``wait_below`` while the budget is at or over its cap; the request or
    reply that crossed it was already admitted, so one frame larger than the cap still passes.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self._changed = trio.Event()

    @property
    def full(self) -> bool:
        return self.used >= self.cap

    def add(self, size: int) -> None:
        self.used += size

    def release(self, size: int) -> None:
        self.used -= size
        self._changed.set()
        self._changed = trio.Event()

    async def wait_below(self) -> None:
        while self.full:
            await self._changed.wait()


class HelloThrottle:
    """Slows repeated failed hellos from one address (doubling delay, bounded memory)."""

    def __init__(self, base: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failed(self, peer: str) -> float:
        """Record a failure; the delay to wait before answering it."""
        now = self.clock()
        count, last = self._failures.pop(peer, (0, now))
        count = count + 1 if now - last < FAILED_HELLO_MEMORY else 1
        self._failures[peer] = (count, now)
        while len(self._failures) > FAILED_HELLO_PEERS:
            self._failures.popitem(last=False)
        return min(self.base * 2 ** (count - 1), MAX_HELLO_DELAY)


class Admission:
    """Open connections per node and per peer address."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.total = 0
        self.per_peer: dict[str, int] = {}

    def refusal(self, peer: str) -> str | None:
        if self.total >= self.settings.max_connections:
            return f"the node holds its maximum of {self.settings.max_connections} connections"
        if self.per_peer.get(peer, 0) >= self.settings.max_connections_per_peer:
            cap = self.settings.max_connections_per_peer
            return f"your address holds its maximum of {cap} connections"
        return None

    def open(self, peer: str) -> None:
        self.total += 1
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1

    def close(self, peer: str) -> None:
        self.total -= 1
        left = self.per_peer[peer] - 1
        if left:
            self.per_peer[peer] = left
        else:
            del self.per_peer[peer]


class Front:
    """What all connections of one node share: the service, limits, budgets, logging."""

    def __init__(
        self, service: LogService, config: ClusterConfig, describe: Callable[[], dict[str, Any]]
    ) -> None:
        self.service = service
        self.config = config
        self.settings = config.server
        self.describe = describe
        self.budget = ByteBudget(config.server.max_node_bytes)
        self.admission = Admission(config.server)
        self.throttle = HelloThrottle(config.server.failed_hello_delay)
        self.events = RateLimitedLog(log, counts=service.counters)
        #: Open subscriptions by principal name.
        self.subscriptions: Counter[str] = Counter()


class Connection:
    def __init__(self, stream: trio.abc.Stream, front: Front, peer: str) -> None:
        self.stream = stream
        self.front = front
        self.service = front.service
        self.config = front.config
        self.settings = front.settings
        self.peer = peer
        self.principal: Principal | None = None
        self.send, self._outbox = trio.open_memory_channel[bytes](self.settings.send_queue_frames)
        self.budget = ByteBudget(self.settings.max_connection_bytes)
        self.inflight = 0
        self.subscriptions: dict[int, trio.CancelScope] = {}
        self.opened = trio.current_time()

    def _hold(self, size: int) -> None:
        self.budget.add(size)
        self.front.budget.add(size)

    def _free(self, size: int) -> None:
        self.budget.release(size)
        self.front.budget.release(size)

    async def _room(self) -> None:
        """Wait until neither this connection's nor the node's budget is full."""
        while (
            self.budget.used >= self.budget.cap or self.front.budget.used >= self.front.budget.cap
        ):
            await self.budget.wait_below()
            await self.front.budget.wait_below()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            writer_done = trio.Event()
            nursery.start_soon(self._writer, writer_done)
            try:
                await self._reader(nursery)
            finally:
                for scope in self.subscriptions.values():
                    scope.cancel()
                self.send.close()
                with trio.move_on_after(5):
                    await writer_done.wait()
                nursery.cancel_scope.cancel()
        await trio.aclose_forcefully(self.stream)

    async def _writer(self, done: trio.Event) -> None:
        try:
            async for frame in self._outbox:
                # Coalesce whatever else is already queued into one send (one syscall and one
                # trio round for many pipelined replies).
                frames = [frame]
                size = len(frame)
                while size < COALESCE_BYTES:
                    try:
                        frames.append(self._outbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    size += len(frames[-1])
                try:
                    with trio.move_on_after(self.settings.write_timeout) as waited:
                        await self.stream.send_all(b"".join(frames) if len(frames) > 1 else frame)
                finally:
                    self._free(sum(len(f) for f in frames))
                if waited.cancelled_caught:
                    # A client that reads nothing holds its replies (and the node's budget).
                    self.front.events.event("slow_clients_closed", "replies unread: closed")
                    await trio.aclose_forcefully(self.stream)
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            # Whatever is still queued will never be sent: it no longer holds the budgets.
            while True:
                try:
                    self._free(len(self._outbox.receive_nowait()))
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            self._outbox.close()
            done.set()

    async def _enqueue(self, frame: bytes) -> None:
        """Queue a frame for the writer; it holds the budgets until written or dropped."""
        self._hold(len(frame))
        queued = False
        try:
            await self.send.send(frame)
            queued = True
        finally:
            if not queued:
                self._free(len(frame))

    async def _reply(self, frame: bytes) -> None:
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._enqueue(frame)

    async def _receive(self) -> bytes | bytearray | None:
        """The next bytes from the client, or None when the connection should end.

        Waits while the connection's or the node's budget is full; ends a connection that has
        not said hello in time, or that is idle (nothing received, in flight or subscribed).
        """
        while True:
            await self._room()
            if self.principal is None:
                deadline = self.opened + self.settings.hello_timeout
            else:
                deadline = trio.current_time() + self.settings.idle_timeout
            with trio.move_on_at(deadline):
                try:
                    return await self.stream.receive_some(READ_CHUNK) or None
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
            if self.principal is None:
                self.front.events.event("hello_timeouts", "a connection sent no hello in time")
                await self._reply(error_frame(None, Unauthorized("no 'hello' in time")))
                return None
            if not (self.subscriptions or self.inflight):
                self.service.counters["idle_closed"] += 1
                return None

    async def _reader(self, nursery: trio.Nursery) -> None:
        decoder = codec.FrameDecoder(
            self.settings.preauth_max_frame, self.config.limits.max_frame_items
        )
        while True:
            data = await self._receive()
            if data is None:
                return
            decoder.feed(data)
            try:
                for message in decoder.frames():
                    if not await self._dispatch(message, decoder, nursery):
                        return
            except codec.FrameTooLarge as exc:
                self.front.events.event("frames_too_large", str(exc))
                await self._reply(error_frame(None, TooLarge(f"{exc}; closing the connection")))
                return

    async def _dispatch(
        self,
        message: dict[str, Any] | codec.BadFrame,
        decoder: codec.FrameDecoder,
        nursery: trio.Nursery,
    ) -> bool:
        """Handle one frame; False closes the connection."""
        if isinstance(message, codec.BadFrame):
            self.front.events.event("bad_frames", str(message)[:200])
            await self._reply(error_frame(None, BadRequest(str(message)[:500])))
            return self.principal is not None  # unauthenticated garbage: closed
        request_id = message.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            await self._reply(error_frame(None, BadRequest("every request needs an integer 'id'")))
            return self.principal is not None
        if self.principal is None:
            if not await self._hello(request_id, message):
                return False
            decoder.max_frame = self.config.limits.max_frame
            return True
        op = message.get("op")
        if op == "hello":
            await self._reply(error_frame(request_id, BadRequest("already authenticated")))
        elif op == "subscribe":
            await self._start_subscription(request_id, message, nursery)
        elif op == "unsubscribe":
            sub = message.get("sub")
            scope = self.subscriptions.pop(sub, None) if isinstance(sub, int) else None
            if scope is not None:
                scope.cancel()
            await self._reply(ok_frame(request_id, {"cancelled": scope is not None}))
        elif self.inflight >= self.settings.max_inflight_per_connection:
            await self._reply(error_frame(request_id, Overloaded("too many requests in flight")))
        else:
            await self._room()  # pipelined requests wait here while their replies pile up
            self.inflight += 1
            self._hold(decoder.last_size)
            nursery.start_soon(self._request, request_id, message, decoder.last_size)
        return True

    async def _hello(self, request_id: int, message: dict[str, Any]) -> bool:
        token = message.get("token")
        principal = (
            self.config.principal_for(token)
            if message.get("op") == "hello" and isinstance(token, str)
            else None
        )
        if principal is None:
            reason = "unknown token" if message.get("op") == "hello" else "send 'hello' first"
            delay = self.front.throttle.failed(self.peer)
            self.front.events.event("failed_hellos", f"{reason} from {self.peer}")
            await trio.sleep(delay)
            await self._reply(error_frame(request_id, Unauthorized(reason)))
            return False
        version = message.get("version", codec.PROTOCOL_VERSION)
        if version != codec.PROTOCOL_VERSION:
            problem = f"this node speaks protocol {codec.PROTOCOL_VERSION}, not {version!r}"
            await self._reply(error_frame(request_id, BadRequest(problem[:200])))
            return False
        self.principal = principal
        await self._reply(
            ok_frame(
                request_id,
                {
                    "principal": principal.name,
                    "roles": [role.name for role in principal.roles],
                    "version": codec.PROTOCOL_VERSION,
                    "limits": self.config.limits.to_wire(),
                    "features": list(FEATURES),
                    "node": self.front.describe(),
                },
            )
        )
        return True

    async def _request(self, request_id: int, message: dict[str, Any], size: int) -> None:
        assert self.principal is not None
        try:
            result = await self.service.handle(self.principal, message)
            # Encoding is where a large reply takes memory: only with room for it.
            await self._room()
            frame = ok_frame(request_id, result)
        except LogError as exc:
            frame = error_frame(request_id, exc)
        except Exception as exc:  # a bug must not take the connection or node down
            name = type(exc).__name__
            self.front.events.event("internal_errors", name, level=logging.ERROR, exc_info=True)
            frame = error_frame(request_id, Unavailable(f"internal error: {name}"))
        finally:
            self.inflight -= 1
            self._free(size)
        await self._reply(frame)

    async def _start_subscription(
        self, request_id: int, message: dict[str, Any], nursery: trio.Nursery
    ) -> None:
        assert self.principal is not None
        try:
            bus, start, types = self.service.validate_subscription(self.principal, message)
        except LogError as exc:
            await self._reply(error_frame(request_id, exc))
            return
        if request_id in self.subscriptions:
            await self._reply(error_frame(request_id, BadRequest("subscription id in use")))
            return
        refusal = self._subscription_quota()
        if refusal is not None:
            await self._reply(error_frame(request_id, QuotaExceeded(refusal)))
            return
        scope = trio.CancelScope()
        self.subscriptions[request_id] = scope
        await self._reply(ok_frame(request_id, {"sub": request_id}))
        assert self.principal is not None
        self.front.subscriptions[self.principal.name] += 1  # given back by _subscription
        nursery.start_soon(self._subscription, request_id, scope, bus, start, types)

    def _subscription_quota(self) -> str | None:
        assert self.principal is not None
        per_connection = self.settings.max_subscriptions_per_connection
        if len(self.subscriptions) >= per_connection:
            return f"a connection holds at most {per_connection} subscriptions"
        per_principal = self.settings.max_subscriptions_per_principal
        if self.front.subscriptions[self.principal.name] >= per_principal:
            return f"{self.principal.name!r} holds {per_principal} subscriptions on this node"
        return None

    async def _subscription(
        self,
        sub: int,
        scope: trio.CancelScope,
        bus: str,
        start: int,
        types: frozenset[str] | None,
    ) -> None:
        assert self.principal is not None
        held = self.front.subscriptions
        error: LogError | None = None
        try:
            with scope:
                try:
                    async for chunk in self.service.subscribe(bus, start, types):
                        frame = codec.encode({"id": sub, "event": "entries", "entries": chunk})
                        with trio.move_on_after(self.settings.slow_consumer_timeout) as waited:
                            await self._enqueue(frame)
                        if waited.cancelled_caught:
                            self.service.counters["subscribers_cut_off"] += 1
                            raise Overloaded(
                                "subscriber too slow: cut off; resume from the last position"
                            )
                except LogError as exc:
                    error = exc
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass
        finally:
            held[self.principal.name] -= 1
            if not held[self.principal.name]:
                del held[self.principal.name]
            self.subscriptions.pop(sub, None)
        if error is not None:
            await self._reply(codec.encode({"id": sub, "event": "error", "error": error.to_wire()}))


async def _refuse(stream: trio.SocketStream, reason: str) -> None:
    with trio.move_on_after(REFUSAL_TIMEOUT), contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(error_frame(None, Overloaded(reason)))
    await trio.aclose_forcefully(stream)


def _peer(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "?"


async def serve(
    service: LogService,
    config: ClusterConfig,
    host: str,
    port: int,
    describe: Callable[[], dict[str, Any]],
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    front = Front(service, config, describe)
    tls = server_context(config.tls) if config.tls.enabled else None

    async def secured(stream: trio.SocketStream, peer: str) -> trio.abc.Stream | None:
        """The stream itself, or wrapped in TLS once its handshake is done in time."""
        if tls is None:
            return stream
        wrapped = trio.SSLStream(stream, tls, server_side=True)
        with trio.move_on_after(config.server.hello_timeout):
            try:
                await wrapped.do_handshake()
                return wrapped
            except trio.BrokenResourceError as exc:
                front.events.event("tls_failures", f"{peer}: {exc.__cause__ or exc}"[:200])
                return None
        front.events.event("tls_failures", f"{peer}: no handshake in time")
        return None

    async def handle(stream: trio.SocketStream) -> None:
        peer = _peer(stream)
        refusal = front.admission.refusal(peer)
        if refusal is not None:
            front.events.event("connections_refused", refusal)
            await _refuse(stream, refusal)
            return
        front.admission.open(peer)
        try:
            channel = await secured(stream, peer)
            if channel is not None:
                await Connection(channel, front, peer).run()
        except Exception:  # a bug in one connection must never take the node down
            front.events.event("connection_errors", "handler failed", exc_info=True)
        finally:
            await trio.aclose_forcefully(stream)
            front.admission.close(peer)

    async def accept_loop(listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_RETRY_ERRNOS:
                        raise
                    # Out of descriptors: keep the listener, let connections close, retry.
                    front.events.event("accept_errors", errno.errorcode[exc.errno])
                    await trio.sleep(ACCEPT_RETRY_DELAY)
                    continue
                nursery.start_soon(handle, stream)

    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(accept_loop, listener, nursery)
        task_status.started(listeners)
