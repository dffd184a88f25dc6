"""The log service in-process (``LocalLog`` over memory and embedded backends).

Covers the API, typed errors, ACL enforcement, subscriptions and the group committer. Waits are
bounded with ``trio.fail_after``; synchronisation uses events and ``wait_all_tasks_blocked``,
never sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from logact.protocol import errors
from logact.protocol.api import BusInfo, Tail
from logact.protocol.codec import Entry
from logact.server.backend import MemoryBackend
from logact.server.command_types import Append, Barrier, Claim, Command, Done, NewEntry, Reply
from logact.server.commands import Limits
from logact.server.committer import GroupCommitter
from logact.server.config import Principal, Role
from logact.server.local import LocalLog, open_embedded, open_local, open_memory
from logact.server.state import LogState

ADMIN = Principal("root", (Role("admin", frozenset({"*"}), admin=True),))
WRITER = Principal("writer", (Role("writer", frozenset({"*"})),))
READER = Principal("observer", (Role("reader", frozenset()),))
VOTER = Principal("voter-1", (Role("voter", frozenset({"vote"})),))
DRIVER = Principal(
    "driver",
    (Role("driver", frozenset({"intent", "inf_in"})), Role("mailer", frozenset({"mail"}))),
)


async def collect(subscription: AsyncIterator[Entry], count: int) -> list[Entry]:
    out: list[Entry] = []
    async with aclosing(subscription) as entries:  # type: ignore[type-var]
        async for entry in entries:
            out.append(entry)
            if len(out) == count:
                break
    return out


# ---------------------------------------------------------------- basic API


async def test_append_read_tail_and_buses(any_log: LocalLog) -> None:
    log = any_log
    with trio.fail_after(5):
        assert await log.append("bus/1", "intent", {"do": "x"}) == 0
        assert await log.append_batch("bus/1", [("vote", 1), ("vote", 2)]) == range(1, 3)
        await log.append("bus/2", "mail", "hi")
        result = await log.read("bus/1")
        assert [(e.pos, e.type, e.body) for e in result.entries] == [
            (0, "intent", {"do": "x"}),
            (1, "vote", 1),
            (2, "vote", 2),
        ]
        assert {e.author for e in result.entries} == {"local"}
        assert (result.next, result.tail, result.trim) == (3, 3, 0)
        assert await log.check_tail("bus/1") == Tail(3, 0)
        assert await log.check_tail("bus/1", stale=True) == Tail(3, 0)
        assert await log.check_tail("nobody") == Tail(0, 0)
        buses = await log.list_buses()
        assert [(b.bus, b.tail, b.trim) for b in buses] == [("bus/1", 3, 0), ("bus/2", 1, 0)]
        assert all(isinstance(b, BusInfo) and b.bytes > 0 for b in buses)
        filtered = await log.read("bus/1", types=["vote"], limit=1)
        assert [e.pos for e in filtered.entries] == [1] and filtered.next == 2
        assert [e.pos for e in await log.read_all("bus/1", 1, types=["vote"])] == [1, 2]
        assert (await log.read("bus/1", 1, stale=True)).entries[0].pos == 1


async def test_entry_timestamps_are_wall_clock_milliseconds(memory_log: LocalLog) -> None:
    with trio.fail_after(5):
        await memory_log.append("b", "t", None)
        [entry] = (await memory_log.read("b")).entries
    assert entry.ts > 1_600_000_000_000  # milliseconds since the epoch, assigned by the server


async def test_idempotent_retry_with_the_same_key(any_log: LocalLog) -> None:
    log = any_log
    key = log.next_key()
    with trio.fail_after(5):
        first = await log.append("b", "t", "once", key=key)
        await log.append("b", "t", "other")
        again = await log.append("b", "t", "once", key=key)
        assert again == first
        assert (await log.check_tail("b")).tail == 2
        # Fresh keys never collide.
        assert log.next_key() != log.next_key()


async def test_conditional_and_fenced_appends(any_log: LocalLog) -> None:
    log = any_log
    with trio.fail_after(5):
        await log.append("b", "t", 0, expect_tail=0)
        with pytest.raises(errors.ConditionFailed) as info:
            await log.append("b", "t", 1, expect_tail=0)
        assert info.value.details == {"tail": 1}
        assert await log.claim("b", "driver") == 1
        await log.append("b", "t", 1, fence=("driver", 1))
        assert await log.claim("b", "driver") == 2
        with pytest.raises(errors.Fenced) as fenced:
            await log.append("b", "t", 2, fence=("driver", 1))
        assert fenced.value.details == {"current_epoch": 2}
        assert (await log.check_tail("b")).tail == 2


async def test_read_errors(any_log: LocalLog) -> None:
    log = any_log
    with trio.fail_after(5):
        with pytest.raises(errors.UnknownBus):
            await log.read("missing")
        await log.append_batch("b", [("t", i) for i in range(5)])
        assert await log.trim("b", 3) == 3
        with pytest.raises(errors.Trimmed) as info:
            await log.read("b", 2)
        assert info.value.details == {"trim": 3}
        assert [e.pos for e in (await log.read("b", 3)).entries] == [3, 4]
        for limit in (0, -1, 1001):
            with pytest.raises(errors.BadRequest, match="limit"):
                await log.read("b", 3, limit=limit)
        with pytest.raises(errors.BadRequest):
            await log.trim("b", 6)  # beyond the tail
        with pytest.raises(errors.UnknownBus):
            await log.trim("missing", 0)
        with pytest.raises(errors.BadRequest):
            await log.read("bad bus id")


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "read", "bus": "b", "limit": True},
        {"op": "read", "bus": "b", "start": -1},
        {"op": "read", "bus": "b", "types": []},
        {"op": "read", "bus": "b", "stale": "yes"},
        {"op": "tail"},
        {"op": "tail", "bus": 3},
        {"op": "append", "bus": "b", "entries": []},
        {"op": "append", "bus": "b", "entries": [{"type": "t"}]},
        {"op": "append", "bus": "b", "entries": [{"type": "t", "body": 1}], "key": ["c"]},
        {"op": "trim", "bus": "b", "before": "1"},
        {"op": "claim", "bus": "b", "name": ""},
        {"op": "buses", "stale": 1},
    ],
)
async def test_malformed_requests_are_bad_requests(
    memory_log: LocalLog, request_: dict[str, Any]
) -> None:
    with trio.fail_after(5):
        await memory_log.append("b", "t", 0)
        with pytest.raises(errors.BadRequest):
            await memory_log._call(request_)
        assert (await memory_log.check_tail("b")).tail == 1


@pytest.mark.parametrize(
    "op",
    [
        "nope",
        "",
        5,
        pytest.param(10**5000, id="huge-int"),
        None,
        ["append"],
        "APPEND",
        "_append",
        pytest.param("x" * 10**6, id="huge-text"),
    ],
)
async def test_unknown_op_is_a_bad_request(memory_log: LocalLog, op: Any) -> None:
    with trio.fail_after(5):
        with pytest.raises(errors.BadRequest, match="'op' must be one of append, buses"):
            await memory_log._call({"op": op, "bus": "b"})
        with pytest.raises(errors.BadRequest, match="'op' must be one of"):
            await memory_log.as_principal(READER)._call({"op": op})
        # The service is still fine.
        assert await memory_log._call({"op": "ping"}) == {"pong": True}


async def test_missing_op_is_a_bad_request(memory_log: LocalLog) -> None:
    with trio.fail_after(5), pytest.raises(errors.BadRequest):
        await memory_log._call({})


async def test_too_large_entries_and_batches() -> None:
    limits = Limits(max_entry_bytes=16, max_batch_entries=2, max_batch_bytes=20)
    with trio.fail_after(5):
        async with open_memory(limits) as log:
            with pytest.raises(errors.TooLarge):
                await log.append("b", "t", "x" * 20)
            with pytest.raises(errors.TooLarge):
                await log.append_batch("b", [("t", 1)] * 3)
            with pytest.raises(errors.TooLarge):
                await log.append_batch("b", [("t", "x" * 10)] * 2)
            assert (await log.check_tail("b")).tail == 0
            await log.append_batch("b", [("t", "x" * 5)] * 2)
            assert (await log.check_tail("b")).tail == 2


async def test_status_reports_the_log_and_group_commit(memory_log: LocalLog) -> None:
    with trio.fail_after(5):
        await memory_log.append_batch("b", [("t", 1), ("t", 2)])
        status = await memory_log.status()
    assert status["node"]["mode"] == "memory"
    assert status["log"]["entries"] == 2 and status["log"]["buses"] == 1
    assert status["durability"] == "none"
    assert status["group_commit"]["commands"] >= 1


async def test_call_with_timeout(memory_log: LocalLog) -> None:
    with trio.fail_after(5):
        assert await memory_log.append("b", "t", 1, timeout=5) == 0
        assert (await memory_log.read("b", timeout=5)).entries[0].body == 1


# ---------------------------------------------------------------- ACL


async def test_reader_may_read_but_not_append(memory_log: LocalLog) -> None:
    reader = memory_log.as_principal(READER)
    with trio.fail_after(5):
        await memory_log.append("b", "t", 1)
        before = await memory_log.list_buses()
        applied = (await memory_log.status())["log"]["applied"]
        with pytest.raises(errors.Forbidden, match="observer"):
            await reader.append("b", "t", 2)
        with pytest.raises(errors.Forbidden):
            await reader.append("new-bus", "t", 2)
        # Refused before replication: not even a command was applied.
        assert (await memory_log.status())["log"]["applied"] == applied
        assert await memory_log.list_buses() == before
        assert [e.body for e in (await reader.read("b")).entries] == [1]
        assert (await reader.check_tail("b")).tail == 1
        assert [b.bus for b in await reader.list_buses()] == ["b"]


async def test_role_restricts_entry_types_and_batches_are_all_or_nothing(
    memory_log: LocalLog,
) -> None:
    voter = memory_log.as_principal(VOTER)
    driver = memory_log.as_principal(DRIVER)
    with trio.fail_after(5):
        assert await voter.append("b", "vote", {"ok": True}) == 0
        with pytest.raises(errors.Forbidden, match="commit"):
            await voter.append("b", "commit", {})
        with pytest.raises(errors.Forbidden):
            await voter.append_batch("b", [("vote", 1), ("commit", 2), ("vote", 3)])
        # A principal with several roles may append the union of their types.
        assert await driver.append_batch("b", [("intent", 1), ("mail", 2)]) == range(1, 3)
        with pytest.raises(errors.Forbidden):
            await driver.append("b", "vote", 3)
        entries = (await memory_log.read("b")).entries
        assert [(e.type, e.author) for e in entries] == [
            ("vote", "voter-1"),
            ("intent", "driver"),
            ("mail", "driver"),
        ]


async def test_forbidden_is_reported_before_the_body_is_examined(memory_log: LocalLog) -> None:
    reader = memory_log.as_principal(READER)
    with trio.fail_after(5):
        with pytest.raises(errors.Forbidden):
            await reader.append("b", "t", b"x" * (2 * 1024 * 1024))  # over max_entry_bytes
        with pytest.raises(errors.TooLarge):
            await memory_log.append("b", "t", b"x" * (2 * 1024 * 1024))


async def test_forbidden_keyed_append_does_not_consume_its_key(memory_log: LocalLog) -> None:
    voter = memory_log.as_principal(VOTER)
    key = voter.next_key()
    with trio.fail_after(5):
        with pytest.raises(errors.Forbidden):
            await voter.append("b", "commit", 1, key=key)
        assert await voter.append("b", "vote", 1, key=key) == 0
        assert (await memory_log.check_tail("b")).tail == 1


async def test_author_cannot_be_forged(memory_log: LocalLog) -> None:
    voter = memory_log.as_principal(VOTER)
    with trio.fail_after(5):
        await voter._call(
            {
                "op": "append",
                "bus": "b",
                "author": "root",
                "entries": [{"type": "vote", "body": b"\x01", "author": "root"}],
            }
        )
        [entry] = (await memory_log.read("b")).entries
    assert entry.author == "voter-1"


@pytest.mark.parametrize("principal", [WRITER, READER, VOTER])
async def test_non_admin_trim_and_claim_are_forbidden(
    memory_log: LocalLog, principal: Principal
) -> None:
    other = memory_log.as_principal(principal)
    admin = memory_log.as_principal(ADMIN)
    with trio.fail_after(5):
        await memory_log.append_batch("b", [("vote", i) for i in range(4)])
        with pytest.raises(errors.Forbidden, match="admin"):
            await other.trim("b", 2)
        with pytest.raises(errors.Forbidden, match="admin"):
            await other.claim("b", "driver")
        with pytest.raises(errors.Forbidden):
            await other.claim("new-bus", "driver")
        assert await memory_log.check_tail("b") == Tail(4, 0)
        assert [b.bus for b in await memory_log.list_buses()] == ["b"]
        # Nothing was claimed: the admin's first claim is epoch 1.
        assert await admin.claim("b", "driver") == 1
        assert await admin.trim("b", 2) == 2


async def test_admin_role_without_append_rights() -> None:
    janitor = Principal("janitor", (Role("janitor", frozenset(), admin=True),))
    with trio.fail_after(5):
        async with open_memory() as log:
            await log.append("b", "t", 1)
            as_janitor = log.as_principal(janitor)
            assert await as_janitor.trim("b", 1) == 1
            with pytest.raises(errors.Forbidden):
                await as_janitor.append("b", "t", 2)


# ---------------------------------------------------------------- subscriptions


async def test_subscribe_delivers_existing_then_live_entries(any_log: LocalLog) -> None:
    log = any_log
    got: list[Entry] = []
    first_seen = trio.Event()

    async def consume() -> None:
        async with aclosing(log.subscribe("b", 0)) as entries:  # type: ignore[type-var]
            async for entry in entries:
                got.append(entry)
                if len(got) == 1:
                    first_seen.set()
                if len(got) == 4:
                    return

    with trio.fail_after(5):
        await log.append("b", "t", 0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await first_seen.wait()
            # The subscriber has caught up and now waits for new commits.
            await log.append("b", "t", 1)
            await log.append_batch("b", [("t", 2), ("t", 3)])
    assert [(e.pos, e.body) for e in got] == [(0, 0), (1, 1), (2, 2), (3, 3)]


async def test_subscribe_before_the_bus_exists(memory_log: LocalLog) -> None:
    result: list[Entry] = []

    async def consume() -> None:
        result.extend(await collect(memory_log.subscribe("later", 0), 2))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            await memory_log.append("other", "t", "noise")
            await memory_log.append_batch("later", [("t", "a"), ("t", "b")])
    assert [(e.pos, e.body) for e in result] == [(0, "a"), (1, "b")]


async def test_subscribe_with_type_filter_and_from_a_future_position(
    memory_log: LocalLog,
) -> None:
    result: list[Entry] = []

    async def consume() -> None:
        result.extend(await collect(memory_log.subscribe("b", 2, types=["vote"]), 2))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await trio.testing.wait_all_tasks_blocked()
            await memory_log.append_batch(
                "b", [("vote", 0), ("intent", 1), ("intent", 2), ("vote", 3), ("vote", 4)]
            )
    assert [(e.pos, e.type) for e in result] == [(3, "vote"), (4, "vote")]


async def test_subscribe_below_the_trim_point_raises_trimmed(any_log: LocalLog) -> None:
    log = any_log
    with trio.fail_after(5):
        await log.append_batch("b", [("t", i) for i in range(3)])
        await log.trim("b", 2)
        with pytest.raises(errors.Trimmed):
            await collect(log.subscribe("b", 0), 1)
        assert [e.pos for e in await collect(log.subscribe("b", 2), 1)] == [2]


async def test_subscribe_with_a_bad_request_raises_bad_request(memory_log: LocalLog) -> None:
    with trio.fail_after(5):
        with pytest.raises(errors.BadRequest):
            await collect(memory_log.subscribe("bad bus", 0), 1)
        with pytest.raises(errors.BadRequest):
            await collect(memory_log.subscribe("b", -1), 1)
        with pytest.raises(errors.BadRequest):
            await collect(memory_log.subscribe("b", 0, types=[]), 1)


async def test_subscribe_across_many_chunks_in_order(memory_log: LocalLog) -> None:
    total = 2_500  # more than one read chunk (max_read_limit 1000)
    result: list[Entry] = []

    async def consume() -> None:
        result.extend(await collect(memory_log.subscribe("b", 0), total))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for start in range(0, total, 500):
                await memory_log.append_batch("b", [("t", i) for i in range(start, start + 500)])
    assert [e.pos for e in result] == list(range(total))
    assert [e.body for e in result] == list(range(total))


async def test_concurrent_appends_get_dense_unique_positions(any_log: LocalLog) -> None:
    log = any_log
    positions: list[int] = []
    writers, each = 20, 5

    async def writer(n: int) -> None:
        for i in range(each):
            positions.append(await log.append("b", "t", [n, i]))

    streamed: list[Entry] = []

    async def consume() -> None:
        streamed.extend(await collect(log.subscribe("b", 0), writers * each))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for n in range(writers):
                nursery.start_soon(writer, n)
    assert sorted(positions) == list(range(writers * each))
    assert [e.pos for e in streamed] == list(range(writers * each))
    # Each writer's own appends keep their order.
    for n in range(writers):
        mine = [e.body[1] for e in streamed if e.body[0] == n]
        assert mine == list(range(each))


# ---------------------------------------------------------------- embedded specifics


async def test_embedded_log_survives_reopen(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_embedded(tmp_path) as log:
            await log.append_batch("b", [("t", 1), ("t", 2)])
            assert await log.claim("b", "d") == 1
            await log.trim("b", 1)
        async with open_embedded(tmp_path, durability="os") as log:
            result = await log.read("b", 1)
            assert [(e.pos, e.body) for e in result.entries] == [(1, 2)]
            assert await log.claim("b", "d") == 2
            assert (await log.status())["node"]["mode"] == "embedded"


async def test_open_embedded_rejects_unknown_durability(tmp_path: Path) -> None:
    with pytest.raises(errors.BadRequest, match="durability"):
        async with open_embedded(tmp_path, durability="sometimes"):
            pass  # pragma: no cover


# ---------------------------------------------------------------- group committer


async def test_group_commit_batches_concurrent_submissions() -> None:
    backend = MemoryBackend()
    batches: list[int] = []

    async def replicate(cmds: list[Command]) -> list[Reply]:
        batches.append(len(cmds))
        return await backend.replicate(cmds)

    committer = GroupCommitter(replicate, max_inflight=1)
    cmd = Claim("b", "n", 0)
    epochs: list[int] = []

    async def submit() -> None:
        epochs.append((await committer.submit(cmd)).to_wire()["epoch"])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            async with trio.open_nursery() as clients:
                for _ in range(10):
                    clients.start_soon(submit)
            await committer.barrier()
            nursery.cancel_scope.cancel()
    assert sorted(epochs) == list(range(1, 11))
    assert sum(batches) == 11  # ten claims and one barrier
    assert len(batches) < 11  # at least some were grouped
    assert committer.commands == 11 and committer.batches == len(batches)


async def test_group_commit_caps_batches_by_bytes_but_always_makes_progress() -> None:
    backend = MemoryBackend()
    batches: list[int] = []

    async def replicate(cmds: list[Command]) -> list[Reply]:
        batches.append(len(cmds))
        return await backend.replicate(cmds)

    committer = GroupCommitter(replicate, max_inflight=1, max_batch=3, max_batch_bytes=300)
    firsts: list[int] = []

    async def submit(size: int) -> None:
        cmd = Append(bus="b", entries=(NewEntry("t", b"", size),), author="a", ts=0)
        firsts.append((await committer.submit(cmd)).to_wire()["first"])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            async with trio.open_nursery() as clients:
                clients.start_soon(submit, 10_000)  # alone over the cap: still sent, alone
                for _ in range(7):
                    clients.start_soon(submit, 1)  # ~100 bytes each: three fit per batch
            nursery.cancel_scope.cancel()
    assert sorted(firsts) == list(range(8))
    assert sum(batches) == 8
    assert max(batches) <= 3
    assert batches.count(1) >= 1


async def test_group_commit_replication_failure_is_unavailable_for_everyone() -> None:
    async def replicate(cmds: list[Command]) -> list[Reply]:
        raise RuntimeError("disk on fire")

    committer = GroupCommitter(replicate)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            with pytest.raises(errors.Unavailable, match="disk on fire"):
                await committer.submit(Barrier())
            with pytest.raises(errors.Unavailable):
                await committer.barrier()
            nursery.cancel_scope.cancel()


async def test_group_commit_passes_typed_errors_through() -> None:
    async def replicate(cmds: list[Command]) -> list[Reply]:
        raise errors.NotLeader("ask n2", {"leader": "n2"})

    committer = GroupCommitter(replicate)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            with pytest.raises(errors.NotLeader) as info:
                await committer.submit(Barrier())
            assert info.value.details == {"leader": "n2"}
            nursery.cancel_scope.cancel()


async def test_group_commit_unknown_outcome_is_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    async def replicate(cmds: list[Command]) -> list[Reply]:
        await release.wait()
        return [Done() for _ in cmds]

    committer = GroupCommitter(replicate, timeout=3.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        with pytest.raises(errors.Timeout) as info:
            await committer.submit(Barrier())
        assert info.value.retryable
        # The stuck batch finishing later does not break later submissions.
        release.set()
        assert await committer.submit(Barrier()) == Done()
        nursery.cancel_scope.cancel()


async def test_group_commit_answers_each_part_of_a_split_run_on_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run larger than a batch is split; a part stuck in replication times out alone."""
    calls: list[int] = []

    async def replicate(cmds: list[Command]) -> list[Reply]:
        calls.append(len(cmds))
        if len(calls) > 1:
            await trio.sleep_forever()  # the second batch never gets an outcome
        return [Done() for _ in cmds]

    committer = GroupCommitter(replicate, max_batch=2, timeout=3.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        outcomes = await committer.submit_all([Barrier()] * 3)
        nursery.cancel_scope.cancel()
    assert calls == [2, 1]
    assert outcomes[:2] == [Done(), Done()]
    assert isinstance(outcomes[2], errors.Timeout) and outcomes[2].retryable


# ---------------------------------------------------------------- unknown outcomes


class StuckBackend(MemoryBackend):
    """A backend whose replication never completes until released (a lost quorum)."""

    def __init__(self) -> None:
        super().__init__(LogState())
        self.release = trio.Event()

    async def replicate(self, cmds: list[Command]) -> list[Reply]:
        await self.release.wait()
        return await super().replicate(cmds)


async def test_service_reports_an_unknown_outcome_as_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = StuckBackend()
    async with open_local(backend) as log:
        with pytest.raises(errors.Timeout, match="may have applied"):
            await log.append("b", "t", 1)
        # It may indeed apply later: the outcome really was unknown.
        backend.release.set()
        assert await log.read_all("b") != []


async def test_local_call_timeout_is_a_typed_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = StuckBackend()
    async with open_local(backend) as log:
        with pytest.raises(errors.Timeout):
            await log.append("b", "t", 1, timeout=1.0)
        backend.release.set()


# ---------------------------------------------------------------- rights per bus

OWN = ("agent/{principal}/**",)
ALICE = Principal(
    "alice", (Role("agent", frozenset({"note"}), claim=frozenset({"driver"}), buses=OWN, read=OWN),)
)
ALICE_ADMIN = Principal("alice", (Role("admin", frozenset({"*"}), admin=True, buses=OWN),))


async def test_rights_apply_only_on_the_buses_of_the_role(memory_log: LocalLog) -> None:
    alice = memory_log.as_principal(ALICE)
    assert await alice.append("agent/alice/1", "note", "mine") == 0
    await memory_log.append("agent/bob/1", "note", "bob's")
    with pytest.raises(errors.Forbidden, match="'alice' may not append"):
        await alice.append("agent/bob/1", "note", "forged")
    with pytest.raises(errors.Forbidden, match="may not claim 'driver' on 'agent/bob/1'"):
        await alice.claim("agent/bob/1", "driver")
    assert await alice.claim("agent/alice/1", "driver") == 1
    for read in (alice.read("agent/bob/1"), alice.check_tail("agent/bob/1")):
        with pytest.raises(errors.Forbidden, match="may not read 'agent/bob/1'"):
            await read
    with pytest.raises(errors.Forbidden):
        await collect(alice.subscribe("agent/bob/1"), 1)
    assert [b.bus for b in await alice.list_buses()] == ["agent/alice/1"]
    assert [e.body for e in await alice.read_all("agent/alice/1")] == ["mine"]


async def test_trim_needs_an_admin_role_on_that_bus(memory_log: LocalLog) -> None:
    await memory_log.append("agent/alice/1", "note", 1)
    await memory_log.append("agent/bob/1", "note", 1)
    admin = memory_log.as_principal(ALICE_ADMIN)
    await admin.trim("agent/alice/1", 1)
    with pytest.raises(errors.Forbidden, match="may not trim 'agent/bob/1'"):
        await admin.trim("agent/bob/1", 1)
