"""The trio TCP front end: framing, authentication, pipelining and subscriptions.

One connection = one reader loop, one writer task draining a bounded queue, and one task per
in-flight request or subscription. Bad input gets a typed error; a corrupt stream (oversized
length prefix) is answered and then closed; nothing here can take the node down.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import trio

from logact.client import protocol
from logact.client.errors import (
    BadRequest,
    LogError,
    Overloaded,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from logact.server.config import ClusterConfig, Principal
from logact.server.service import LogService

log = logging.getLogger(__name__)
READ_CHUNK = 256 * 1024
COALESCE_BYTES = 256 * 1024


def ok_frame(request_id: int | None, result: dict[str, Any]) -> bytes:
    return protocol.encode({"id": request_id, "ok": True, "result": result})


def error_frame(request_id: int | None, error: LogError) -> bytes:
    return protocol.encode({"id": request_id, "ok": False, "error": error.to_wire()})


class Connection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        service: LogService,
        config: ClusterConfig,
        describe: Callable[[], dict[str, Any]],
    ) -> None:
        self.stream = stream
        self.service = service
        self.config = config
        self.describe = describe
        self.principal: Principal | None = None
        self.send, self._outbox = trio.open_memory_channel[bytes](config.send_queue_frames)
        self.inflight = 0
        self.subscriptions: dict[int, trio.CancelScope] = {}

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
            async with self._outbox:
                async for frame in self._outbox:
                    # Coalesce whatever else is already queued into one send (one syscall and
                    # one trio round for many pipelined replies).
                    frames = [frame]
                    size = len(frame)
                    while size < COALESCE_BYTES:
                        try:
                            frames.append(self._outbox.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        size += len(frames[-1])
                    await self.stream.send_all(b"".join(frames) if len(frames) > 1 else frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            done.set()

    async def _reply(self, frame: bytes) -> None:
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self.send.send(frame)

    async def _reader(self, nursery: trio.Nursery) -> None:
        decoder = protocol.FrameDecoder(self.config.limits.max_frame)
        while True:
            try:
                data = await self.stream.receive_some(READ_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            decoder.feed(data)
            try:
                for message in decoder.frames():
                    if not await self._dispatch(message, nursery):
                        return
            except protocol.FrameTooLarge as exc:
                await self._reply(error_frame(None, TooLarge(f"{exc}; closing the connection")))
                return

    async def _dispatch(
        self, message: dict[str, Any] | protocol.BadFrame, nursery: trio.Nursery
    ) -> bool:
        """Handle one frame; False closes the connection."""
        if isinstance(message, protocol.BadFrame):
            await self._reply(error_frame(None, BadRequest(str(message))))
            return True
        request_id = message.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            await self._reply(error_frame(None, BadRequest("every request needs an integer 'id'")))
            return True
        op = message.get("op")
        if self.principal is None:
            return await self._hello(request_id, message)
        if op == "hello":
            await self._reply(error_frame(request_id, BadRequest("already authenticated")))
        elif op == "subscribe":
            await self._start_subscription(request_id, message, nursery)
        elif op == "unsubscribe":
            sub = message.get("sub")
            scope = self.subscriptions.get(sub) if isinstance(sub, int) else None
            if scope is not None:
                scope.cancel()
            await self._reply(ok_frame(request_id, {"cancelled": scope is not None}))
        elif self.inflight >= self.config.max_inflight_per_connection:
            await self._reply(error_frame(request_id, Overloaded("too many requests in flight")))
        else:
            self.inflight += 1
            nursery.start_soon(self._request, request_id, message)
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
            await self._reply(error_frame(request_id, Unauthorized(reason)))
            return False
        self.principal = principal
        await self._reply(
            ok_frame(
                request_id,
                {
                    "principal": principal.name,
                    "roles": [role.name for role in principal.roles],
                    "version": protocol.PROTOCOL_VERSION,
                    "limits": self.config.limits.to_wire(),
                    "node": self.describe(),
                },
            )
        )
        return True

    async def _request(self, request_id: int, message: dict[str, Any]) -> None:
        assert self.principal is not None
        try:
            result = await self.service.handle(self.principal, message)
            frame = ok_frame(request_id, result)
        except LogError as exc:
            frame = error_frame(request_id, exc)
        except Exception as exc:  # a bug must not take the connection or node down
            log.exception("request %r failed", message.get("op"))
            frame = error_frame(request_id, Unavailable(f"internal error: {type(exc).__name__}"))
        finally:
            self.inflight -= 1
        await self._reply(frame)

    async def _start_subscription(
        self, request_id: int, message: dict[str, Any], nursery: trio.Nursery
    ) -> None:
        try:
            bus, start, types = self.service.validate_subscription(message)
        except LogError as exc:
            await self._reply(error_frame(request_id, exc))
            return
        if request_id in self.subscriptions:
            await self._reply(error_frame(request_id, BadRequest("subscription id in use")))
            return
        scope = trio.CancelScope()
        self.subscriptions[request_id] = scope
        await self._reply(ok_frame(request_id, {"sub": request_id}))
        nursery.start_soon(self._subscription, request_id, scope, bus, start, types)

    async def _subscription(
        self,
        sub: int,
        scope: trio.CancelScope,
        bus: str,
        start: int,
        types: frozenset[str] | None,
    ) -> None:
        error: LogError | None = None
        with scope:
            try:
                async for chunk in self.service.subscribe(bus, start, types):
                    frame = protocol.encode({"id": sub, "event": "entries", "entries": chunk})
                    with trio.move_on_after(self.config.slow_consumer_timeout) as waited:
                        await self.send.send(frame)
                    if waited.cancelled_caught:
                        self.service.counters["subscribers_cut_off"] += 1
                        raise Overloaded(
                            "subscriber too slow: cut off; resume from the last position"
                        )
            except LogError as exc:
                error = exc
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass
        self.subscriptions.pop(sub, None)
        if error is not None:
            await self._reply(
                protocol.encode({"id": sub, "event": "error", "error": error.to_wire()})
            )


async def serve(
    service: LogService,
    config: ClusterConfig,
    host: str,
    port: int,
    describe: Callable[[], dict[str, Any]],
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        try:
            await Connection(stream, service, config, describe).run()
        except Exception:  # a bug in one connection must never take the node down
            log.exception("connection handler failed")
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_tcp_listeners(port, host=host)
    await trio.serve_listeners(handler, listeners, task_status=task_status)
