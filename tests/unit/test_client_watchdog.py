"""A connection's coalesced appends wait without cancel scopes: its watchdog answers
``TIMED_OUT`` at each append's deadline, and a late or missing answer harms no other caller.

The node is the other end of an in-memory stream, driven by the test; trio's autojump clock
makes the deadlines pass without real waiting.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from logact.client.client import TIMED_OUT, WATCHDOG_PERIOD, Connection
from logact.protocol import codec
from logact.protocol.api import _append_request


def _request(n: int) -> dict[str, Any]:
    return _append_request("b", [("note", n)], ("client", n), None, None)


class _Node:
    """The node's end: reads the client's multi frames and answers the ones it is told to."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.decoder = codec.FrameDecoder()

    async def next_multi(self) -> dict[str, Any]:
        while True:
            for frame in self.decoder.frames():
                assert isinstance(frame, dict) and frame["op"] == "multi"
                return frame
            self.decoder.feed(await self.stream.receive_some(65536))

    async def answer(self, multi: dict[str, Any]) -> None:
        """Each append is answered with its key's sequence number as its position."""
        results = [
            {"ok": True, "result": {"first": op["key"][1], "last": op["key"][1]}}
            for op in multi["ops"]
        ]
        reply = {"id": multi["id"], "ok": True, "result": {"results": results}}
        await self.stream.send_all(codec.encode(reply))


async def _connection(nursery: trio.Nursery) -> tuple[Connection, _Node]:
    client_end, node_end = trio.testing.memory_stream_pair()
    conn = Connection(client_end, "memory")
    conn.hello = {"features": ["multi"]}
    nursery.start_soon(conn.reader)
    nursery.start_soon(conn.batcher)
    nursery.start_soon(conn.watchdog)
    return conn, _Node(node_end)


async def test_an_unanswered_append_times_out_and_the_next_is_answered(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        conn, node = await _connection(nursery)
        began = trio.current_time()
        replies: list[dict[str, Any]] = []

        async def unanswered() -> None:
            replies.append(await conn.append(_request(0), began + 3.0))

        nursery.start_soon(unanswered)
        await node.next_multi()  # it was sent, and the node stays silent
        with trio.fail_after(10):
            while not replies:
                await trio.sleep(WATCHDOG_PERIOD)
        assert replies == [TIMED_OUT]
        assert 3.0 <= trio.current_time() - began <= 3.0 + 2 * WATCHDOG_PERIOD

        async def answered() -> None:
            replies.append(await conn.append(_request(1), trio.current_time() + 3.0))

        nursery.start_soon(answered)
        await node.answer(await node.next_multi())
        with trio.fail_after(1):
            while len(replies) < 2:
                await trio.sleep(0)
        assert replies[1] == {"ok": True, "result": {"first": 1, "last": 1}}
        nursery.cancel_scope.cancel()


async def test_a_cancelled_caller_leaves_the_others_of_its_multi_answered(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        conn, node = await _connection(nursery)
        replies: dict[int, dict[str, Any]] = {}
        scopes = {n: trio.CancelScope() for n in range(3)}

        async def caller(n: int) -> None:
            with scopes[n]:
                replies[n] = await conn.append(_request(n), trio.current_time() + 3.0)

        for n in range(3):
            nursery.start_soon(caller, n)
        multi = await node.next_multi()
        assert len(multi["ops"]) == 3  # all three went out together
        scopes[1].cancel()
        await trio.sleep(0.01)
        await node.answer(multi)
        with trio.fail_after(1):
            while len(replies) < 2:
                await trio.sleep(0)
        assert sorted(replies) == [0, 2]
        assert replies[2] == {"ok": True, "result": {"first": 2, "last": 2}}
        assert not conn.waiting and conn.broken is None
        nursery.cancel_scope.cancel()
