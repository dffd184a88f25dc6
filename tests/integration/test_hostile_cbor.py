"""Small frames that decode into huge values (CBOR shared references), on a private cluster:
a node that is made busy by them would stall every other test on a shared cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cbor2
import pytest
import trio

from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import READER_TOKEN

from .support import STEP_TIMEOUT, RawConnection, error_code

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def private_cluster(cluster_factory: Callable[..., LocalCluster]) -> Iterator[LocalCluster]:
    yield cluster_factory()


def shared_dag(levels: int) -> bytes:
    """CBOR of ``levels`` nested pairs whose two halves are the same shared value.

    It is ~6 bytes per level on the wire but encodes (without value sharing) to 2**(levels+1)
    bytes: 30 levels = 180 bytes in, 2 GiB and many minutes of CPU to re-encode.
    """
    out = b"\xd8\x1c\x82\x00\x00"  # 28([0, 0]): the innermost shareable value
    for index in range(levels - 2, -1, -1):
        out = b"\xd8\x1c\x82" + out + cbor2.dumps(cbor2.CBORTag(29, index + 1))
    return out


def append_frame(bus: str, body: bytes) -> bytes:
    payload = b"".join(
        [
            b"\xa4",
            *(cbor2.dumps(x) for x in ("id", 1, "op", "append", "bus", bus, "entries")),
            b"\x81\xa2",
            *(cbor2.dumps(x) for x in ("type", "note", "body")),
            body,
        ]
    )
    return len(payload).to_bytes(4, "big") + payload


def test_shared_dag_shape() -> None:
    value = cbor2.loads(shared_dag(10))
    assert value[0] is value[1]
    assert len(cbor2.dumps(value)) == 2**11 - 1


async def test_tiny_frame_with_shared_references_cannot_stall_a_node(
    private_cluster: LocalCluster,
) -> None:
    address = private_cluster.addresses[0]
    hostile = await RawConnection.open(address)
    bystander = await RawConnection.open(address)
    try:
        await hostile.hello(READER_TOKEN)  # even a read-only principal
        await bystander.hello(READER_TOKEN)
        await hostile.send_bytes(append_frame("hostile/bus", shared_dag(30)))
        # A prompt typed refusal, and the node keeps serving other connections. (With the bug,
        # the reply takes tens of seconds of 100% CPU on the node's trio thread.)
        with trio.fail_after(STEP_TIMEOUT):
            reply = await hostile.receive()
            await bystander.assert_usable()
        assert error_code(reply) in ("too_large", "forbidden", "bad_request")
    finally:
        await hostile.aclose()
        await bystander.aclose()
