"""In-process implementations of the log API: in-memory and embedded (durable, no network).

They run the same ``LogService`` as a network node, under a fixed principal, so the
conformance suite exercises identical validation, ACL and subscription logic.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from logact.protocol.api import LogAPI
from logact.protocol.codec import Entry
from logact.protocol.errors import BadRequest, Timeout
from logact.server.backend import Backend, MemoryBackend
from logact.server.commands import Limits
from logact.server.config import Principal, Role
from logact.server.embedded import EmbeddedBackend
from logact.server.service import LogService

#: The principal of an in-process log: it may do everything.
LOCAL_PRINCIPAL = Principal("local", (Role("local", frozenset({"*"}), admin=True),))


class LocalLog(LogAPI):
    def __init__(self, service: LogService, principal: Principal = LOCAL_PRINCIPAL) -> None:
        super().__init__()
        self.service = service
        self.principal = principal

    async def _call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        if timeout is None:
            return await self.service.handle(self.principal, request)
        try:
            with trio.fail_after(timeout):
                return await self.service.handle(self.principal, request)
        except trio.TooSlowError:
            raise Timeout(
                f"{request.get('op')} got no answer within {timeout}s; it may have taken effect"
            ) from None

    async def _open_subscription(
        self, bus: str, start: int, types: list[str] | None
    ) -> AsyncGenerator[Entry, None]:
        request: dict[str, Any] = {"bus": bus, "from": start}
        if types is not None:
            request["types"] = types
        bus, start, type_set = self.service.validate_subscription(self.principal, request)
        async for chunk in self.service.subscribe(bus, start, type_set):
            for wire in chunk:
                yield Entry.from_wire(wire)

    def as_principal(self, principal: Principal) -> LocalLog:
        """The same log seen by another principal (for ACL tests and multi-role processes)."""
        return LocalLog(self.service, principal)


@asynccontextmanager
async def open_local(
    backend: Backend,
    limits: Limits | None = None,
    fences: dict[str, str] | None = None,
    validate: Callable[[str, Any], str | None] | None = None,
) -> AsyncIterator[LocalLog]:
    service = LogService(backend, limits, fences=fences, validate=validate)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        try:
            yield LocalLog(service)
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_memory(
    limits: Limits | None = None,
    fences: dict[str, str] | None = None,
    validate: Callable[[str, Any], str | None] | None = None,
) -> AsyncIterator[LocalLog]:
    async with open_local(MemoryBackend(), limits, fences, validate) as log:
        yield log


@asynccontextmanager
async def open_embedded(
    data_dir: str | Path, *, durability: str = "fsync", limits: Limits | None = None
) -> AsyncIterator[LocalLog]:
    if durability not in ("fsync", "os"):
        raise BadRequest("durability must be 'fsync' or 'os'")
    backend = EmbeddedBackend(data_dir, durability=durability)
    try:
        async with open_local(backend, limits) as log:
            yield log
    finally:
        backend.close()
