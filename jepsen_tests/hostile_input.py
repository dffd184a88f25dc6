"""Hostile input for a running cluster: fuzzed frames, decoding bombs, idle connections and
junk on the Raft port (issue 13). Shared by the ``hostile`` nemesis and tests/integration.

Everything is generated from a ``random.Random``, so a seed replays the same attack. Bombs
that are refused by design (tags, a million tiny items, a bignum fence) are mixed with fuzzed
requests that may be well-formed, so some reach validation and some the state machine.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import cbor2
import trio

from logact.client.client import parse_address
from logact.protocol import codec

OPS = ["hello", "append", "read", "tail", "trim", "claim", "buses", "status", "ping", "subscribe"]
KEYS = ["id", "op", "bus", "entries", "type", "body", "start", "key", "fence", "token"]
#: The bus the bombs write to. Attackers authenticate as the least privileged writer (it may
#: only append ``mail``), so workload buses only ever hold the workload's appends.
HOSTILE_BUS = "nemesis/hostile"
HOSTILE_TYPE = "mail"
#: Per-read bound while attacking: a node that is slow to answer a bomb is not waited for.
REPLY_TIMEOUT = 5.0


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def tiny_items(count: int) -> bytes:
    """CBOR of an array of ``count`` empty maps: one byte each on the wire, a dict in memory."""
    return b"\x9a" + count.to_bytes(4, "big") + b"\xa0" * count


def fuzz_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(14 if depth < 4 else 9)
    if kind == 0:
        return rng.choice([0, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**64), 10**30, 10**400])
    if kind == 1:
        return rng.choice(["", "b", "x" * rng.randrange(300), "\u2603", "a/b/c", HOSTILE_BUS])
    if kind == 2:
        return rng.randbytes(rng.randrange(40))
    if kind == 3:
        return rng.choice([None, True, False, cbor2.undefined, cbor2.CBORSimpleValue(99)])
    if kind == 4:
        return rng.choice([0.5, float("nan"), float("inf"), -0.0])
    if kind == 5:
        return rng.choice(OPS)
    if kind in (6, 7, 8):
        return rng.randrange(-5, 1000)
    if kind in (9, 10):
        return [fuzz_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind in (11, 12):
        return {rng.choice(KEYS): fuzz_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return cbor2.CBORTag(rng.choice([0, 2, 24, 28, 29, 30, 35, 258, 99999]), fuzz_value(rng, 4))


def fuzz_payload(rng: random.Random, token: str) -> bytes:
    """A request-like map (sometimes any value), encoded, then maybe bit-flipped or cut."""
    request = {"id": rng.randrange(-3, 2**20), "op": rng.choice(OPS), "token": token}
    extra = fuzz_value(rng, 1)
    if isinstance(extra, dict):
        request.update(extra)
    try:
        payload = cbor2.dumps(request if rng.random() < 0.8 else fuzz_value(rng))
    except (TypeError, ValueError, OverflowError):
        payload = rng.randbytes(rng.randrange(64))
    for _ in range(rng.randrange(3)):  # a few bit flips or a cut
        if payload and rng.random() < 0.5:
            index = rng.randrange(len(payload))
            payload = (
                payload[:index]
                + bytes([payload[index] ^ (1 << rng.randrange(8))])
                + payload[index + 1 :]
            )
        elif payload:
            payload = payload[: rng.randrange(len(payload))]
    return payload


def _append(bus: str, body: bytes, **extra: Any) -> bytes:
    """An append frame carrying ``body`` as given (the item an encoded body wraps)."""
    entries = [{"type": HOSTILE_TYPE, "body": body}]
    return cbor2.dumps({"id": 1, "op": "append", "bus": bus, "entries": entries, **extra})


def bombs() -> list[bytes]:
    """Authenticated payloads that cost a careless node dearly; every one must be refused."""
    ping = cbor2.dumps("op") + cbor2.dumps("ping") + cbor2.dumps("x")
    return [
        b"\xa3" + cbor2.dumps("id") + b"\x01" + ping + tiny_items(3_000_000),  # 3M items
        _append(HOSTILE_BUS, tiny_items(900_000)),  # a body of too many items
        _append(HOSTILE_BUS, cbor2.dumps(cbor2.CBORTag(30, [7**3000, 3**3000]))),  # a fraction
        _append(HOSTILE_BUS, cbor2.dumps(cbor2.undefined)),
        _append(HOSTILE_BUS, b"\xa0", fence=["d", 10**5000]),  # a bignum epoch
        _append(HOSTILE_BUS, b"\xa0", fence=["d", 2**64 - 1]),
        cbor2.dumps({"id": 1, "op": 10**400}),
        b"\xa2" + cbor2.dumps("id") + b"\x01" + cbor2.dumps("x") + b"\x81" * 60_000 + b"\x00",
    ]


class Attacker:
    """Hostile clients of one node for a bounded time; counts what was sent and answered."""

    def __init__(self, client_address: str, raft_address: str, token: str, seed: str) -> None:
        self.client_address = client_address
        self.raft_address = raft_address
        self.token = token
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.bombs = bombs()

    async def run(self, duration_s: float, idle_connections: int = 200) -> dict[str, int]:
        """Every attack at once for ``duration_s``; the counts by kind."""
        attacks: list[Callable[[], Awaitable[None]]] = [
            self._unauthenticated,
            self._authenticated,
            self._raft_junk,
            lambda: self._idle(idle_connections),
        ]
        with trio.move_on_after(duration_s):
            async with trio.open_nursery() as nursery:
                for attack in attacks:
                    nursery.start_soon(self._repeat, attack)
        return dict(self.counts)

    async def _repeat(self, attack: Callable[[], Awaitable[None]]) -> None:
        """Run ``attack`` again and again; a node closing or refusing is what we expect."""
        while True:
            try:
                await attack()
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
                self.counts["closed_by_node"] += 1
                await trio.sleep(0.01)

    async def _open(self, address: str) -> trio.SocketStream:
        host, port = parse_address(address)
        return await trio.open_tcp_stream(host, port)

    async def _replies(self, stream: trio.SocketStream, wanted: int) -> int:
        """Read up to ``wanted`` reply frames (bounded in time); how many came."""
        decoder = codec.FrameDecoder()
        got = 0
        with trio.move_on_after(REPLY_TIMEOUT):
            while got < wanted:
                data = await stream.receive_some(65536)
                if not data:
                    break
                decoder.feed(data)
                got += sum(1 for _ in decoder.frames())
        return got

    async def _unauthenticated(self) -> None:
        """A fuzzed frame (a hello with a wrong token, mostly) on a fresh connection."""
        stream = await self._open(self.client_address)
        async with stream:
            await stream.send_all(frame(fuzz_payload(self.rng, "wrong-token")))
            self.counts["unauthenticated_frames"] += 1
            self.counts["unauthenticated_answers"] += await self._replies(stream, 1)

    async def _authenticated(self) -> None:
        """One session: hello, then fuzzed frames and bombs, each answer awaited."""
        stream = await self._open(self.client_address)
        async with stream:
            await stream.send_all(codec.encode({"id": 0, "op": "hello", "token": self.token}))
            if not await self._replies(stream, 1):
                return
            payloads = self.bombs + [fuzz_payload(self.rng, self.token) for _ in range(40)]
            self.rng.shuffle(payloads)
            for payload in payloads:
                await stream.send_all(frame(payload))
                self.counts["authenticated_frames"] += 1
                answered = await self._replies(stream, 1)
                self.counts["authenticated_answers"] += answered
                if not answered:
                    return  # closed (an oversized length) or too slow: a new session

    async def _raft_junk(self) -> None:
        """A stranger on the Raft port: a huge length prefix and junk after it."""
        stream = await self._open(self.raft_address)
        async with stream:
            await stream.send_all(struct.pack("i", 2**31 - 1) + self.rng.randbytes(4096))
            self.counts["raft_junk"] += 1
            with trio.move_on_after(REPLY_TIMEOUT):
                while await stream.receive_some(4096):
                    pass

    async def _idle(self, count: int) -> None:
        """Hold ``count`` connections that never say hello (the node reaps them)."""
        streams = []
        try:
            for _ in range(count):
                streams.append(await self._open(self.client_address))
                self.counts["idle_connections"] += 1
            await trio.sleep_forever()
        finally:
            for stream in streams:
                await trio.aclose_forcefully(stream)
