"""A subscriber that stops reading is cut off with `overloaded`; the node keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from tests.conftest import ClusterFactory, unique_bus
from tests.integration.support import ADMIN_TOKEN, RawConnection, error_code, wait_until

pytestmark = pytest.mark.cluster

ENTRY = "x" * 400_000
ENTRIES = 40  # ~16 MB: far more than the socket buffers plus a 2-frame send queue


SLOW_CONSUMER_SETTINGS = "[server]\nslow_consumer_timeout = 0.5\nsend_queue_frames = 2\n"


@pytest.fixture(scope="module")
def impatient_cluster(cluster_factory: ClusterFactory) -> Iterator[LocalCluster]:
    yield cluster_factory(extra=SLOW_CONSUMER_SETTINGS)


async def test_slow_subscriber_is_cut_off_and_others_are_served(
    impatient_cluster: LocalCluster,
) -> None:
    cluster = impatient_cluster
    leader = await cluster.wait_for_leader(30)
    address = cluster.config.node(leader).client_address
    bus = unique_bus("slow")
    with trio.fail_after(120):
        raw = await RawConnection.open(address)
        await raw.hello()
        ack = await raw.request({"id": 7, "op": "subscribe", "bus": bus, "from": 0})
        assert ack == {"id": 7, "ok": True, "result": {"sub": 7}}
        async with Client([address], ADMIN_TOKEN, prefer_leader=False) as log:
            for index in range(ENTRIES):
                await log.append(bus, "blob", {"i": index, "data": ENTRY})

            async def cut_off() -> bool:
                status = await log.status()
                return status["counters"].get("subscribers_cut_off", 0) >= 1

            await wait_until(cut_off, timeout=60)
            # Another client is served normally while the slow one is stuck.
            assert await log.append(bus, "blob", {"i": ENTRIES}) == ENTRIES

        pushed = 0
        while True:
            frame = await raw.receive()
            if frame.get("event") == "entries":
                pushed += len(frame["entries"])
                continue
            assert frame["id"] == 7 and frame["event"] == "error", frame
            assert error_code(frame | {"ok": False}) == "overloaded"
            break
        assert pushed < ENTRIES + 1  # cut off before everything was delivered
        await raw.assert_usable()  # the connection itself survives; only the stream ended
        await raw.aclose()
