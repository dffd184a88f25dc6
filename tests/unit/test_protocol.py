"""Framing and codec: round trips, arbitrary stream splits, fuzzed garbage, typed errors."""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.protocol import errors
from logact.protocol.codec import (
    HEADER,
    MAX_FRAME,
    BadFrame,
    Entry,
    FrameDecoder,
    FrameTooLarge,
    decode_payload,
    encode,
)
from logact.protocol.errors import ErrorCode, LogError, error_from_wire

FUZZ = settings(max_examples=200, deadline=None)
FEWER = settings(max_examples=100, deadline=None)

# Values of the wire's data model, which survive a CBOR round trip unchanged (no tuples: they
# come back as lists).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=4), children, max_size=3),
    ),
    max_leaves=10,
)
messages = st.dictionaries(st.text(max_size=6), values, max_size=4)
# Cheaper messages for the stream tests, which draw several per example.
small_values = st.recursive(scalars, lambda children: st.lists(children, max_size=3), max_leaves=4)
small_messages = st.dictionaries(st.text(max_size=6), small_values, max_size=3)


def drain(decoder: FrameDecoder) -> list[dict[str, Any] | BadFrame]:
    return list(decoder.frames())


def normalise(items: list[dict[str, Any] | BadFrame]) -> list[Any]:
    """Make decoder output comparable (BadFrame instances compare by identity)."""
    return [("bad", str(item)) if isinstance(item, BadFrame) else item for item in items]


@FEWER
@given(message=messages)
def test_encode_decode_roundtrip(message: dict[str, Any]) -> None:
    frame = encode(message)
    (length,) = HEADER.unpack_from(frame)
    assert length == len(frame) - HEADER.size
    assert decode_payload(frame[HEADER.size :]) == message
    decoder = FrameDecoder()
    decoder.feed(frame)
    assert drain(decoder) == [message]
    assert decoder.buffered == 0


@FEWER
@given(batch=st.lists(small_messages, max_size=6), data=st.data())
def test_stream_split_at_arbitrary_boundaries(
    batch: list[dict[str, Any]], data: st.DataObject
) -> None:
    stream = b"".join(encode(m) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12)))
    decoder = FrameDecoder()
    out: list[dict[str, Any] | BadFrame] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[previous:cut])
        out += drain(decoder)
        previous = cut
    assert out == batch
    assert decoder.buffered == 0


@FEWER
@given(batch=st.lists(small_messages, min_size=1, max_size=4))
def test_stream_fed_one_byte_at_a_time(batch: list[dict[str, Any]]) -> None:
    stream = b"".join(encode(m) for m in batch)
    decoder = FrameDecoder()
    out: list[dict[str, Any] | BadFrame] = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        out += drain(decoder)
        # Nothing is yielded before the last byte of its frame has arrived.
        assert len(out) <= len(batch)
    assert out == batch


def test_incomplete_frame_yields_nothing_and_stays_buffered() -> None:
    frame = encode({"op": "ping"})
    decoder = FrameDecoder()
    decoder.feed(frame[:-1])
    assert drain(decoder) == []
    assert decoder.buffered == len(frame) - 1
    decoder.feed(frame[-1:])
    assert drain(decoder) == [{"op": "ping"}]


def test_header_only_and_partial_header() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")
    assert drain(decoder) == []
    decoder.feed(b"\x00\x00")  # a complete frame with an empty payload
    [item] = drain(decoder)
    assert isinstance(item, BadFrame)
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    "payload",
    [
        cbor2.dumps([1, 2]),
        cbor2.dumps("text"),
        cbor2.dumps(5),
        cbor2.dumps(None),
        b"\xff",  # a lone break
        b"\x1c",  # reserved additional information
        b"\xa1\x00",  # a map missing its value
        b"\x7f\x61",  # an unterminated indefinite-length string
        b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff",  # a byte string claiming ~2**63 bytes
        b"\x81" * 10_000 + b"\x00",  # nesting deeper than any decoder recursion limit
    ],
)
def test_bad_payloads_become_badframe_and_keep_the_stream_in_sync(payload: bytes) -> None:
    with pytest.raises(BadFrame):
        decode_payload(payload)
    decoder = FrameDecoder()
    decoder.feed(HEADER.pack(len(payload)) + payload + encode({"after": True}))
    items = drain(decoder)
    assert len(items) == 2
    assert isinstance(items[0], BadFrame)
    assert items[1] == {"after": True}


@FEWER
@given(message=small_messages, trailing=st.binary(min_size=1, max_size=20))
def test_trailing_bytes_after_the_map_are_a_bad_frame(
    message: dict[str, Any], trailing: bytes
) -> None:
    payload = cbor2.dumps(message) + trailing
    with pytest.raises(BadFrame):
        decode_payload(payload)
    decoder = FrameDecoder()
    decoder.feed(HEADER.pack(len(payload)) + payload + encode(message))
    items = drain(decoder)
    assert isinstance(items[0], BadFrame) and items[1:] == [message]


def test_frame_too_large_is_raised_for_a_huge_length_prefix() -> None:
    decoder = FrameDecoder(max_frame=10)
    decoder.feed(HEADER.pack(10) + cbor2.dumps({"a": 12345}).ljust(10, b"\x00")[:10])
    assert len(drain(decoder)) == 1  # exactly at the limit is fine
    decoder.feed(HEADER.pack(11))
    with pytest.raises(FrameTooLarge):
        drain(decoder)
    # The default limit.
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(FrameTooLarge):
        drain(decoder)


