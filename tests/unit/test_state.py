"""Targeted unit tests of ``LogState``: dedup bounds, scan limits, snapshots and error replies.

Commands are written in their replicated form (as Raft and the WAL deliver them) and replies
read in their wire form, so each test also covers the parse and the reply's encoding.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.server import state as state_module
from logact.server.state import LogState


def apply(state: LogState, cmd: dict[str, Any]) -> dict[str, Any]:
    return state.apply_replicated(cmd).to_wire()


def append(
    bus: str = "b",
    types: tuple[str, ...] = ("t",),
    *,
    ts: int = 0,
    key: tuple[str, int] | None = None,
    expect: int | None = None,
    fence: tuple[str, int] | None = None,
    author: str = "me",
    size: int = 1,
) -> dict[str, Any]:
    cmd: dict[str, Any] = {
        "op": "append",
        "bus": bus,
        "entries": [(etype, cbor2.dumps({"n": i}), size) for i, etype in enumerate(types)],
        "author": author,
        "ts": ts,
    }
    if key is not None:
        cmd["key"] = key
    if expect is not None:
        cmd["expect_tail"] = expect
    if fence is not None:
        cmd["fence"] = fence
    return cmd


def test_append_assigns_dense_positions_and_reports_them() -> None:
    s = LogState()
    assert apply(s, append(types=("a", "b", "c"), ts=5)) == {
        "ok": True,
        "first": 0,
        "last": 2,
        "ts": 5,
    }
    assert apply(s, append(ts=7)) == {"ok": True, "first": 3, "last": 3, "ts": 7}
    entries = s.read("b", 0, 100, None, 10**9)["entries"]
    assert [e[0] for e in entries] == [0, 1, 2, 3]
    assert [e[2] for e in entries] == ["a", "b", "c", "t"]
    assert {e[3] for e in entries} == {"me"}


def test_entry_timestamps_never_go_backwards_per_bus() -> None:
    s = LogState()
    apply(s, append(ts=100))
    assert apply(s, append(ts=40))["ts"] == 100
    # Another bus has its own clock.
    assert apply(s, append("other", ts=40))["ts"] == 40


def test_unknown_command_is_a_bad_request_reply_not_an_exception() -> None:
    s = LogState()
    reply = apply(s, {"op": "explode"})
    assert reply["ok"] is False and reply["code"] == "bad_request"
    assert "explode" in reply["message"]
    assert s.summary()["applied"] == 1
    assert s.list_buses() == []


def test_apply_batch_returns_one_reply_per_command_in_order() -> None:
    s = LogState()
    batch = [append(), append(expect=0), {"op": "barrier"}, append(expect=1)]
    replies = [reply.to_wire() for reply in s.apply_replicated_batch(batch)]
    assert [r["ok"] for r in replies] == [True, False, True, True]
    assert replies[1]["code"] == "condition_failed"
    assert replies[1]["details"] == {"tail": 1}
    assert replies[3]["first"] == 1


def test_expect_tail_and_fence_on_a_bus_that_does_not_exist_yet() -> None:
    s = LogState()
    assert apply(s, append("new", expect=1))["code"] == "condition_failed"
    assert apply(s, append("new", fence=("d", 1)))["details"] == {"current_epoch": 0}
    assert s.list_buses() == []  # failed conditional appends do not create the bus
    assert apply(s, append("new", expect=0, fence=("d", 0)))["ok"] is True


def test_fence_is_checked_before_expect_tail() -> None:
    s = LogState()
    apply(s, {"op": "claim", "bus": "b", "name": "d"})
    reply = apply(s, append(expect=5, fence=("d", 0)))
    assert reply["code"] == "fenced"
    assert reply["details"]["current_epoch"] == 1


def test_guarded_types_need_the_fence_once_their_name_is_claimed() -> None:
    s = LogState()
    guarded = {**append(types=("result",)), "guards": ("executor",)}
    assert apply(s, guarded)["ok"]  # nobody holds the bus: nothing to enforce
    apply(s, {"op": "claim", "bus": "b", "name": "executor", "ts": 0})
    refused = apply(s, guarded)
    assert refused["code"] == "fenced" and refused["details"]["current_epoch"] == 1
    assert apply(s, {**guarded, "fence": ("driver", 0)})["code"] == "fenced"  # another name's
    assert apply(s, {**guarded, "fence": ("executor", 1)})["ok"]
    assert apply(s, append(types=("note",)))["ok"]  # unguarded types are not affected


def test_claim_increments_epochs_per_bus_and_name() -> None:
    s = LogState()
    assert apply(s, {"op": "claim", "bus": "b", "name": "d"})["epoch"] == 1
    assert apply(s, {"op": "claim", "bus": "b", "name": "d"})["epoch"] == 2
    assert apply(s, {"op": "claim", "bus": "b", "name": "e"})["epoch"] == 1
    assert apply(s, {"op": "claim", "bus": "c", "name": "d"})["epoch"] == 1
    assert s.epoch("b", "d") == 2 and s.epoch("zzz", "d") == 0
    # A claim creates an (empty) bus.
    assert s.tail("c") == {"ok": True, "tail": 0, "trim": 0, "exists": True}
    assert apply(s, append(fence=("d", 1)))["code"] == "fenced"
    assert apply(s, append(fence=("d", 2)))["ok"] is True


def test_trim_rules() -> None:
    s = LogState()
    assert apply(s, {"op": "trim", "bus": "b", "before": 0})["code"] == "unknown_bus"
    apply(s, append(types=("t",) * 5, size=3))
    reply = apply(s, {"op": "trim", "bus": "b", "before": 6})
    assert reply["code"] == "bad_request" and reply["details"] == {"tail": 5}
    assert apply(s, {"op": "trim", "bus": "b", "before": 2}) == {"ok": True, "trim": 2, "tail": 5}
    # Trimming below the current trim point is a no-op, not an error.
    assert apply(s, {"op": "trim", "bus": "b", "before": 1}) == {"ok": True, "trim": 2, "tail": 5}
    assert s.list_buses() == [{"bus": "b", "tail": 5, "trim": 2, "bytes": 9}]
    reply = s.read("b", 1, 10, None, 100)
    assert reply["code"] == "trimmed" and reply["details"] == {"trim": 2}
    # Trim everything: the bus stays, empty, and appends continue at the tail.
    assert apply(s, {"op": "trim", "bus": "b", "before": 5}) == {"ok": True, "trim": 5, "tail": 5}
    assert s.read("b", 5, 10, None, 100)["entries"] == []
    assert apply(s, append())["first"] == 5
    assert s.list_buses() == [{"bus": "b", "tail": 6, "trim": 5, "bytes": 1}]


def test_read_unknown_bus_and_beyond_the_tail() -> None:
    s = LogState()
    assert s.read("nope", 0, 1, None, 1)["code"] == "unknown_bus"
    apply(s, append(types=("t", "t")))
    reply = s.read("b", 7, 10, None, 100)
    assert reply["ok"] and reply["entries"] == [] and reply["tail"] == 2
    assert reply["next"] >= 2


def test_read_first_entry_is_returned_even_if_larger_than_max_bytes() -> None:
    s = LogState()
    apply(s, append(types=("t", "t"), size=50))
    reply = s.read("b", 0, 10, None, 10)
    assert [e[0] for e in reply["entries"]] == [0]
    assert reply["next"] == 1


def test_filtered_read_scans_at_most_max_scan_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_SCAN", 5)
    s = LogState()
    apply(s, append(types=("noise",) * 12 + ("wanted",)))
    seen: list[int] = []
    start = 0
    for _ in range(10):
        reply = s.read("b", start, 100, frozenset({"wanted"}), 10**6)
        seen += [e[0] for e in reply["entries"]]
        assert reply["next"] > start  # a continuation always makes progress
        start = reply["next"]
        if start >= reply["tail"]:
            break
    assert seen == [12]
    first = s.read("b", 0, 100, frozenset({"wanted"}), 10**6)
    assert first["entries"] == [] and first["next"] == 5


def test_dedup_retry_returns_original_reply_marked_duplicate() -> None:
    s = LogState()
    first = apply(s, append(key=("c", 0), ts=10))
    apply(s, append(ts=20))
    retry = apply(s, append("elsewhere", ("x", "y"), key=("c", 0), ts=30))
    assert retry == {**first, "duplicate": True}
    assert s.tail("b")["tail"] == 2 and s.tail("elsewhere")["exists"] is False


def test_dedup_retry_wins_over_conditions_that_now_fail() -> None:
    """An acknowledged-but-lost append retried after the tail moved must not fail."""
    s = LogState()
    apply(s, {"op": "claim", "bus": "b", "name": "d"})
    first = apply(s, append(key=("c", 0), expect=0, fence=("d", 1)))
    apply(s, {"op": "claim", "bus": "b", "name": "d"})
    retry = apply(s, append(key=("c", 0), expect=0, fence=("d", 1)))
    assert retry == {**first, "duplicate": True}


def test_failed_keyed_append_is_not_remembered() -> None:
    s = LogState()
    assert apply(s, append(key=("c", 0), expect=3))["ok"] is False
    reply = apply(s, append(key=("c", 0), expect=0))
    assert reply["ok"] is True and "duplicate" not in reply
    assert s.tail("b")["tail"] == 1


def test_dedup_window_forgets_old_keys_and_reports_them_expired() -> None:
    s = LogState(dedup_window=3)
    replies = [apply(s, append(key=("c", seq))) for seq in range(5)]
    for seq in (2, 3, 4):
        assert apply(s, append(key=("c", seq))) == {**replies[seq], "duplicate": True}
    for seq in (0, 1):
        reply = apply(s, append(key=("c", seq)))
        assert reply["ok"] is False and reply["code"] == "condition_failed"
        assert reply["details"] == {"reason": "key_expired"}
    assert s.tail("b")["tail"] == 5
    # The window is per client.
    assert apply(s, append(key=("other", 0)))["first"] == 5


@settings(max_examples=100, deadline=None)
@given(
    window=st.integers(min_value=1, max_value=6),
    count=st.integers(min_value=1, max_value=15),
    data=st.data(),
)
def test_dedup_window_property(window: int, count: int, data: st.DataObject) -> None:
    s = LogState(dedup_window=window)
    replies = [apply(s, append(key=("c", seq), ts=seq)) for seq in range(count)]
    retries = data.draw(st.lists(st.integers(min_value=0, max_value=count - 1), max_size=10))
    for seq in retries:
        reply = apply(s, append(key=("c", seq), ts=count))
        if seq >= count - window:
            assert reply == {**replies[seq], "duplicate": True}
        else:
            # Never a silent duplicate: either remembered or explicitly expired.
            assert reply["ok"] is False and reply["details"]["reason"] == "key_expired"
    assert s.tail("b")["tail"] == count


def test_dedup_clients_expire_after_the_ttl() -> None:
    s = LogState(dedup_ttl_ms=100)
    first = apply(s, append(key=("old", 0), ts=1000))
    apply(s, append(key=("young", 0), ts=1050))
    # Exactly at the TTL the client is still remembered ...
    apply(s, append(ts=1100))
    assert s.summary()["dedup_clients"] == 2
    assert apply(s, append(key=("old", 0), ts=1100)) == {**first, "duplicate": True}
    # ... a retry refreshes it; once idle longer than the TTL it is forgotten.
    apply(s, append(ts=1201))
    assert list(s.clients) == []
    assert s.summary()["dedup_clients"] == 0


def test_dedup_keeps_at_most_max_clients_least_recently_used_first() -> None:
    s = LogState(dedup_max_clients=2)
    a = apply(s, append(key=("a", 0)))
    apply(s, append(key=("b", 0)))
    apply(s, append(key=("a", 1)))  # touches a: b is now least recently used
    apply(s, append(key=("c", 0)))
    assert list(s.clients) == ["me/a", "me/c"]  # keys are scoped by the author
    assert apply(s, append(key=("a", 0))) == {**a, "duplicate": True}


def test_snapshot_roundtrip_keeps_dedup_window_and_settings() -> None:
    s = LogState(dedup_window=2, dedup_ttl_ms=500, dedup_max_clients=7)
    for seq in range(4):
        apply(s, append(key=("c", seq), ts=seq))
    apply(s, {"op": "claim", "bus": "b", "name": "d"})
    apply(s, {"op": "trim", "bus": "b", "before": 1})
    restored = LogState.from_snapshot(cbor2.loads(cbor2.dumps(s.to_snapshot())))
    assert (restored.dedup_window, restored.dedup_ttl_ms, restored.dedup_max_clients) == (
        2,
        500,
        7,
    )
    assert apply(restored, append(key=("c", 0), ts=5))["details"] == {"reason": "key_expired"}
    assert apply(restored, append(key=("c", 3), ts=5))["duplicate"] is True
    assert restored.epoch("b", "d") == 1
    assert restored.summary() == {**s.summary(), "applied": s.summary()["applied"] + 2}
    assert isinstance(restored.buses["b"].entries[0], tuple)


def test_from_snapshot_rejects_unknown_versions() -> None:
    image = LogState().to_snapshot()
    with pytest.raises(ValueError, match="version"):
        LogState.from_snapshot({**image, "v": 1})  # bodies were not yet stored encoded
    with pytest.raises(ValueError, match="version"):
        LogState.from_snapshot({**image, "v": 3})
    with pytest.raises(ValueError, match="version"):
        LogState.from_snapshot({})


def test_snapshot_image_is_not_changed_by_later_commands() -> None:
    """The image may be encoded later (outside the lock) while commands keep applying."""
    s = LogState()
    apply(s, append())
    apply(s, {"op": "claim", "bus": "b", "name": "d"})
    image = s.to_snapshot()
    encoded = cbor2.dumps(image)
    apply(s, append())
    apply(s, {"op": "claim", "bus": "b", "name": "d"})
    assert cbor2.dumps(image) == encoded


def test_dedup_keys_are_scoped_by_principal() -> None:
    """The same client id under another principal is a different key: no replayed results."""
    s = LogState()
    mine = apply(s, append(key=("shared", 0)))
    theirs = apply(s, append(key=("shared", 0), author="other"))
    assert theirs["ok"] and not theirs.get("duplicate")
    assert theirs["first"] == mine["first"] + 1


def test_quotas_of_live_bytes_per_bus_author_and_log() -> None:
    s = LogState()

    def sized(bus: str, author: str, size: int) -> dict[str, Any]:
        return {**append(bus, author=author, size=size), "quota": (100, 150, 200)}

    assert apply(s, sized("b", "x", 60))["ok"]
    over_bus = apply(s, sized("b", "y", 50))
    assert over_bus["code"] == "quota_exceeded" and "the bus holds 60" in over_bus["message"]
    assert apply(s, sized("c", "x", 80))["ok"]  # x: 140 of 150
    assert apply(s, sized("d", "x", 20))["code"] == "quota_exceeded"  # author
    assert apply(s, sized("d", "y", 60))["ok"]  # log: 200 of 200
    assert "the log holds 200" in apply(s, sized("e", "z", 1))["message"]
    # Trimming frees bytes for everyone, by author; a snapshot keeps the accounting.
    assert apply(s, {"op": "trim", "bus": "b", "before": 1, "ts": 1})["ok"]
    assert (s.author_bytes, s.live_bytes) == ({"x": 80, "y": 60}, 140)
    restored = LogState.from_snapshot(s.to_snapshot())
    assert (restored.author_bytes, restored.live_bytes) == ({"x": 80, "y": 60}, 140)
    assert apply(restored, sized("e", "z", 60))["ok"]
    assert restored.summary()["bytes"] == 200
