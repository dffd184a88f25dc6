"""Authentication and roles, enforced by real nodes (shared cluster, non-destructive)."""

from __future__ import annotations

import uuid
from contextlib import aclosing

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN, READER_TOKEN, WRITER_TOKEN, agent_token
from logact.protocol.errors import BadRequest, Forbidden, Unauthorized

from .support import STEP_TIMEOUT, RawConnection, error_code

pytestmark = pytest.mark.cluster

DEADLINE = 60.0


async def test_bad_token_is_unauthorized(cluster: LocalCluster, bus: str) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, "not-a-real-token", timeout=STEP_TIMEOUT) as log:
            with pytest.raises(Unauthorized):
                await log.append(bus, "note", "x")
            with pytest.raises(Unauthorized):
                await log.read(bus)
        async with Client(cluster.addresses, ADMIN_TOKEN) as admin:
            assert (await admin.check_tail(bus)).tail == 0


@pytest.mark.parametrize(
    "hello",
    [
        {"id": 1, "op": "hello", "token": "wrong-token-0000"},
        {"id": 1, "op": "hello", "token": ""},
        {"id": 1, "op": "hello", "token": 12345678},
        {"id": 1, "op": "hello"},
        {"id": 1, "op": "append", "bus": "x", "entries": [{"type": "note", "body": b"\x01"}]},
        {"id": 1, "op": "read", "bus": "x", "token": ADMIN_TOKEN},
    ],
    ids=["wrong", "empty", "not-a-string", "missing", "append-first", "read-first"],
)
async def test_unauthenticated_connection_is_closed(
    cluster: LocalCluster, hello: dict[str, object]
) -> None:
    with trio.fail_after(DEADLINE):
        for address in cluster.addresses:
            conn = await RawConnection.open(address)
            try:
                await conn.send(hello)
                frames = await conn.assert_closed()
            finally:
                await conn.aclose()
            assert len(frames) == 1, frames
            assert frames[0]["id"] == 1
            assert error_code(frames[0]) == "unauthorized"


async def test_hello_reports_the_principal(cluster: LocalCluster) -> None:
    with trio.fail_after(DEADLINE):
        for token, name in [(ADMIN_TOKEN, "admin"), (WRITER_TOKEN, "writer")]:
            conn = await RawConnection.open(cluster.addresses[0])
            try:
                result = await conn.hello(token)
                assert result["principal"] == name
                second = await conn.request({"id": 5, "op": "hello", "token": token})
                assert error_code(second) == "bad_request" and second["id"] == 5
                await conn.assert_usable()
            finally:
                await conn.aclose()


async def test_a_client_of_another_protocol_version_is_told_and_closed(
    cluster: LocalCluster,
) -> None:
    with trio.fail_after(DEADLINE):
        conn = await RawConnection.open(cluster.addresses[0])
        try:
            await conn.send({"id": 1, "op": "hello", "token": ADMIN_TOKEN, "version": 1})
            frames = await conn.assert_closed()
        finally:
            await conn.aclose()
    assert [error_code(frame) for frame in frames] == ["bad_request"]
    assert "speaks protocol 2, not 1" in frames[0]["error"]["message"]


async def test_reader_may_read_but_not_append(cluster: LocalCluster, bus: str) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, ADMIN_TOKEN) as admin:
            await admin.append(bus, "note", "seed")
        async with Client(cluster.addresses, READER_TOKEN) as reader:
            for etype in ("note", "data", "commit"):
                with pytest.raises(Forbidden):
                    await reader.append(bus, etype, "nope")
            with pytest.raises(Forbidden):
                await reader.append_batch(bus, [("note", 1), ("note", 2)])
            with pytest.raises(Forbidden):
                await reader.trim(bus, 1)
            with pytest.raises(Forbidden):
                await reader.claim(bus, "driver")
            entries = await reader.read_all(bus)
            assert (await reader.check_tail(bus)).tail == 1
            async with aclosing(reader.subscribe(bus, 0)) as sub:
                first = await sub.__anext__()
    assert [e.body for e in entries] == ["seed"]
    assert first.body == "seed"


async def test_writer_role_limits_entry_types(cluster: LocalCluster, bus: str) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, WRITER_TOKEN) as writer:
            assert await writer.append(bus, "note", "ok") == 0
            assert await writer.append(bus, "data", "ok") == 1
            for etype in ("commit", "vote", "intent"):
                with pytest.raises(Forbidden):
                    await writer.append(bus, etype, "forged")
            with pytest.raises(Forbidden):  # one forbidden entry rejects the whole batch
                await writer.append_batch(bus, [("note", "a"), ("commit", "forged"), ("data", 1)])
            with pytest.raises(Forbidden):
                await writer.trim(bus, 1)
            with pytest.raises(Forbidden):
                await writer.claim(bus, "driver")
            entries = await writer.read_all(bus)
            tail = await writer.check_tail(bus)
    assert [(e.type, e.body) for e in entries] == [("note", "ok"), ("data", "ok")]
    assert (tail.tail, tail.trim) == (2, 0), "nothing trimmed, nothing appended"


async def test_author_is_the_authenticated_principal(cluster: LocalCluster, bus: str) -> None:
    """Whatever the client claims, the author is the principal of the connection."""
    with trio.fail_after(DEADLINE):
        conn = await RawConnection.open(cluster.addresses[1])
        try:
            await conn.hello(WRITER_TOKEN)
            reply = await conn.request(
                {
                    "id": 7,
                    "op": "append",
                    "bus": bus,
                    "author": "admin",
                    "principal": "admin",
                    "entries": [
                        {"type": "note", "body": b"\x01", "author": "admin"},
                        {"type": "data", "body": b"\x02", "author": "decider", "ts": 1},
                    ],
                }
            )
            assert reply["ok"] is True, reply
        finally:
            await conn.aclose()
        async with Client(cluster.addresses, READER_TOKEN) as reader:
            entries = await reader.read_all(bus)
    assert [(e.author, e.body) for e in entries] == [("writer", 1), ("writer", 2)]
    assert entries[1].ts > 1


async def test_a_malformed_agent_entry_is_refused_by_the_cluster(cluster: LocalCluster) -> None:
    """[auth] validator: a result with a huge negative intent id (it once crashed every
    executor of the bus, on every restart) never reaches the log."""
    bus = f"claude_code.tester.{uuid.uuid4()}"
    with trio.fail_after(DEADLINE):
        async with Client(cluster.addresses, agent_token("hook")) as hook:
            with pytest.raises(BadRequest, match="invalid result entry"):
                await hook.append(bus, "result", {"intent_id": -(2**63), "ok": True})
            assert await hook.append(bus, "result", {"intent_id": 0, "ok": True}) == 0
