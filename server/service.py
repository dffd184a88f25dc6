"""The log service: one request in, one typed result out, over any backend.

Authorisation, validation, group commit, linearizable reads and subscriptions live here, so the
network server and the in-process API share exactly the same behaviour.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from logact.protocol.errors import BadRequest, Forbidden, LogError, error_from_wire
from logact.server import commands
from logact.server.backend import Backend
from logact.server.command_types import Command, Reply
from logact.server.commands import Limits
from logact.server.committer import GroupCommitter
from logact.server.config import Principal, Unsafe
from logact.server.state import StoredEntry

#: A subscription push carries at most this many bytes of bodies (plus one entry).
SUBSCRIPTION_CHUNK_BYTES = 256 * 1024


def entry_to_wire(entry: StoredEntry) -> dict[str, Any]:
    pos, ts, etype, author, body, _size = entry
    return {"pos": pos, "ts": ts, "type": etype, "author": author, "body": body}


def _reply(reply: dict[str, Any]) -> dict[str, Any]:
    """Turn a state-machine reply (in its wire form) into a result, raising its typed error."""
    if not reply["ok"]:
        raise error_from_wire(reply)
    return {k: v for k, v in reply.items() if k != "ok"}


def _item(outcome: Reply | LogError) -> dict[str, Any]:
    """One append's answer inside a ``multi`` reply, shaped like a response frame without id."""
    wire = outcome.to_wire()
    if isinstance(outcome, LogError):
        return {"ok": False, "error": wire}
    ok = wire.pop("ok")
    return {"ok": True, "result": wire} if ok else {"ok": False, "error": wire}


