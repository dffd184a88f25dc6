"""Request validation: every malformed field is a typed error, every good request a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.protocol.errors import BadRequest, Forbidden, LogError, TooLarge
from logact.server import commands
from logact.server.command_types import Append, Claim, NewEntry, Quota, Trim
from logact.server.commands import Limits, append_command, claim_command, trim_command

LIMITS = Limits()
GOOD_BUS = st.from_regex(r"[A-Za-z0-9._/-]{1,256}", fullmatch=True)
GOOD_TYPE = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
GOOD_NAME = st.from_regex(r"[A-Za-z0-9_.:/-]{1,128}", fullmatch=True)


def request(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "op": "append",
        "bus": "b",
        "entries": [entry("t", 1)],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def entry(etype: str, value: Any) -> dict[str, Any]:
    return {"type": etype, "body": cbor2.dumps(value)}


def allow_all(etype: str) -> bool:
    return True


def build(
    req: dict[str, Any],
    limits: Limits = LIMITS,
    may_append: Callable[[str], bool] = allow_all,
) -> Append:
    return append_command(req, "alice", 1234, limits, may_append)


def types_of(cmd: Append) -> set[str]:
    return {entry.type for entry in cmd.entries}


# ---------------------------------------------------------------- good requests


def test_minimal_append_command() -> None:
    cmd = build(
        request(
            entries=[
                entry("a", None),
                entry("b", [1]),
            ]
        )
    )
    assert cmd == Append(
        bus="b",
        entries=(NewEntry("a", b"\xf6", 1), NewEntry("b", b"\x81\x01", 2)),
        author="alice",
        ts=1234,
        quota=Quota(256 * 2**20, 2**30, 4 * 2**30),
    )
    assert types_of(cmd) == {"a", "b"}


def test_optional_fields_are_carried_as_tuples() -> None:
    cmd = build(request(key=["client", 7], expect_tail=3, fence=["driver", 2]))
    assert cmd.key == ("client", 7)
    assert cmd.expect_tail == 3
    assert cmd.fence == ("driver", 2)


def test_none_means_absent_for_optional_fields() -> None:
    cmd = build(request(key=None, expect_tail=None, fence=None))
    assert cmd.key is None and cmd.expect_tail is None and cmd.fence is None


def test_author_comes_from_the_principal_not_the_request() -> None:
    cmd = build(request(author="mallory"))
    assert cmd.author == "alice"


WIRE_INT = st.integers(min_value=-(2**64), max_value=2**64 - 1)


@settings(max_examples=150, deadline=None)
@given(
    bus=GOOD_BUS,
    etypes=st.lists(GOOD_TYPE, min_size=1, max_size=5),
    body=st.none() | WIRE_INT | st.text(max_size=30) | st.lists(WIRE_INT, max_size=5),
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    expect=st.integers(min_value=0, max_value=2**63 - 1),
    fence_name=GOOD_NAME,
    epoch=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_every_well_formed_append_is_accepted(
    bus: str, etypes: list[str], body: Any, seq: int, expect: int, fence_name: str, epoch: int
) -> None:
    req = request(
        bus=bus,
        entries=[{"type": t, "body": cbor2.dumps(body)} for t in etypes],
        key=["c", seq],
        expect_tail=expect,
        fence=[fence_name, epoch],
    )
    cmd = build(req)
    assert cmd.bus == bus
    assert [e.type for e in cmd.entries] == etypes
    assert all(e.size == len(cbor2.dumps(body)) for e in cmd.entries)
    assert types_of(cmd) == set(etypes)
    assert cmd.key == ("c", seq) and cmd.expect_tail == expect
    assert cmd.fence == (fence_name, epoch)


def test_trim_and_claim_commands() -> None:
    assert trim_command({"bus": "x/y", "before": 5}, 9) == Trim("x/y", 5, 9)
    assert claim_command({"bus": "x", "name": "driver:1"}, 9) == Claim("x", "driver:1", 9)


# ---------------------------------------------------------------- bus ids

BAD_BUSES: list[Any] = [
    "",
    "a" * 257,
    "has space",
    "tab\t",
    "new\nline",
    "trailing\n",
    "ünïcode",
    "semi;colon",
    "colon:",  # ':' is allowed in names, not in bus ids
    "é",
    "a\x00b",
    5,
    5.0,
    True,
    b"bytes",
    ["b"],
    {"b": 1},
]


@pytest.mark.parametrize("bus", BAD_BUSES)
def test_bad_bus_ids_are_rejected_everywhere(bus: Any) -> None:
    with pytest.raises(BadRequest):
        build(request(bus=bus))
    with pytest.raises(BadRequest):
        trim_command({"bus": bus, "before": 0}, 0)
    with pytest.raises(BadRequest):
        claim_command({"bus": bus, "name": "n"}, 0)


@pytest.mark.parametrize("bus", ["a", "a" * 256, "A.b_c-d/e", "0", ".", "../x", "a//b"])
def test_bus_id_edges_accepted(bus: str) -> None:
    assert build(request(bus=bus)).bus == bus


BUS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-"


@settings(max_examples=200, deadline=None)
@given(
    bus=st.text(max_size=300)
    | st.text(alphabet=BUS_CHARS, max_size=300)
    | st.text(alphabet=BUS_CHARS + " :\n\x00é", max_size=20)
)
def test_bus_ids_accepted_exactly_when_they_match_the_grammar(bus: str) -> None:
    allowed = set(BUS_CHARS)
    good = 1 <= len(bus) <= 256 and set(bus) <= allowed
    try:
        commands.bus_id({"bus": bus})
    except BadRequest:
        assert not good
    else:
        assert good


def test_missing_bus() -> None:
    with pytest.raises(BadRequest, match="missing field 'bus'"):
        build(request(bus=...))
    with pytest.raises(BadRequest, match="missing field 'bus'"):
        build(request(bus=None))


# ---------------------------------------------------------------- entries


@pytest.mark.parametrize(
    "entries",
    [
        ...,
        None,
        [],
        {},
        "entries",
        entry("t", 1),
        [1],
        [None],
        ["t"],
        [["t", 1]],
        [{"body": cbor2.dumps(1)}],
        [{"type": None, "body": cbor2.dumps(1)}],
        [{"type": "t"}],
        [entry("", 1)],
        [{"type": "a" * 65, "body": cbor2.dumps(1)}],
        [entry("has space", 1)],
        [entry("a/b", 1)],
        [entry("a:b", 1)],
        [{"type": 5, "body": cbor2.dumps(1)}],
        [{"type": True, "body": cbor2.dumps(1)}],
        [{"type": b"t", "body": cbor2.dumps(1)}],
        [entry("t", 1), entry("bad type", 2)],
        [{"type": "t", "body": 1}],
        [{"type": "t", "body": bytearray(b"\x01")}],
        [{"type": "t", "body": b""}],
        [{"type": "t", "body": b"\x01\x02"}],
        [{"type": "t", "body": b"\xff"}],
        [{"type": "t", "body": b"\xc1\x01"}],
        [{"type": "t", "body": b"\xf7"}],
        [{"type": "t", "body": b"\xa1\x01\x02"}],
        [{"type": "t", "body": b"\x9f\xff"}],
        [{"type": "t", "body": cbor2.dumps(float("nan"))}],
        [{"type": "t", "body": b"\x81" * 40 + b"\x00"}],
    ],
)
def test_malformed_entries_are_bad_requests(entries: Any) -> None:
    with pytest.raises(BadRequest):
        build(request(entries=entries))


def test_a_body_outside_the_data_model_names_the_entry() -> None:
    tagged = cbor2.dumps(cbor2.CBORTag(30, [1, 3]))
    with pytest.raises(BadRequest, match="entry 1: CBOR tags are not accepted"):
        build(request(entries=[{"type": "t", "body": b"\x01"}, {"type": "t", "body": tagged}]))
    with pytest.raises(BadRequest, match="entry 0: floats must be finite"):
        build(request(entries=[{"type": "t", "body": cbor2.dumps([float("inf")])}]))


def test_entry_type_edges() -> None:
    cmd = build(
        request(
            entries=[
                entry("a" * 64, 1),
                entry("A.b_c-9", 1),
            ]
        )
    )
    assert types_of(cmd) == {"a" * 64, "A.b_c-9"}


def test_size_limits() -> None:
    limits = Limits(max_entry_bytes=10, max_batch_entries=3, max_batch_bytes=25)
    body9 = b"x" * 8  # 1 header byte + 8 = 9 bytes encoded
    assert len(cbor2.dumps(body9)) == 9
    body10 = b"x" * 9
    body11 = b"x" * 10
    # At the limits: accepted.
    build(request(entries=[entry("t", body10)]), limits)
    build(
        request(
            entries=[
                entry("t", body10),
                entry("t", body9),
            ]
        ),
        limits,
    )
    build(
        request(
            entries=[
                entry("t", body9),
                entry("t", body9),
            ]
        ),
        limits,
    )
    with pytest.raises(TooLarge, match="entry 0 is over the limit of 10 bytes"):
        build(request(entries=[entry("t", body11)]), limits)
    with pytest.raises(TooLarge, match="at most 3 entries"):
        build(request(entries=[entry("t", 1)] * 4), limits)
    build(request(entries=[entry("t", 1)] * 3), limits)
    with pytest.raises(TooLarge, match="batch is over the limit of 25 bytes"):
        build(request(entries=[entry("t", body9)] * 3), limits)


def test_too_large_is_not_a_bad_request() -> None:
    limits = Limits(max_entry_bytes=1)
    with pytest.raises(TooLarge) as info:
        build(request(entries=[entry("t", "xx")]), limits)
    assert not isinstance(info.value, BadRequest)
    assert info.value.code.value == "too_large"


# ---------------------------------------------------------------- ACL and body sizing


def only(*types: str) -> Callable[[str], bool]:
    return lambda etype: etype in types


def test_acl_is_checked_for_every_entry_type() -> None:
    entries = [entry("vote", 1), entry("commit", 2)]
    with pytest.raises(Forbidden, match=r"'alice' may not append \['commit'\]"):
        build(request(entries=entries), may_append=only("vote"))
    cmd = build(request(entries=entries), may_append=only("vote", "commit"))
    assert types_of(cmd) == {"vote", "commit"}


def test_acl_is_checked_before_any_body_is_examined() -> None:
    garbage = {"type": "commit", "body": b"\xff"}
    huge = entry("commit", b"x" * 100)
    for bad in (garbage, huge):
        with pytest.raises(Forbidden):
            build(request(entries=[bad]), Limits(max_entry_bytes=10), only("vote"))


def test_request_shape_is_checked_before_the_acl() -> None:
    with pytest.raises(BadRequest):
        build(request(entries=[entry("bad type", 1)]), may_append=only())
    with pytest.raises(BadRequest):
        build(request(bus="bad bus"), may_append=only())


@settings(max_examples=150, deadline=None)
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**64), max_value=2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
        | st.binary(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=4),
        max_leaves=15,
    ),
)
def test_any_body_of_the_data_model_is_stored_as_sent(body: Any) -> None:
    encoded = cbor2.dumps(body)
    cmd = build(request(entries=[{"type": "t", "body": encoded}]))
    assert cmd.entries == (NewEntry("t", encoded, len(encoded)),)


def test_bodies_of_many_items_are_too_large_before_they_are_decoded() -> None:
    limits = Limits(max_batch_items=100)
    at_limit = cbor2.dumps([{}] * 99)  # the array and its 99 maps
    assert build(request(entries=[{"type": "t", "body": at_limit}]), limits).entries
    over = cbor2.dumps([{}] * 100)
    with pytest.raises(TooLarge, match="entry 0: the bodies of one append hold at most 100"):
        build(request(entries=[{"type": "t", "body": over}]), limits)
    # The limit is for the whole append: two halves are as many items as one whole.
    half = {"type": "t", "body": cbor2.dumps([{}] * 49)}
    assert build(request(entries=[half, half]), limits).entries
    with pytest.raises(TooLarge, match="entry 2: the bodies"):
        build(request(entries=[half, half, {"type": "t", "body": b"\x01"}]), limits)
    # The count reads headers only: a declared length far beyond the bytes is cut off early.
    claims_a_billion = b"\x9a\x3b\x9a\xca\x00" + b"\xa0" * 200
    with pytest.raises(TooLarge):
        build(request(entries=[{"type": "t", "body": claims_a_billion}]), limits)


def test_shared_reference_bomb_is_refused_without_expanding_it() -> None:
    # Tags 28/29 (value sharing) let a few hundred bytes decode into a huge DAG.
    dag: Any = ["x" * 100]
    for _ in range(14):  # tag and array: 28 levels, within the depth limit
        dag = [dag, dag]
    body = cbor2.dumps(dag, value_sharing=True)
    assert len(body) < 1_000
    with pytest.raises(BadRequest, match="tags are not accepted"):
        build(request(entries=[{"type": "t", "body": body}]))


def test_limits_frame_size_and_wire_form() -> None:
    limits = Limits(max_entry_bytes=10, max_batch_entries=3, max_batch_bytes=100)
    assert limits.max_frame > limits.max_batch_bytes
    assert limits.to_wire() == {
        "max_frame": limits.max_frame,
        "max_frame_items": 8 * 3 + 1024,
        "max_entry_bytes": 10,
        "max_batch_items": 65536,
        "max_batch_entries": 3,
        "max_batch_bytes": 100,
    }


# ---------------------------------------------------------------- key / expect_tail / fence

BAD_KEYS: list[Any] = [
    "c",
    5,
    True,
    {"c": 1},
    ("c", 1),  # a tuple is not a CBOR array as decoded from the wire
    [],
    ["c"],
    ["c", 1, 2],
    ["", 1],
    ["x" * 129, 1],
    [1, 1],
    [None, 1],
    ["c", -1],
    ["c", 2**63],
    ["c", True],
    ["c", False],
    ["c", 1.0],
    ["c", "1"],
    ["c", None],
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys(key: Any) -> None:
    with pytest.raises(BadRequest):
        build(request(key=key))


@pytest.mark.parametrize("key", [["c", 0], ["x" * 128, 2**63 - 1], ["any chars ✓", 5]])
def test_key_edges_accepted(key: list[Any]) -> None:
    assert build(request(key=key)).key == tuple(key)


@pytest.mark.parametrize("expect", [-1, 2**63, True, False, 1.0, "1", [1], b"1"])
def test_bad_expect_tail(expect: Any) -> None:
    with pytest.raises(BadRequest):
        build(request(expect_tail=expect))


@pytest.mark.parametrize("expect", [0, 2**63 - 1])
def test_expect_tail_edges(expect: int) -> None:
    assert build(request(expect_tail=expect)).expect_tail == expect


BAD_FENCES: list[Any] = [
    "driver",
    1,
    True,
    ("driver", 1),
    [],
    ["driver"],
    ["driver", 1, 2],
    ["", 1],
    ["x" * 129, 1],
    ["bad name", 1],
    [1, 1],
    ["driver", -1],
    ["driver", True],
    ["driver", 1.0],
    ["driver", "1"],
    ["driver", None],
]


@pytest.mark.parametrize("fence", BAD_FENCES)
def test_bad_fences(fence: Any) -> None:
    with pytest.raises(BadRequest):
        build(request(fence=fence))


# ---------------------------------------------------------------- trim / claim fields


@pytest.mark.parametrize("before", [..., None, -1, 2**63, True, 1.5, "3", [3]])
def test_bad_trim_position(before: Any) -> None:
    req = {"bus": "b", "before": before}
    if before is ...:
        del req["before"]
    with pytest.raises(BadRequest):
        trim_command(req, 0)


@pytest.mark.parametrize(
    "name", [..., None, "", "x" * 129, "has space", "ü", 5, True, ["n"], "new\nline"]
)
def test_bad_claim_names(name: Any) -> None:
    req = {"bus": "b", "name": name}
    if name is ...:
        del req["name"]
    with pytest.raises(BadRequest):
        claim_command(req, 0)


# ---------------------------------------------------------------- helpers


def test_field_rejects_bool_for_int_but_accepts_it_for_bool() -> None:
    with pytest.raises(BadRequest, match="not bool"):
        commands.field({"n": True}, "n", int)
    assert commands.field({"n": True}, "n", bool) is True
    assert commands.field({}, "n", bool, False) is False
    assert commands.field({"n": None}, "n", int, 4) == 4
    with pytest.raises(BadRequest, match="must be int or str, not float"):
        commands.field({"n": 1.0}, "n", (int, str))


@pytest.mark.parametrize(
    "types", [[], "t", ["t", ""], ["bad type"], [1], [None], ("t",), {"t": 1}, ["a" * 65]]
)
def test_bad_type_filters(types: Any) -> None:
    with pytest.raises(BadRequest):
        commands.types_filter({"types": types})


def test_type_filter_values() -> None:
    assert commands.types_filter({}) is None
    assert commands.types_filter({"types": None}) is None
    assert commands.types_filter({"types": ["a", "b", "a"]}) == frozenset({"a", "b"})


@settings(max_examples=200, deadline=None)
@given(
    req=st.dictionaries(
        st.sampled_from(["bus", "entries", "key", "expect_tail", "fence", "op"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**64), max_value=2**64),
            st.floats(),
            st.text(max_size=5),
            st.binary(max_size=5),
            st.lists(
                st.one_of(
                    st.integers(),
                    st.text(max_size=5),
                    st.fixed_dictionaries(
                        {}, optional={"type": st.text(max_size=5), "body": st.binary(max_size=5)}
                    ),
                ),
                max_size=3,
            ),
        ),
    )
)
def test_fuzzed_requests_raise_only_typed_errors(req: dict[str, Any]) -> None:
    for make in (
        lambda: build(req, Limits(max_batch_entries=2)),
        lambda: trim_command(req, 0),
        lambda: claim_command(req, 0),
    ):
        try:
            make()
        except LogError as exc:
            assert isinstance(exc, BadRequest | TooLarge)
            assert exc.message
