"""One conformance suite for every implementation of the log API.

Each test runs against the in-memory log, the embedded durable log and a real 3-node Raft
cluster (through the network client), and asserts exactly the same behaviour.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Any, Protocol

import pytest
import trio

from logact.protocol.api import LogAPI, Tail
from logact.protocol.codec import Entry
from logact.protocol.errors import (
    BadRequest,
    ConditionFailed,
    Fenced,
    TooLarge,
    Trimmed,
    UnknownBus,
)

#: Every test body is bounded, independently of pytest-timeout.
TEST_DEADLINE = 60.0
MAX_ENTRY_BYTES = 1024 * 1024  # Limits().max_entry_bytes, the default every implementation uses


class LogImpl(Protocol):
    """What the ``log_impl`` fixture (tests/conftest.py) provides."""

    kind: str
    principal: str
    durable: bool

    def __call__(self) -> AbstractAsyncContextManager[LogAPI]: ...


def new_bus() -> str:
    return f"conf/{uuid.uuid4().hex[:16]}"


async def fill(log: LogAPI, bus: str, items: list[tuple[str, Any]]) -> list[int]:
    return [await log.append(bus, etype, body) for etype, body in items]


async def collect(log: LogAPI, bus: str, start: int, count: int, **kwargs: Any) -> list[Entry]:
    """The first ``count`` entries a subscription from ``start`` delivers."""
    out: list[Entry] = []
    async with aclosing(log.subscribe(bus, start, **kwargs)) as entries:
        async for entry in entries:
            out.append(entry)
            if len(out) == count:
                break
    return out


# ------------------------------------------------------------------------- positions


async def test_positions_are_dense_from_zero(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            positions = await fill(log, bus, [("note", {"i": i}) for i in range(10)])
            assert positions == list(range(10))
            entries = await log.read_all(bus)
    assert [e.pos for e in entries] == list(range(10))
    assert [e.body for e in entries] == [{"i": i} for i in range(10)]
    assert {e.type for e in entries} == {"note"}


async def test_concurrent_appends_get_distinct_dense_positions(log_impl: LogImpl) -> None:
    bus = new_bus()
    acked: dict[tuple[int, int], int] = {}

    async def writer(log: LogAPI, w: int) -> None:
        last = -1
        for i in range(10):
            pos = await log.append(bus, "note", {"w": w, "i": i})
            assert pos > last, "one writer's appends must be ordered"
            last = pos
            acked[(w, i)] = pos

    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            async with trio.open_nursery() as nursery:
                for w in range(8):
                    nursery.start_soon(writer, log, w)
            entries = await log.read_all(bus)
    assert sorted(acked.values()) == list(range(80))
    assert [e.pos for e in entries] == list(range(80))
    for (w, i), pos in acked.items():
        assert entries[pos].body == {"w": w, "i": i}


async def test_entry_fields_and_monotonic_timestamps(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await log.append(bus, "note", {"nested": [1, "two", None, 3.5, b"\x00\xff"]})
            await log.append_batch(bus, [("data", "a"), ("data", 7)])
            entries = await log.read_all(bus)
    assert entries[0].body == {"nested": [1, "two", None, 3.5, b"\x00\xff"]}
    assert [e.type for e in entries] == ["note", "data", "data"]
    assert [e.body for e in entries[1:]] == ["a", 7]
    timestamps = [e.ts for e in entries]
    assert all(isinstance(ts, int) and ts > 0 for ts in timestamps)
    assert timestamps == sorted(timestamps)
    assert entries[1].ts == entries[2].ts, "a batch is one append: one timestamp"


async def test_the_log_keeps_its_own_copy_of_every_body(log_impl: LogImpl) -> None:
    """Mutating a body after appending it, or after reading it, changes nothing stored."""
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            body: dict[str, Any] = {"x": 1, "items": [1]}
            batch: list[Any] = [["a"], {"y": 1}]
            await log.append(bus, "note", body)
            await log.append_batch(bus, [("data", batch[0]), ("data", batch[1])])
            body["x"] = 2
            body["items"].append(2)
            batch[0].append("b")
            batch[1]["y"] = 2
            first = await log.read_all(bus)
            first[0].body["x"] = 3
            first[1].body.append("c")
            async with aclosing(log.subscribe(bus, 0)) as tail:
                async for entry in tail:
                    entry.body["z"] = 4  # the first one: a mapping
                    break
            again = await log.read_all(bus)
            delivered = await collect(log, bus, 0, 3)
    for entries in (again, delivered):
        assert [e.body for e in entries] == [{"x": 1, "items": [1]}, ["a"], {"y": 1}]


async def test_author_is_the_principal(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await log.append(bus, "note", {"author": "someone-else"})
            await log.append_batch(bus, [("note", 1), ("data", 2)])
            entries = await log.read_all(bus)
    assert [e.author for e in entries] == [log_impl.principal] * 3
    assert entries[0].body == {"author": "someone-else"}


# ------------------------------------------------------------------------- batches


async def test_batch_is_atomic_at_consecutive_positions(log_impl: LogImpl) -> None:
    bus = new_bus()
    batches: dict[int, range] = {}

    async def batcher(log: LogAPI, b: int) -> None:
        batches[b] = await log.append_batch(bus, [("data", {"b": b, "k": k}) for k in range(5)])

    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            assert await log.append(bus, "note", "first") == 0
            assert await log.append_batch(bus, [("note", k) for k in range(4)]) == range(1, 5)
            async with trio.open_nursery() as nursery:
                for b in range(6):
                    nursery.start_soon(batcher, log, b)
            entries = await log.read_all(bus)
    assert len(entries) == 5 + 6 * 5
    assert [e.body for e in entries[1:5]] == [0, 1, 2, 3]
    for b, positions in batches.items():
        assert len(positions) == 5
        assert [entries[p].body for p in positions] == [{"b": b, "k": k} for k in range(5)]
    starts = sorted(r.start for r in batches.values())
    assert starts == list(range(5, 35, 5)), "concurrent batches never interleave"


async def test_rejected_batch_appends_nothing(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await log.append(bus, "note", 0)
            with pytest.raises(BadRequest):
                await log.append_batch(bus, [("note", 1), ("bad type!", 2)])
            with pytest.raises(BadRequest):
                await log.append_batch(bus, [])
            with pytest.raises(TooLarge):
                await log.append_batch(bus, [("note", i) for i in range(1001)])
            assert (await log.check_tail(bus)).tail == 1


async def test_entry_size_limit_boundary(log_impl: LogImpl) -> None:
    bus = new_bus()
    # A CBOR byte string of n >= 65536 bytes has a 5-byte header.
    largest = b"x" * (MAX_ENTRY_BYTES - 5)
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            assert await log.append(bus, "data", largest) == 0
            with pytest.raises(TooLarge):
                await log.append(bus, "data", largest + b"x")
            tail = await log.check_tail(bus)
            entries = await log.read_all(bus)
    assert tail.tail == 1
    assert len(entries) == 1 and entries[0].body == largest


# ------------------------------------------------------------------------- reads


async def test_read_start_limit_and_next(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [("note", i) for i in range(10)])
            page = await log.read(bus, 0, limit=3)
            assert [e.pos for e in page.entries] == [0, 1, 2]
            assert (page.next, page.tail, page.trim) == (3, 10, 0)
            page = await log.read(bus, page.next, limit=3)
            assert [e.pos for e in page.entries] == [3, 4, 5]
            page = await log.read(bus, 8, limit=100)
            assert [e.pos for e in page.entries] == [8, 9]
            assert page.next == 10
            page = await log.read(bus, 10)
            assert page.entries == [] and page.next == 10 and page.tail == 10
            for bad_limit in (0, 1001):
                with pytest.raises(BadRequest):
                    await log.read(bus, 0, limit=bad_limit)


async def test_read_types_filter_and_continuation(log_impl: LogImpl) -> None:
    bus = new_bus()
    kinds = ["plan", "tally", "tally", "seal", "note"] * 6
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [(kind, i) for i, kind in enumerate(kinds)])
            page = await log.read(bus, 0, limit=4, types=["tally"])
            assert [e.pos for e in page.entries] == [1, 2, 6, 7]
            assert page.next == 8, "next is just past the last entry returned"
            collected: list[Entry] = list(page.entries)
            while page.next < page.tail:
                page = await log.read(bus, page.next, limit=4, types=["tally"])
                collected.extend(page.entries)
            assert page.next == len(kinds)
            everything = await log.read_all(bus, types=["plan", "seal"])
            nothing = await log.read(bus, 0, types=["absent"])
    assert [e.pos for e in collected] == [i for i, k in enumerate(kinds) if k == "tally"]
    assert all(e.type == "tally" for e in collected)
    assert [e.pos for e in everything] == [i for i, k in enumerate(kinds) if k in ("plan", "seal")]
    assert nothing.entries == [] and nothing.next == len(kinds)


async def test_check_tail(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            before = await log.check_tail(bus)
            await log.append_batch(bus, [("note", 1), ("note", 2), ("note", 3)])
            after_batch = await log.check_tail(bus)
            await log.append(bus, "note", 4)
            after = await log.check_tail(bus)
    assert (before.tail, before.trim) == (0, 0)
    assert (after_batch.tail, after_batch.trim) == (3, 0)
    assert (after.tail, after.trim) == (4, 0)


async def test_unknown_bus(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            with pytest.raises(UnknownBus):
                await log.read(bus)
            with pytest.raises(UnknownBus):
                await log.trim(bus, 0)
            assert bus not in {b.bus for b in await log.list_buses()}


async def test_invalid_bus_names_are_rejected(log_impl: LogImpl) -> None:
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            for bad in ("", "has space", "x" * 257, "émoji"):
                with pytest.raises(BadRequest):
                    await log.append(bad, "note", 1)
                with pytest.raises(BadRequest):
                    await log.read(bad)


# ------------------------------------------------------------------------- trim


async def test_trim(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [("note", i) for i in range(10)])
            assert await log.trim(bus, 4) == 4
            with pytest.raises(Trimmed) as trimmed:
                await log.read(bus, 0)
            assert trimmed.value.details.get("trim") == 4
            with pytest.raises(Trimmed):
                await log.read(bus, 3)
            page = await log.read(bus, 4)
            assert [e.pos for e in page.entries] == list(range(4, 10))
            assert page.trim == 4
            assert await log.check_tail(bus) == Tail(10, 4)
            assert await log.trim(bus, 2) == 4, "trimming below the trim point is a no-op"
            with pytest.raises(BadRequest):
                await log.trim(bus, 11)
            assert await log.append(bus, "note", 10) == 10, "positions continue after a trim"
            assert [e.pos for e in await log.read_all(bus, 4)] == list(range(4, 11))
            info = {b.bus: b for b in await log.list_buses()}[bus]
            assert (info.tail, info.trim) == (11, 4)
            assert await log.trim(bus, 11) == 11, "trim up to the tail empties the bus"
            empty = await log.read(bus, 11)
            assert empty.entries == [] and empty.trim == 11 and empty.tail == 11


async def test_subscribe_below_trim_point_fails(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [("note", i) for i in range(5)])
            await log.trim(bus, 3)
            with pytest.raises(Trimmed):
                await collect(log, bus, 0, 1)
            assert [e.pos for e in await collect(log, bus, 3, 2)] == [3, 4]


# ------------------------------------------------------------------------- idempotency


async def test_idempotent_append(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await log.append(bus, "note", "before")
            key = log.next_key()
            first = await log.append(bus, "note", "once", key=key)
            again = await log.append(bus, "note", "once", key=key)
            batch_key = log.next_key()
            batch = await log.append_batch(bus, [("data", 1), ("data", 2)], key=batch_key)
            batch_again = await log.append_batch(bus, [("data", 1), ("data", 2)], key=batch_key)
            entries = await log.read_all(bus)
    assert first == again == 1
    assert batch == batch_again == range(2, 4)
    assert [e.body for e in entries] == ["before", "once", 1, 2]


async def test_idempotent_concurrent_duplicates(log_impl: LogImpl) -> None:
    """The same keyed append sent many times at once is applied once."""
    bus = new_bus()
    results: list[int] = []
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            key = log.next_key()

            async def send() -> None:
                results.append(await log.append(bus, "note", "dup", key=key))

            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(send)
            entries = await log.read_all(bus)
    assert results == [0] * 10
    assert [e.body for e in entries] == ["dup"]


# ------------------------------------------------------------------------- conditions


async def test_expect_tail_compare_and_append(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            assert await log.append(bus, "note", "a", expect_tail=0) == 0
            assert await log.append(bus, "note", "b", expect_tail=1) == 1
            for stale in (0, 1, 3):
                with pytest.raises(ConditionFailed) as failed:
                    await log.append(bus, "note", "lost", expect_tail=stale)
                assert failed.value.details.get("tail") == 2
            with pytest.raises(ConditionFailed):
                await log.append_batch(bus, [("note", "x"), ("note", "y")], expect_tail=1)
            assert await log.append_batch(bus, [("note", "c"), ("note", "d")], expect_tail=2) == (
                range(2, 4)
            )
            with pytest.raises(ConditionFailed):
                await log.append(new_bus(), "note", "x", expect_tail=1)
            entries = await log.read_all(bus)
    assert [e.body for e in entries] == ["a", "b", "c", "d"]


async def test_claim_and_fence(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            first = await log.claim(bus, "driver")
            assert first == 1
            assert await log.append(bus, "note", "e1", fence=("driver", first)) == 0
            second = await log.claim(bus, "driver")
            assert second == 2
            with pytest.raises(Fenced) as fenced:
                await log.append(bus, "note", "stale", fence=("driver", first))
            assert fenced.value.details.get("current_epoch") == second
            with pytest.raises(Fenced):
                await log.append(bus, "note", "future", fence=("driver", second + 1))
            assert await log.append(bus, "note", "e2", fence=("driver", second)) == 1
            # Epochs are per name and per bus.
            assert await log.claim(bus, "executor") == 1
            assert await log.append(bus, "note", "other", fence=("driver", second)) == 2
            other_bus = new_bus()
            assert await log.claim(other_bus, "driver") == 1
            entries = await log.read_all(bus)
    assert [e.body for e in entries] == ["e1", "e2", "other"]


async def test_conditions_are_checked_before_appending_a_retry(log_impl: LogImpl) -> None:
    """A retried (same key) conditional append returns its original result."""
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            key = log.next_key()
            assert await log.append(bus, "note", "x", expect_tail=0, key=key) == 0
            assert await log.append(bus, "note", "x", expect_tail=0, key=key) == 0
            assert (await log.check_tail(bus)).tail == 1


# ------------------------------------------------------------------------- buses


async def test_list_buses(log_impl: LogImpl) -> None:
    one, two = new_bus(), new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, one, [("note", "x" * 10)] * 3)
            await log.append(two, "note", "y")
            await log.trim(one, 1)
            buses = {b.bus: b for b in await log.list_buses()}
    assert (buses[one].tail, buses[one].trim) == (3, 1)
    assert (buses[two].tail, buses[two].trim) == (1, 0)
    assert buses[one].bytes > buses[two].bytes > 0
    names = [b for b in buses]
    assert names == sorted(names)


# ------------------------------------------------------------------------- subscribe


async def test_subscribe_existing_then_new_entries(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [("note", i) for i in range(5)])
            received: list[Entry] = []

            async def subscriber(task_status: trio.TaskStatus[None]) -> None:
                async with aclosing(log.subscribe(bus, 2)) as entries:
                    async for entry in entries:
                        received.append(entry)
                        if entry.pos == 2:
                            task_status.started()
                        if len(received) == 3 + 20:
                            return

            async with trio.open_nursery() as nursery:
                await nursery.start(subscriber)
                for i in range(5, 15):
                    await log.append(bus, "note", i)
                await log.append_batch(bus, [("note", i) for i in range(15, 25)])
    assert [e.pos for e in received] == list(range(2, 25))
    assert [e.body for e in received] == list(range(2, 25))


async def test_subscribe_with_types_filter(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [("note" if i % 3 else "plan", i) for i in range(9)])

            async def more() -> None:
                await fill(log, bus, [("note" if i % 3 else "plan", i) for i in range(9, 18)])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(more)
                got = await collect(log, bus, 1, 5, types=["plan"])
    assert [e.pos for e in got] == [3, 6, 9, 12, 15]
    assert all(e.type == "plan" for e in got)


async def test_subscribe_before_the_bus_exists(log_impl: LogImpl) -> None:
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:

            async def later() -> None:
                await fill(log, bus, [("note", i) for i in range(3)])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(later)
                got = await collect(log, bus, 0, 3)
    assert [(e.pos, e.body) for e in got] == [(0, 0), (1, 1), (2, 2)]


async def test_many_subscribers_see_the_same_order(log_impl: LogImpl) -> None:
    bus = new_bus()
    views: list[list[int]] = []
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:

            async def watch() -> None:
                views.append([e.body for e in await collect(log, bus, 0, 30)])

            async def write(w: int) -> None:
                for i in range(10):
                    await log.append(bus, "note", w * 100 + i)

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(watch)
                for w in range(3):
                    nursery.start_soon(write, w)
            final = [e.body for e in await log.read_all(bus)]
    assert len(views) == 3
    assert all(view == final for view in views)


# ------------------------------------------------------------------------- durability


async def test_entries_survive_reopen(log_impl: LogImpl) -> None:
    if not log_impl.durable:
        pytest.skip("the in-memory log is volatile by design")
    bus = new_bus()
    with trio.fail_after(TEST_DEADLINE):
        async with log_impl() as log:
            await fill(log, bus, [("note", i) for i in range(5)])
            await log.trim(bus, 1)
            epoch = await log.claim(bus, "driver")
            key = log.next_key()
            assert await log.append(bus, "note", "keyed", key=key) == 5
        async with log_impl() as log:
            entries = await log.read_all(bus, 1)
            tail = await log.check_tail(bus)
            with pytest.raises(Fenced):
                await log.append(bus, "note", "stale", fence=("driver", epoch - 1))
            assert await log.append(bus, "note", "keyed", key=key) == 5, "dedup state survives"
            assert await log.claim(bus, "driver") == epoch + 1
    assert [e.body for e in entries] == [1, 2, 3, 4, "keyed"]
    assert (tail.tail, tail.trim) == (6, 1)