class LogService:
    def __init__(
        self,
        backend: Backend,
        limits: Limits | None = None,
        *,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        unsafe: Unsafe | None = None,
        fences: dict[str, str] | None = None,
        validate: Callable[[str, Any], str | None] | None = None,
    ) -> None:
        self.backend = backend
        self.fences = fences or {}
        self.validate = validate
        self.unsafe = unsafe or Unsafe()
        self.limits = limits or Limits()
        self.clock = clock
        self.committer = GroupCommitter(
            backend.replicate, max_inflight=backend.max_inflight, timeout=request_timeout
        )
        #: Operational counters shown by ``status`` (e.g. subscribers cut off as too slow).
        self.counters: Counter[str] = Counter()
        self._changed = trio.Event()
        self._notify_pending = False
        #: Subscriptions open on this node: none, and an applied batch wakes nobody.
        self._subscriptions = 0
        self._token: trio.lowlevel.TrioToken | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the group committer; the service is usable once this has started."""
        self._token = trio.lowlevel.current_trio_token()
        self.backend.set_listener(self._on_applied)
        await self.committer.run(task_status=task_status)

    # ---------------------------------------------------------------- notifications
    def _on_applied(self) -> None:
        """Called from whichever thread applied a batch; wakes subscribers on the trio loop.

        Without subscriptions it returns at once: waking the trio thread for nothing cost a
        follower a system call and a GIL hand-off per batch. No wake-up is lost: a subscription
        is counted before it first reads the state, so a batch applied after that read sees it.
        """
        if self._notify_pending or self._token is None or not self._subscriptions:
            return
        self._notify_pending = True
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._wake_subscribers)

    def _wake_subscribers(self) -> None:
        self._notify_pending = False
        self._changed.set()
        self._changed = trio.Event()

    # ---------------------------------------------------------------- requests
    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _commit(self, cmd: Command) -> dict[str, Any]:
        """Replicate ``cmd``; its result, or its typed error."""
        reply = await self.committer.submit(cmd)
        return _reply(reply.to_wire())

    async def handle(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            raise BadRequest(f"'op' must be one of {known}")
        return await handler(self, principal, request)

    def _append_command(
        self,
        principal: Principal,
        request: dict[str, Any],
        ts: int,
        budget: commands.ItemBudget | None = None,
        rights: dict[tuple[str, str], bool] | None = None,
    ) -> Command:
        """``rights``: the principal's append rights by (type, bus) found so far, shared by
        the appends of one request (matching its roles' bus patterns is a cost per append)."""
        if self.unsafe.no_dedup:
            request = {k: v for k, v in request.items() if k != "key"}
        bus = commands.bus_id(request)
        known = {} if rights is None else rights

        def may_append(etype: str) -> bool:
            allowed = known.get((etype, bus))
            if allowed is None:
                allowed = known[etype, bus] = principal.may_append_on(etype, bus)
            return allowed

        return commands.append_command(
            request,
            principal.name,
            ts,
            self.limits,
            may_append,
            self.fences,
            self.validate,
            budget,
        )

    async def _append(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        return await self._commit(self._append_command(principal, request, self._now_ms()))

    async def _multi(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        """Independent appends in one request (a client's coalesced appends): each is checked,
        replicated and answered on its own, as if sent alone; they share one batch."""
        ops = commands.multi_ops(request, self.limits)
        self.counters["multi_requests"] += 1
        self.counters["multi_appends"] += len(ops)
        budget = commands.ItemBudget(self.limits.max_batch_items)
        rights: dict[tuple[str, str], bool] = {}
        ts = self._now_ms()
        results: list[dict[str, Any]] = []
        accepted: list[tuple[int, Command]] = []
        for index, op in enumerate(ops):
            try:
                accepted.append((index, self._append_command(principal, op, ts, budget, rights)))
                results.append({})
            except LogError as exc:
                results.append({"ok": False, "error": exc.to_wire()})
        outcomes = await self.committer.submit_all([cmd for _, cmd in accepted])
        for (index, _), outcome in zip(accepted, outcomes, strict=True):
            results[index] = _item(outcome)
        return {"results": results}

    async def _trim(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        cmd = commands.trim_command(request, self._now_ms())
        if not principal.may_trim(cmd.bus):
            raise Forbidden(
                f"principal {principal.name!r} may not trim {cmd.bus!r}: "
                "needs an admin role whose buses include it"
            )
        return await self._commit(cmd)

    async def _claim(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        cmd = commands.claim_command(request, self._now_ms())
        if not principal.may_claim_on(cmd.name, cmd.bus):
            raise Forbidden(
                f"principal {principal.name!r} may not claim {cmd.name!r} on {cmd.bus!r}: "
                "needs a role with that name in 'claim' (or admin) whose buses include it"
            )
        return await self._commit(cmd)

    def require_read(self, principal: Principal, bus: str) -> None:
        if not principal.may_read(bus):
            raise Forbidden(f"principal {principal.name!r} may not read {bus!r}")

    async def _sync(self, request: dict[str, Any]) -> None:
        """Linearizable unless the caller explicitly asked for a possibly stale local read."""
        if not commands.field(request, "stale", bool, False) and not self.unsafe.stale_reads:
            await self.committer.barrier()

    async def _read(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        bus = commands.bus_id(request)
        start = commands.position(request, "start", 0)
        limit = commands.field(request, "limit", int, 100)
        if not 1 <= limit <= self.limits.max_read_limit:
            raise BadRequest(f"'limit' must be in [1, {self.limits.max_read_limit}]")
        types = commands.types_filter(request)
        self.require_read(principal, bus)
        await self._sync(request)
        with self.backend.lock:
            reply = self.backend.state.read(bus, start, limit, types, self.limits.max_read_bytes)
        result = _reply(reply)
        result["entries"] = [entry_to_wire(e) for e in result["entries"]]
        return result

    async def _tail(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        bus = commands.bus_id(request)
        self.require_read(principal, bus)
        await self._sync(request)
        with self.backend.lock:
            return _reply(self.backend.state.tail(bus))

    async def _buses(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        await self._sync(request)
        with self.backend.lock:
            buses = self.backend.state.list_buses()
        return {"buses": [b for b in buses if principal.may_read(b["bus"])]}

    async def _status(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        with self.backend.lock:
            summary = self.backend.state.summary()
        return {
            "node": self.backend.describe(),
            "log": summary,
            "durability": self.backend.durability,
            "group_commit": {
                "batches": self.committer.batches,
                "commands": self.committer.commands,
            },
            "counters": dict(self.counters),
        }

    async def _ping(self, principal: Principal, request: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    _handlers = {
        "append": _append,
        "multi": _multi,
        "read": _read,
        "tail": _tail,
        "trim": _trim,
        "claim": _claim,
        "buses": _buses,
        "status": _status,
        "ping": _ping,
    }

    # ---------------------------------------------------------------- subscriptions
    def validate_subscription(
        self, principal: Principal, request: dict[str, Any]
    ) -> tuple[str, int, frozenset[str] | None]:
        bus = commands.bus_id(request)
        start = commands.position(request, "from", 0)
        types = commands.types_filter(request)
        self.require_read(principal, bus)
        return bus, start, types

    async def subscribe(
        self, bus: str, start: int, types: frozenset[str] | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Chunks of committed entries from ``start`` on, as they are applied on this node.

        Never buffers beyond one chunk: the caller's (bounded) send path paces it. Raises
        Trimmed when the cursor falls below the trim point.
        """
        cursor = start
        self._subscriptions += 1
        try:
            while True:
                changed = self._changed
                with self.backend.lock:
                    state = self.backend.state
                    reply = (
                        state.read(
                            bus, cursor, self.limits.max_read_limit, types, SUBSCRIPTION_CHUNK_BYTES
                        )
                        if bus in state.buses
                        else None
                    )
                if reply is None:
                    await changed.wait()
                    continue
                result = _reply(reply)
                if result["entries"]:
                    yield [entry_to_wire(e) for e in result["entries"]]
                if result["next"] > cursor:
                    cursor = result["next"]
                    continue
                await changed.wait()
        finally:
            self._subscriptions -= 1
