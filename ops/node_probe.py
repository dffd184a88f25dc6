"""Is a node healthy? One connection, one ``status`` request, and a verdict per node: ``ok``,
``unreachable`` or ``unauthorized`` (a wrong token is not a node down), as
``etcdctl endpoint health`` gives one per endpoint."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import trio

from logact.client.client import CONNECTION_ERRORS, Connection
from logact.protocol.errors import LogError, Unauthorized, error_from_wire


class NodeState(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True, slots=True)
class Probe:
    """What asking one node for its status gave: the reply when ``ok``, else why not."""

    address: str
    state: NodeState
    status: dict[str, Any] | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "error": self.error, "status": self.status}


def has_quorum(probes: Sequence[Probe], size: int) -> bool:
    """A majority of the ``size`` nodes answered (a cluster without one cannot commit)."""
    return sum(p.state is NodeState.OK for p in probes) * 2 > size


async def probe(
    address: str, token: str, *, tls: ssl.SSLContext | None = None, timeout: float = 5.0
) -> Probe:
    """Ask the node at ``address`` (and only it) for its status, within ``timeout`` seconds."""
    try:
        with trio.fail_after(timeout):
            conn = await Connection.open(address, token, timeout, tls)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(conn.reader)
                    reply = await conn.request({"op": "status"})
                    nursery.cancel_scope.cancel()
            finally:
                await conn.close()
    except Unauthorized as exc:
        return Probe(address, NodeState.UNAUTHORIZED, error=exc.message)
    except trio.TooSlowError:
        return Probe(address, NodeState.UNREACHABLE, error=f"no answer within {timeout:g}s")
    except (*CONNECTION_ERRORS, LogError, ExceptionGroup) as exc:
        return Probe(address, NodeState.UNREACHABLE, error=_reason(exc))
    if not reply.get("ok"):
        error = error_from_wire(reply.get("error"))
        return Probe(address, NodeState.UNREACHABLE, error=f"{error.code.value}: {error.message}")
    return Probe(address, NodeState.OK, status=reply["result"])


async def probe_all(
    addresses: Sequence[str],
    token: str,
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float = 5.0,
) -> list[Probe]:
    """:func:`probe` of every address at once, in the order given."""
    found: dict[str, Probe] = {}

    async def one(address: str) -> None:
        found[address] = await probe(address, token, tls=tls, timeout=timeout)

    async with trio.open_nursery() as nursery:
        for address in addresses:
            nursery.start_soon(one, address)
    return [found[address] for address in addresses]


def _reason(exc: BaseException) -> str:
    """The failure a nursery wrapped, said in a few words."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__
