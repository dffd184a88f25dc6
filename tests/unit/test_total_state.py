"""The replicated apply is total: no command, however malformed, makes ``LogState`` raise.

Raft retries an entry whose apply raises on every tick, forever, on every node: one such
command stopped the cluster for good (issue 13: a 5,000-digit fence epoch). Generated commands
mix well-formed ones with arbitrary maps over the command schema's keys and every kind of value
(huge integers, deep nesting, NaN, CBOR specials); two replicas applying the same sequence
must end byte-identical, and still serve a normal append afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.protocol.errors import BadRequest
from logact.server import commands
from logact.server.command_types import Claim, Reply
from logact.server.embedded import WAL
from logact.server.local import open_embedded
from logact.server.state import LogState
from logact.server.storage import RecordFile

POISON = {
    "op": "append",
    "bus": "b",
    "entries": [("mail", cbor2.dumps({"x": 1}), 9)],
    "author": "mailer",
    "ts": 1,
    "fence": ("driver", 10**5000),
}

KEYS = ["op", "bus", "entries", "author", "ts", "key", "fence", "expect_tail", "before", "name"]
specials = st.one_of(
    st.just(cbor2.undefined),
    st.just(cbor2.CBORSimpleValue(99)),
    st.builds(lambda: cbor2.CBORTag(30, [1, 3])),
    st.just(float("nan")),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.builds(lambda sign: sign * 10**5000, st.sampled_from([1, -1])),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from(["append", "trim", "claim", "barrier", "b", "driver"]),
    specials,
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.tuples(st.text(max_size=6), children, children),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4),
    ),
    max_leaves=12,
)
arbitrary = st.dictionaries(st.sampled_from(KEYS), values, max_size=8) | values
well_formed = st.builds(
    lambda bus, n, epoch, ts: {
        "op": "append",
        "bus": bus,
        "entries": [("t", {"n": n}, 6)],
        "author": "a",
        "ts": ts,
        **({"fence": ("driver", epoch)} if epoch is not None else {}),
    },
    st.sampled_from(["b", "c"]),
    st.integers(0, 9),
    st.none() | st.integers(0, 2),
    st.integers(0, 10**6),
) | st.builds(
    lambda bus, name: {"op": "claim", "bus": bus, "name": name, "ts": 1},
    st.sampled_from(["b", "c"]),
    st.just("driver"),
)


def image(state: LogState) -> bytes:
    return cbor2.dumps(state.to_snapshot(), canonical=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(well_formed | arbitrary, max_size=12))
def test_any_command_sequence_applies_alike_and_never_raises(cmds: list[Any]) -> None:
    one, two = LogState(), LogState()
    for cmd in cmds:
        reply = one.apply_replicated(cmd).to_wire()
        assert isinstance(reply["ok"], bool)
        if not reply["ok"]:
            assert isinstance(reply["code"], str) and isinstance(reply["message"], str)
        assert two.apply_replicated(cmd).to_wire() == reply
    assert image(one) == image(two)
    # The state machine still works after whatever came before.
    assert one.apply_replicated({"op": "claim", "bus": "z", "name": "n", "ts": 2}).to_wire()["ok"]
    assert one.apply_replicated_batch("not a batch")[0].to_wire()["ok"] is False


def test_the_poison_pill_is_refused_at_the_edge_and_answered_in_the_log() -> None:
    request = {"bus": "b", "entries": [{"type": "mail", "body": b"\xa0"}], "fence": ["d", 10**5000]}
    with pytest.raises(BadRequest, match="epoch in"):
        commands.append_command(request, "mailer", 1, commands.Limits(), lambda t: True)
    # An older version let it into the journal: replaying it answers with an error and moves on.
    state = LogState()
    reply = state.apply_replicated(POISON).to_wire()
    assert reply["ok"] is False and reply["code"] == "bad_request"
    assert "fence" in reply["message"]
    assert state.apply_replicated({**POISON, "fence": ("driver", 0)}).to_wire()["ok"] is True


def test_an_unexpected_error_in_apply_is_a_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    state = LogState()

    def explode(cmd: Claim) -> Reply:
        raise ZeroDivisionError

    monkeypatch.setattr(state, "_claim", explode)
    reply = state.apply(Claim("b", "d", 1)).to_wire()
    assert reply == {
        "ok": False,
        "code": "bad_request",
        "message": "the command could not be applied (ZeroDivisionError)",
    }


async def test_an_embedded_node_restarts_past_a_poison_pill_in_its_wal(tmp_path: Path) -> None:
    wal = RecordFile(tmp_path / WAL)
    unfenced = {key: value for key, value in POISON.items() if key != "fence"}
    wal.append(cbor2.dumps([1, [POISON, unfenced]]))
    wal.close()
    with trio.fail_after(10):
        async with open_embedded(tmp_path) as log:
            assert [e.body for e in await log.read_all("b")] == [{"x": 1}]
            await log.append("b", "note", {"y": 2})
            assert (await log.check_tail("b")).tail == 2
