"""Coalesced appends (``multi``) against a real 3-node cluster, through the client library."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.errors import ConditionFailed

pytestmark = pytest.mark.cluster


async def _multi_counters(client: Client) -> tuple[int, int]:
    """(multi requests, appends in them) served by the node the client talks to."""
    counters: dict[str, Any] = (await client.status())["counters"]
    return counters.get("multi_requests", 0), counters.get("multi_appends", 0)


async def test_concurrent_appends_on_one_client_share_requests(
    cluster: LocalCluster, bus: str
) -> None:
    with trio.fail_after(60):
        async with Client(cluster.addresses, ADMIN_TOKEN) as client:
            await client.append(bus, "note", -1)  # connected to the leader before the burst
            requests_before, appends_before = await _multi_counters(client)
            positions: dict[int, int] = {}

            async def one(n: int) -> None:
                positions[n] = await client.append(bus, "note", n)

            async with trio.open_nursery() as nursery:
                for n in range(64):
                    nursery.start_soon(one, n)
            requests_after, appends_after = await _multi_counters(client)
            entries = await client.read_all(bus)
    assert sorted(positions.values()) == list(range(1, 65))
    assert {e.pos: e.body for e in entries[1:]} == {pos: n for n, pos in positions.items()}
    assert appends_after - appends_before == 64  # every append went through a multi...
    assert requests_after - requests_before < 64  # ...and they shared requests


async def test_a_refused_append_does_not_fail_its_neighbours(
    cluster: LocalCluster, bus: str
) -> None:
    """Appends coalesced with one that fails its condition are appended; it changes nothing."""
    outcomes: dict[int, int | str] = {}
    with trio.fail_after(60):
        async with Client(cluster.addresses, ADMIN_TOKEN) as client:
            await client.append(bus, "note", -1)

            async def one(n: int) -> None:
                try:
                    outcomes[n] = await client.append(
                        bus, "note", n, expect_tail=10**6 if n % 4 == 0 else None
                    )
                except ConditionFailed:
                    outcomes[n] = "condition_failed"

            async with trio.open_nursery() as nursery:
                for n in range(32):
                    nursery.start_soon(one, n)
            entries = await client.read_all(bus)
    refused = {n for n, outcome in outcomes.items() if outcome == "condition_failed"}
    assert refused == {n for n in range(32) if n % 4 == 0}
    assert sorted(e.body for e in entries[1:]) == sorted(set(range(32)) - refused)
