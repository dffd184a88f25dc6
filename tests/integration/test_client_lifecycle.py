"""The client's context manager under cancellation (found by the chaos workload)."""

from __future__ import annotations

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN

pytestmark = pytest.mark.cluster


async def test_leaving_a_cancelled_scope_closes_the_client_cleanly(
    cluster: LocalCluster, bus: str
) -> None:
    """Exiting ``async with Client`` inside a cancelled scope used to skip closing the client's
    background nursery, corrupting trio's nursery stack ("Nursery stack corrupted")."""
    with trio.CancelScope() as scope:
        async with Client(cluster.addresses, ADMIN_TOKEN) as client:
            await client.append(bus, "note", {"n": 1})
            scope.cancel()
    assert scope.cancelled_caught
    async with Client(cluster.addresses, ADMIN_TOKEN) as client:  # trio is still healthy
        assert (await client.check_tail(bus)).tail == 1
