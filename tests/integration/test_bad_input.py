"""Malformed and hostile input over raw sockets against real nodes (shared cluster).

After every case: the server answered with a typed error (or closed a stream it cannot
resynchronise), the same connection is still usable where the protocol says so, other clients
are still served, and nothing was appended.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol import codec
from logact.protocol.errors import TooLarge

from .support import STEP_TIMEOUT, RawConnection, error_code

pytestmark = pytest.mark.cluster

DEADLINE = 60.0
MAX_ENTRY_BYTES = 1024 * 1024
#: The server's frame limit: 2 * max_batch_bytes + 64 KiB (server/net.py).
SERVER_MAX_FRAME = 2 * 4 * 1024 * 1024 + 65536


@pytest.fixture
async def canary(cluster: LocalCluster, bus: str) -> AsyncIterator[str]:
    """A bus with 3 entries; after the test it must still hold exactly those 3 entries and
    every node must still serve a fresh client (read and append)."""
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log:
            await log.append_batch(bus, [("note", i) for i in range(3)])
    yield bus
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log:
            tail = await log.check_tail(bus)
            assert (tail.tail, tail.trim) == (3, 0), "bad input must append or trim nothing"
            assert [e.body for e in await log.read_all(bus)] == [0, 1, 2]
            epoch = await log.claim(bus, "canary")
            assert epoch == 1, "bad input must not have claimed an epoch"
        for address in cluster.addresses:
            async with Client([address], ADMIN_TOKEN, prefer_leader=False) as node:
                assert (await node.check_tail(bus)).tail == 3
                other = f"{bus}-after"
                await node.append(other, "note", address)


async def open_authenticated(cluster: LocalCluster, index: int = 0) -> RawConnection:
    conn = await RawConnection.open(cluster.addresses[index])
    await conn.hello(ADMIN_TOKEN)
    return conn


# --------------------------------------------------------------------- broken streams


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff\xff\xff",
        struct.pack(">I", SERVER_MAX_FRAME + 1),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x80\x00\x00\x00" + b"\x00" * 60,
    ],
    ids=["max-prefix", "limit-plus-one", "http", "2GiB-prefix"],
)
@pytest.mark.parametrize("authenticated", [False, True], ids=["before-hello", "after-hello"])
async def test_oversized_length_prefix_gets_too_large_then_close(
    cluster: LocalCluster, canary: str, garbage: bytes, authenticated: bool
) -> None:
    with trio.fail_after(DEADLINE):
        conn = await RawConnection.open(cluster.addresses[0])
        try:
            if authenticated:
                await conn.hello()
            await conn.send_bytes(garbage)
            frames = await conn.assert_closed()
        finally:
            await conn.aclose()
    assert len(frames) == 1, frames
    assert frames[0]["id"] is None
    assert error_code(frames[0]) == "too_large"


async def test_truncated_frame_then_disconnect(cluster: LocalCluster, canary: str) -> None:
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        frame = codec.encode(
            {"id": 1, "op": "append", "bus": canary, "entries": [{"type": "note", "body": b"\x09"}]}
        )
        await conn.send_bytes(frame[:-3])
        await conn.aclose()


async def test_half_frame_then_rest_is_processed(cluster: LocalCluster, canary: str) -> None:
    """A frame split across writes is reassembled (not treated as garbage)."""
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        try:
            frame = codec.encode({"id": 3, "op": "tail", "bus": canary})
            for i in range(len(frame)):
                await conn.send_bytes(frame[i : i + 1])
            reply = await conn.receive()
        finally:
            await conn.aclose()
    assert reply == {"id": 3, "ok": True, "result": {"tail": 3, "trim": 0, "exists": True}}


# --------------------------------------------------------------------- bad frames, same stream


def raw_frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


BAD_PAYLOADS: dict[str, bytes] = {
    "not-cbor": b"\xff\xfe\xfd\xfc\xfb",
    "truncated-cbor": cbor2.dumps({"id": 1, "op": "ping"})[:-2],
    "empty": b"",
    "list": cbor2.dumps([1, "op", "ping"]),
    "int": cbor2.dumps(5),
    "string": cbor2.dumps("ping"),
    "null": cbor2.dumps(None),
    "deep-nesting": b"\x81" * 50_000 + b"\x00",
    "huge-declared-array": b"\x9b" + (2**60).to_bytes(8, "big"),
    "huge-declared-bytes": b"\x5b" + (2**60).to_bytes(8, "big"),
    "huge-declared-map": b"\xbb" + (2**60).to_bytes(8, "big"),
    "dangling-shared-ref": cbor2.dumps(cbor2.CBORTag(29, 5)),
}


@pytest.mark.parametrize("payload", list(BAD_PAYLOADS.values()), ids=list(BAD_PAYLOADS))
@pytest.mark.parametrize("authenticated", [False, True], ids=["before-hello", "after-hello"])
async def test_frame_that_is_not_a_cbor_map(
    cluster: LocalCluster, canary: str, payload: bytes, authenticated: bool
) -> None:
    with trio.fail_after(DEADLINE):
        conn = await RawConnection.open(cluster.addresses[0])
        try:
            if authenticated:
                await conn.hello()
            await conn.send_bytes(raw_frame(payload))
            reply = await conn.receive()
            assert reply["id"] is None
            assert error_code(reply) == "bad_request"
            if authenticated:
                await conn.assert_usable()
            else:  # an unauthenticated stream of garbage is answered, then closed
                await conn.assert_closed()
        finally:
            await conn.aclose()


async def test_frame_with_trailing_bytes_is_rejected(cluster: LocalCluster, canary: str) -> None:
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        try:
            payload = cbor2.dumps({"id": 1, "op": "tail", "bus": canary}) + b"\xff\x00"
            await conn.send_bytes(raw_frame(payload))
            reply = await conn.receive()
            await conn.assert_usable()
        finally:
            await conn.aclose()
    assert error_code(reply) == "bad_request", reply


BAD_IDS: dict[str, dict[str, Any]] = {
    "missing": {"op": "ping"},
    "null": {"id": None, "op": "ping"},
    "string": {"id": "1", "op": "ping"},
    "float": {"id": 1.0, "op": "ping"},
    "bool": {"id": True, "op": "ping"},
    "list": {"id": [1], "op": "ping"},
}


@pytest.mark.parametrize("message", list(BAD_IDS.values()), ids=list(BAD_IDS))
@pytest.mark.parametrize("authenticated", [False, True], ids=["before-hello", "after-hello"])
async def test_missing_or_non_integer_id(
    cluster: LocalCluster, canary: str, message: dict[str, Any], authenticated: bool
) -> None:
    with trio.fail_after(DEADLINE):
        conn = await RawConnection.open(cluster.addresses[0])
        try:
            if authenticated:
                await conn.hello()
            reply = await conn.request(message)
            assert reply["id"] is None
            assert error_code(reply) == "bad_request"
            if not authenticated:
                await conn.assert_closed()
                return
            # An append without an integer id is not executed either.
            reply = await conn.request(
                {
                    **{k: v for k, v in message.items() if k != "op"},
                    "op": "append",
                    "bus": canary,
                    "entries": [{"type": "note", "body": b"\xf6"}],
                }
            )
            assert error_code(reply) == "bad_request"
            await conn.assert_usable()
        finally:
            await conn.aclose()


def append(bus_value: Any, **fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "op": "append",
        "bus": bus_value,
        "entries": [{"type": "note", "body": b"\x01"}],
    }
    request.update(fields)
    return {k: v for k, v in request.items() if v is not MISSING}


MISSING: Any = object()

#: (name, request builder taking the canary bus) -> every one must be a bad_request.
BAD_REQUESTS: dict[str, Any] = {
    "unknown-op": lambda b: {"op": "frobnicate", "bus": b},
    "op-int": lambda b: {"op": 5, "bus": b},
    "op-null": lambda b: {"op": None, "bus": b},
    "op-missing": lambda b: {"bus": b},
    "op-list": lambda b: {"op": ["append"], "bus": b},
    "append-bus-int": lambda b: append(123),
    "append-bus-missing": lambda b: append(b, bus=MISSING),
    "append-bus-empty": lambda b: append(""),
    "append-bus-chars": lambda b: append("bad bus!"),
    "append-bus-long": lambda b: append("x" * 257),
    "append-entries-missing": lambda b: append(b, entries=MISSING),
    "append-entries-string": lambda b: append(b, entries="note"),
    "append-entries-map": lambda b: append(b, entries={"type": "note", "body": b"\x01"}),
    "append-entries-empty": lambda b: append(b, entries=[]),
    "append-entry-int": lambda b: append(b, entries=[1]),
    "append-entry-type-int": lambda b: append(b, entries=[{"type": 1, "body": b"\x01"}]),
    "append-entry-type-missing": lambda b: append(b, entries=[{"body": b"\x01"}]),
    "append-entry-type-empty": lambda b: append(b, entries=[{"type": "", "body": b"\x01"}]),
    "append-entry-type-chars": lambda b: append(b, entries=[{"type": "a b", "body": b"\x01"}]),
    "append-entry-body-missing": lambda b: append(b, entries=[{"type": "note"}]),
    "append-entry-body-not-bytes": lambda b: append(b, entries=[{"type": "note", "body": 1}]),
    "append-second-entry-bad": lambda b: append(
        b, entries=[{"type": "note", "body": b"\x01"}, {"type": "note"}]
    ),
    "append-key-string": lambda b: append(b, key="k"),
    "append-key-short": lambda b: append(b, key=["client"]),
    "append-key-seq-string": lambda b: append(b, key=["client", "1"]),
    "append-key-seq-bool": lambda b: append(b, key=["client", True]),
    "append-key-seq-negative": lambda b: append(b, key=["client", -1]),
    "append-key-client-int": lambda b: append(b, key=[1, 2]),
    "append-key-client-empty": lambda b: append(b, key=["", 2]),
    "append-expect-string": lambda b: append(b, expect_tail="3"),
    "append-expect-negative": lambda b: append(b, expect_tail=-1),
    "append-expect-bool": lambda b: append(b, expect_tail=True),
    "append-expect-float": lambda b: append(b, expect_tail=3.0),
    "append-expect-huge": lambda b: append(b, expect_tail=2**63),
    "append-fence-string": lambda b: append(b, fence="driver"),
    "append-fence-short": lambda b: append(b, fence=["driver"]),
    "append-fence-epoch-string": lambda b: append(b, fence=["driver", "1"]),
    "append-fence-epoch-negative": lambda b: append(b, fence=["driver", -1]),
    "append-fence-epoch-bool": lambda b: append(b, fence=["driver", True]),
    "append-fence-name-chars": lambda b: append(b, fence=["bad name!", 1]),
    "read-bus-int": lambda b: {"op": "read", "bus": 5},
    "read-start-string": lambda b: {"op": "read", "bus": b, "start": "0"},
    "read-start-negative": lambda b: {"op": "read", "bus": b, "start": -1},
    "read-start-bool": lambda b: {"op": "read", "bus": b, "start": False},
    "read-start-huge": lambda b: {"op": "read", "bus": b, "start": 2**63},
    "read-limit-zero": lambda b: {"op": "read", "bus": b, "limit": 0},
    "read-limit-string": lambda b: {"op": "read", "bus": b, "limit": "10"},
    "read-limit-huge": lambda b: {"op": "read", "bus": b, "limit": 10**6},
    "read-types-string": lambda b: {"op": "read", "bus": b, "types": "note"},
    "read-types-empty": lambda b: {"op": "read", "bus": b, "types": []},
    "read-types-int": lambda b: {"op": "read", "bus": b, "types": [1]},
    "read-stale-string": lambda b: {"op": "read", "bus": b, "stale": "yes"},
    "tail-bus-missing": lambda b: {"op": "tail"},
    "tail-bus-list": lambda b: {"op": "tail", "bus": [b]},
    "trim-before-missing": lambda b: {"op": "trim", "bus": b},
    "trim-before-string": lambda b: {"op": "trim", "bus": b, "before": "2"},
    "trim-before-negative": lambda b: {"op": "trim", "bus": b, "before": -1},
    "trim-beyond-tail": lambda b: {"op": "trim", "bus": b, "before": 4},
    "claim-name-missing": lambda b: {"op": "claim", "bus": b},
    "claim-name-int": lambda b: {"op": "claim", "bus": b, "name": 5},
    "claim-name-chars": lambda b: {"op": "claim", "bus": b, "name": "bad name!"},
    "claim-bus-missing": lambda b: {"op": "claim", "name": "canary"},
    "buses-stale-int": lambda b: {"op": "buses", "stale": 1},
    "subscribe-from-string": lambda b: {"op": "subscribe", "bus": b, "from": "0"},
    "subscribe-from-negative": lambda b: {"op": "subscribe", "bus": b, "from": -1},
    "subscribe-types-empty": lambda b: {"op": "subscribe", "bus": b, "types": []},
    "subscribe-bus-missing": lambda b: {"op": "subscribe"},
}


@pytest.mark.parametrize("build", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
async def test_bad_request_fields(cluster: LocalCluster, canary: str, build: Any) -> None:
    message = build(canary)
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster, 1)
        try:
            reply = await conn.request({**message, "id": 11})
            assert reply["id"] == 11
            assert error_code(reply) == "bad_request", reply
            await conn.assert_usable()
        finally:
            await conn.aclose()


@pytest.mark.parametrize(
    "body",
    [cbor2.undefined, cbor2.CBORSimpleValue(99), float("nan"), float("inf"), {"k": {b"x": 1}}],
    ids=["undefined", "simple-value", "nan", "infinity", "bytes-key"],
)
async def test_bodies_outside_the_data_model_are_refused_before_the_pipeline(
    cluster: LocalCluster, canary: str, body: Any
) -> None:
    """Values that could not be pickled or compared alike on every node; another client's
    reads, pipelined meanwhile, are all served."""
    entries = [{"type": "note", "body": cbor2.dumps(body)}]
    message = {"id": 13, "op": "append", "bus": canary, "entries": entries}
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        try:
            reads: list[int] = []
            async with (
                Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log,
                trio.open_nursery() as nursery,
            ):

                async def read() -> None:
                    reads.append((await log.check_tail(canary)).tail)

                for _ in range(50):
                    nursery.start_soon(read)
                reply = await conn.request(message)
            assert reply["id"] == 13 and error_code(reply) == "bad_request", reply
            assert reads == [3] * 50
            await conn.assert_usable()
        finally:
            await conn.aclose()


async def test_shared_references_are_refused_as_a_bad_frame(
    cluster: LocalCluster, canary: str
) -> None:
    """CBOR tags (here a cyclic value via shared references) never reach validation."""
    cyclic = bytes([0xD8, 0x1C, 0x81, 0xD8, 0x1D, 0x00])  # 28([29(0)]): a list containing itself
    payload = b"".join(
        [
            b"\xa4",
            *(cbor2.dumps(x) for x in ("id", 12, "op", "append", "bus", canary, "entries")),
            b"\x81\xa2",
            *(cbor2.dumps(x) for x in ("type", "note", "body")),
            cyclic,
        ]
    )
    decoded = cbor2.loads(payload)
    assert decoded["entries"][0]["body"][0] is decoded["entries"][0]["body"]
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        try:
            await conn.send_bytes(raw_frame(payload))
            reply = await conn.receive()
            assert reply["id"] is None
            assert error_code(reply) == "bad_request", reply
            await conn.assert_usable()
        finally:
            await conn.aclose()


# --------------------------------------------------------------------- size limits


async def test_oversized_entry_is_too_large(cluster: LocalCluster, canary: str) -> None:
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        try:
            body = cbor2.dumps(b"x" * MAX_ENTRY_BYTES)  # MAX_ENTRY_BYTES + 5 bytes
            reply = await conn.request(
                {
                    "id": 21,
                    "op": "append",
                    "bus": canary,
                    "entries": [{"type": "note", "body": body}],
                }
            )
            assert reply["id"] == 21 and error_code(reply) == "too_large", reply
            # Over max_batch_bytes, within the frame limit.
            big = [{"type": "note", "body": cbor2.dumps(b"y" * (850 * 1024))} for _ in range(5)]
            reply = await conn.request({"id": 22, "op": "append", "bus": canary, "entries": big})
            assert reply["id"] == 22 and error_code(reply) == "too_large", reply
            many = [{"type": "note", "body": cbor2.dumps(i)} for i in range(1001)]
            reply = await conn.request({"id": 23, "op": "append", "bus": canary, "entries": many})
            assert reply["id"] == 23 and error_code(reply) == "too_large", reply
            await conn.assert_usable()
        finally:
            await conn.aclose()


async def test_client_reports_oversized_entry_as_too_large(
    cluster: LocalCluster, canary: str
) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log:
            with pytest.raises(TooLarge):
                await log.append(canary, "note", b"x" * MAX_ENTRY_BYTES)


async def test_client_reports_oversized_frame_as_too_large(
    cluster: LocalCluster, canary: str
) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=3.0) as log:
            with pytest.raises(TooLarge):
                await log.append_batch(canary, [("note", b"z" * (1000 * 1024))] * 9)


# --------------------------------------------------------------------- isolation


async def test_pipelined_good_and_bad_requests(cluster: LocalCluster, canary: str) -> None:
    """Bad frames interleaved with good ones: each gets its own answer, in one stream."""
    with trio.fail_after(DEADLINE):
        conn = await open_authenticated(cluster)
        try:
            stream = b"".join(
                [
                    codec.encode({"id": 31, "op": "tail", "bus": canary}),
                    raw_frame(b"\xff"),
                    codec.encode({"id": 32, "op": "nope"}),
                    codec.encode({"op": "ping"}),
                    codec.encode({"id": 33, "op": "read", "bus": canary, "limit": 2}),
                ]
            )
            await conn.send_bytes(stream)
            replies = [await conn.receive() for _ in range(5)]
        finally:
            await conn.aclose()
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for reply in replies:
        by_id.setdefault(reply["id"], []).append(reply)
    assert by_id[31][0]["result"]["tail"] == 3
    assert error_code(by_id[32][0]) == "bad_request"
    assert [error_code(r) for r in by_id[None]] == ["bad_request", "bad_request"]
    assert [cbor2.loads(e["body"]) for e in by_id[33][0]["result"]["entries"]] == [0, 1]


async def test_hostile_connections_do_not_disturb_other_clients(
    cluster: LocalCluster, canary: str
) -> None:
    """Many broken connections at once, while a well-behaved client keeps working."""
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT) as log:
            other = f"{canary}-good"

            async def hostile(i: int) -> None:
                conn = await RawConnection.open(cluster.addresses[i % 3])
                try:
                    await conn.send_bytes(raw_frame(b"\xff" * 7) + b"\xff\xff\xff\xff")
                    await conn.assert_closed()
                finally:
                    await conn.aclose()

            async with trio.open_nursery() as nursery:
                for i in range(30):
                    nursery.start_soon(hostile, i)
                for i in range(20):
                    assert await log.append(other, "note", i) == i
