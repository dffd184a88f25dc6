"""``multi``: independent appends in one request (a client's coalesced appends).

Each append of a multi must behave exactly as if it had been sent alone: its own checks, its
own idempotency key, its own answer; only the request (and the batch it joins) is shared.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.client.client import _Multi, _Pending, append_items
from logact.protocol import codec
from logact.protocol.api import _append_request
from logact.protocol.cbor_items import item_count
from logact.protocol.codec import encode_body
from logact.protocol.errors import error_from_wire
from logact.server.commands import Limits
from logact.server.config import Principal, Role
from logact.server.local import LocalLog, open_memory

VOTER = Principal("voter-1", (Role("voter", frozenset({"vote"})),))


def append(bus: str, etype: str, body: Any, key: list[Any] | None = None, **extra: Any) -> Any:
    op: dict[str, Any] = {
        "op": "append",
        "bus": bus,
        "entries": [{"type": etype, "body": encode_body(body)}],
        **extra,
    }
    if key is not None:
        op["key"] = key
    return op


async def multi(log: LocalLog, ops: list[Any]) -> list[dict[str, Any]]:
    with trio.fail_after(5):
        result = await log._call({"op": "multi", "ops": ops})
    assert len(result["results"]) == len(ops)
    return result["results"]  # type: ignore[no-any-return]


async def test_each_append_is_answered_on_its_own_and_refusals_change_nothing(
    memory_log: LocalLog,
) -> None:
    results = await multi(
        memory_log,
        [
            append("b", "t", 1),
            append("b", "BAD TYPE", 2),
            append("b", "t", 3, expect_tail=99),
            append("b", "t", 4),
            {"op": "append", "bus": "b", "entries": [{"type": "t", "body": "not bytes"}]},
        ],
    )
    assert results[0] == {
        "ok": True,
        "result": {"first": 0, "last": 0, "ts": results[0]["result"]["ts"]},
    }
    assert results[1]["ok"] is False and results[1]["error"]["code"] == "bad_request"
    assert results[2]["ok"] is False and results[2]["error"]["code"] == "condition_failed"
    assert results[3]["ok"] is True and results[3]["result"]["first"] == 1
    assert results[4]["error"]["code"] == "bad_request"
    read = await memory_log.read("b")
    assert [e.body for e in read.entries] == [1, 4]


async def test_a_multi_whose_every_append_is_refused_is_answered(memory_log: LocalLog) -> None:
    """Nothing reaches the group committer; the refusals still come back at once."""
    results = await multi(memory_log, [append("b", "BAD TYPE", 1), append("b", "ALSO BAD", 2)])
    assert [r["error"]["code"] for r in results] == ["bad_request", "bad_request"]
    assert await memory_log.list_buses() == []


async def test_keys_deduplicate_within_and_across_multis(memory_log: LocalLog) -> None:
    key = ["client-a", 7]
    first = await multi(memory_log, [append("b", "t", "x", key), append("b", "t", "x", key)])
    again = await multi(memory_log, [append("b", "t", "x", key)])
    positions = {r["result"]["first"] for r in (*first, *again)}
    assert positions == {0}
    assert [r["result"].get("duplicate", False) for r in (*first, *again)] == [False, True, True]
    assert (await memory_log.check_tail("b")).tail == 1


async def test_rights_are_checked_per_append(memory_log: LocalLog) -> None:
    voter = memory_log.as_principal(VOTER)
    results = await multi(voter, [append("b", "vote", 1), append("b", "intent", 2)])
    assert results[0]["ok"] is True
    assert results[1]["error"]["code"] == "forbidden"
    assert [e.type for e in (await memory_log.read("b")).entries] == ["vote"]


async def test_rights_are_checked_per_bus_within_a_multi(memory_log: LocalLog) -> None:
    """A type allowed on one bus is not allowed on another because an earlier append of the
    same multi had that type (the node remembers rights per type and bus within a request)."""
    alice = Principal("alice", (Role("agent", frozenset({"note"}), buses=("agent/alice/**",)),))
    ops = [append(bus, "note", n) for n, bus in enumerate(["agent/alice/1", "agent/bob/1"] * 2)]
    results = await multi(memory_log.as_principal(alice), ops)
    assert [r["ok"] for r in results] == [True, False, True, False]
    assert {r["error"]["code"] for r in results[1::2]} == {"forbidden"}
    assert [b.bus for b in await memory_log.list_buses()] == ["agent/alice/1"]
    assert len((await memory_log.read("agent/alice/1")).entries) == 2


@pytest.mark.parametrize(
    ("ops", "error"),
    [
        ([], "bad_request"),
        ("append", "bad_request"),
        ([{"op": "read", "bus": "b"}], "bad_request"),
        ([append("b", "t", 1), {"op": "multi", "ops": []}], "bad_request"),
        ([append("b", "t", 1), 5], "bad_request"),
        ([append("b", "t", i) for i in range(4)], "too_large"),  # 4 entries > max 3
    ],
)
async def test_a_malformed_multi_is_refused_whole(ops: Any, error: str) -> None:
    async with open_memory(Limits(max_batch_entries=3)) as log:
        with trio.fail_after(5):
            with pytest.raises(Exception) as caught:
                await log._call({"op": "multi", "ops": ops})
            assert getattr(caught.value, "code", None) is not None
            assert caught.value.code.value == error  # type: ignore[attr-defined]
            assert await log.list_buses() == []


async def test_the_item_budget_is_shared_by_the_appends_of_a_multi() -> None:
    async with open_memory(Limits(max_batch_items=10)) as log:
        six = list(range(5))  # an array of 5: six items
        results = await multi(log, [append("b", "t", six), append("b", "t", six)])
        assert results[0]["ok"] is True
        assert results[1]["error"]["code"] == "too_large"
        assert (await log.append("b", "t", six)) == 1  # a single append has its own budget


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    request_id=st.integers(0, 2**62),
    ops=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=30),
)
def test_a_multi_frame_decodes_to_its_requests(request_id: int, ops: list[Any]) -> None:
    frame = codec.encode_multi(request_id, [codec.encode_item(op) for op in ops])
    (length,) = codec.HEADER.unpack_from(frame)
    assert length == len(frame) - codec.HEADER.size
    payload = frame[codec.HEADER.size :]
    assert codec.decode_payload(payload) == {"id": request_id, "op": "multi", "ops": ops}
    assert len(payload) <= sum(len(codec.encode_item(op)) for op in ops) + codec.MULTI_OVERHEAD


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(st.tuples(st.text(max_size=8), json_values), min_size=1, max_size=20),
    key=st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 2**63 - 1)),
    expect_tail=st.none() | st.integers(0, 2**63 - 1),
    fence=st.none() | st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 2**63 - 1)),
)
def test_append_items_counts_a_request_as_the_node_does(
    entries: list[tuple[str, Any]],
    key: tuple[str, int],
    expect_tail: int | None,
    fence: tuple[str, int] | None,
) -> None:
    request = _append_request("bus", entries, key, expect_tail, fence)
    assert append_items(request) == item_count(cbor2.dumps(request), 10**9)


@pytest.mark.parametrize(
    "frame",
    [
        {"id": 1, "ok": True, "result": {"results": [{"ok": True, "result": {}}]}},  # too few
        {"id": 1, "ok": True, "result": {"results": "no"}},
        {"id": 1, "ok": True, "result": {"results": [1, 2]}},
        {"id": 1, "ok": True, "result": []},
        {"id": 1, "ok": True},
    ],
)
def test_a_malformed_multi_answer_is_a_retryable_error_for_each_caller(
    frame: dict[str, Any],
) -> None:
    pendings = [_Pending(), _Pending()]
    _Multi(pendings).deliver(frame)
    for pending in pendings:
        assert pending.done
        assert pending.reply is not None and pending.reply["ok"] is False
        assert error_from_wire(pending.reply["error"]).retryable


def test_a_multi_answer_goes_to_each_caller_in_order_and_a_refusal_to_all() -> None:
    pendings = [_Pending(), _Pending()]
    first, second = {"ok": True, "result": {"first": 3}}, {"ok": False, "error": {"code": "x"}}
    _Multi(pendings).deliver({"id": 1, "ok": True, "result": {"results": [first, second]}})
    assert [p.reply for p in pendings] == [first, second]
    refused = {"id": 2, "ok": False, "error": {"code": "overloaded", "message": "busy"}}
    pendings = [_Pending(), _Pending()]
    _Multi(pendings).deliver(refused)
    assert [p.reply for p in pendings] == [refused, refused]
    _Multi(pendings).deliver(None)  # a later answer (here: the connection broke) is ignored
    assert [p.reply for p in pendings] == [refused, refused]
    pendings = [_Pending(), _Pending()]
    _Multi(pendings).deliver(None)  # the connection broke
    assert [p.reply for p in pendings] == [None, None]
