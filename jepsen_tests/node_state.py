"""What every node holds once a chaos run is over, next to the final linearizable log.

Recorded after the run has healed, for the ``node_state`` checker: a linearizable read of every
bus (``final_state``), then each node's own copy of every bus read with stale reads
(``node_state``, once the node has caught up with the first read, or after ``CATCH_UP_S``),
then a second linearizable read. Committed logs only grow, so each node's copy must lie between
the two: it holds everything the first read held, and nothing the second read does not hold at
the same position. Entries are recorded as ``[pos, digest]``: the digest covers everything a
reader sees of an entry but its position. A node's record also keeps a few Raft facts from its
status (term, commit index, snapshots written and installed) for the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import cbor2
import trio

from logact.client.client import Client
from logact.jepsen_tests.log_workload import timed
from logact.protocol.api import LogAPI
from logact.protocol.codec import Entry
from logact.protocol.errors import LogError

Record = Callable[[dict[str, Any]], None]
#: How long a node may take to catch up with the first final read before it is read anyway.
CATCH_UP_S = 30.0
OP_TIMEOUT = 30.0


def entry_digest(entry: Entry) -> str:
    data = cbor2.dumps([entry.ts, entry.type, entry.author, entry.body], canonical=True)
    return hashlib.blake2b(data, digest_size=8).hexdigest()


async def read_state(log: LogAPI, *, stale: bool) -> dict[str, dict[str, Any]]:
    """Every bus as ``{"trim": t, "tail": end of what was read, "entries": [[pos, digest]]}``."""
    state: dict[str, dict[str, Any]] = {}
    for info in await log.list_buses(stale=stale):
        entries = await log.read_all(info.bus, info.trim, stale=stale)
        state[info.bus] = {
            "trim": info.trim,
            "tail": entries[-1].pos + 1 if entries else info.trim,
            "entries": [[entry.pos, entry_digest(entry)] for entry in entries],
        }
    return state


#: What a node_state record keeps of the node's status (Raft facts for the report).
RAFT_FACTS = ("role", "term", "commit_index", "last_applied", "journal", "snapshots")


async def _own_copy(log: LogAPI) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    state = await read_state(log, stale=True)
    node = (await log.status())["node"]
    return state, {key: node.get(key) for key in RAFT_FACTS}


async def _caught_up(log: LogAPI, final: dict[str, dict[str, Any]]) -> bool:
    tails = {info.bus: info.tail for info in await log.list_buses(stale=True)}
    return all(tails.get(bus, 0) >= bus_state["tail"] for bus, bus_state in final.items())


async def _wait_caught_up(log: LogAPI, final: dict[str, dict[str, Any]]) -> None:
    with trio.move_on_after(CATCH_UP_S):
        while True:
            try:
                if await _caught_up(log, final):
                    return
            except LogError:
                pass
            await trio.sleep(0.1)


async def record_node_states(nodes: dict[str, str], token: str, record: Record) -> None:
    """``final_state``, one ``node_state`` per node (id -> client address), ``final_state``."""
    addresses = list(nodes.values())
    ids = iter(range(2 + len(nodes)))

    async def final() -> dict[str, dict[str, Any]] | None:
        async with Client(addresses, token, timeout=OP_TIMEOUT) as log:
            result: dict[str, dict[str, Any]] | None = await timed(
                record,
                {"process": "final", "op": "final_state", "id": next(ids), "nodes": list(nodes)},
                lambda: read_state(log, stale=False),
                lambda state: {"buses": state},
            )
            return result

    first = await final()
    for node, address in nodes.items():
        async with Client([address], token, timeout=OP_TIMEOUT, prefer_leader=False) as log:
            if first is not None:
                await _wait_caught_up(log, first)
            await timed(
                record,
                {"process": f"state-{node}", "op": "node_state", "id": next(ids), "node": node},
                lambda log=log: _own_copy(log),
                lambda copy: {"buses": copy[0], "raft": copy[1]},
            )
    await final()