@FUZZ
@given(garbage=st.binary(max_size=300), data=st.data())
def test_fuzzed_garbage_only_yields_messages_or_badframes(
    garbage: bytes, data: st.DataObject
) -> None:
    """Random bytes, split at random points: never hangs, never raises except FrameTooLarge."""
    max_frame = data.draw(st.sampled_from([64, 1024, MAX_FRAME]))

    def run(chunks: list[bytes]) -> tuple[list[Any], bool]:
        decoder = FrameDecoder(max_frame=max_frame)
        out: list[dict[str, Any] | BadFrame] = []
        try:
            for chunk in chunks:
                decoder.feed(chunk)
                out += drain(decoder)
        except FrameTooLarge:
            return normalise(out), True
        for item in out:
            assert isinstance(item, dict | BadFrame)
        # Each yielded frame consumed at least a header.
        assert len(out) * HEADER.size + decoder.buffered <= len(garbage)
        return normalise(out), False

    cuts = sorted(data.draw(st.lists(st.integers(0, len(garbage)), max_size=6)))
    bounds = [0, *cuts, len(garbage)]
    chunks = [garbage[a:b] for a, b in itertools.pairwise(bounds)]
    # How the bytes are split never changes what comes out.
    assert run(chunks) == run([garbage])


@FUZZ
@given(payload=st.binary(max_size=200))
def test_fuzzed_payload_in_a_valid_frame(payload: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(HEADER.pack(len(payload)) + payload)
    [item] = drain(decoder)
    assert isinstance(item, dict | BadFrame)
    assert decoder.buffered == 0


@FEWER
@given(message=messages, position=st.data())
def test_single_byte_corruption_never_escapes_as_another_exception(
    message: dict[str, Any], position: st.DataObject
) -> None:
    frame = bytearray(encode(message))
    index = position.draw(st.integers(min_value=HEADER.size, max_value=len(frame) - 1))
    frame[index] ^= position.draw(st.integers(min_value=1, max_value=255))
    decoder = FrameDecoder()
    decoder.feed(bytes(frame))
    items = drain(decoder)
    assert len(items) == 1 and isinstance(items[0], dict | BadFrame)


# ---------------------------------------------------------------- Entry


@FEWER
@given(
    pos=st.integers(min_value=0, max_value=2**63 - 1),
    ts=st.integers(min_value=0, max_value=2**63 - 1),
    etype=st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    author=st.text(min_size=1, max_size=20),
    body=values,
)
def test_entry_wire_roundtrip(pos: int, ts: int, etype: str, author: str, body: Any) -> None:
    entry = Entry(pos, ts, etype, author, body)
    wire = entry.to_wire()
    assert set(wire) == {"pos", "ts", "type", "author", "body"}
    assert Entry.from_wire(wire) == entry
    [decoded] = drain(_fed(encode(wire)))
    assert Entry.from_wire(decoded) == entry


def _fed(data: bytes) -> FrameDecoder:
    decoder = FrameDecoder()
    decoder.feed(data)
    return decoder


# ---------------------------------------------------------------- errors


def test_every_error_code_has_a_class_and_round_trips() -> None:
    assert set(errors.ERROR_CLASSES) == set(ErrorCode)
    for code, cls in errors.ERROR_CLASSES.items():
        assert cls.code is code
        error = cls("something went wrong", {"tail": 3})
        wire = error.to_wire()
        assert wire == {
            "code": code.value,
            "message": "something went wrong",
            "details": {"tail": 3},
        }
        back = error_from_wire(cbor2.loads(cbor2.dumps(wire)))
        assert type(back) is cls
        assert back.message == "something went wrong"
        assert back.details == {"tail": 3}
        assert back.retryable is cls.retryable
        assert isinstance(back, LogError)


def test_retryable_codes() -> None:
    retryable = {code for code, cls in errors.ERROR_CLASSES.items() if cls.retryable}
    assert retryable == {
        ErrorCode.NOT_LEADER,
        ErrorCode.UNAVAILABLE,
        ErrorCode.TIMEOUT,
        ErrorCode.OVERLOADED,
    }


def test_error_without_message_uses_its_code_and_omits_empty_details() -> None:
    error = errors.Fenced()
    assert error.message == "fenced" and str(error) == "fenced"
    assert error.to_wire() == {"code": "fenced", "message": "fenced"}
    assert repr(error) == "Fenced('fenced')"


def test_state_machine_failure_replies_convert_to_typed_errors() -> None:
    error = error_from_wire(
        {"ok": False, "code": "trimmed", "message": "gone", "details": {"trim": 4}}
    )
    assert isinstance(error, errors.Trimmed)
    assert error.details == {"trim": 4}


@FEWER
@given(
    wire=st.one_of(
        values,
        st.fixed_dictionaries(
            {},
            optional={
                "code": values | st.sampled_from([c.value for c in ErrorCode]),
                "message": values,
                "details": values,
            },
        ),
    )
)
def test_error_from_wire_never_raises_on_malformed_input(wire: Any) -> None:
    error = error_from_wire(wire)
    assert isinstance(error, LogError)
    assert isinstance(error.message, str)
    assert isinstance(error.details, dict)
    if isinstance(wire, dict) and wire.get("code") in [c.value for c in ErrorCode]:
        assert error.code.value == wire["code"]
    elif not (isinstance(wire, dict) and isinstance(wire.get("code"), str)):
        assert isinstance(error, errors.BadRequest)


def test_float_values_roundtrip_exactly() -> None:
    message = {"x": 0.1, "inf": math.inf, "neg": -0.0}
    assert decode_payload(encode(message)[HEADER.size :]) == message
