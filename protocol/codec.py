"""Wire protocol: length-prefixed CBOR frames (see docs/protocol.md).

A frame is a 4-byte big-endian payload length followed by one CBOR map. This module is pure:
encoding, incremental decoding and the entry shape shared by server and client.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cbor2

from logact.protocol.cbor_items import item_count

#: 2: entry bodies travel and are stored as CBOR byte strings holding one encoded item.
PROTOCOL_VERSION = 2
HEADER = struct.Struct(">I")
#: Largest frame either side accepts; a larger length prefix means a corrupt or hostile stream.
MAX_FRAME = 16 * 1024 * 1024

#: The bus id grammar, shared by server validation and agent entries.
BUS_ID = re.compile(r"[A-Za-z0-9._/-]{1,256}")


class FrameTooLarge(Exception):
    """The length prefix exceeds the limit: the stream cannot be resynchronised."""


class BadFrame(Exception):
    """A complete frame whose payload is not a CBOR map; the stream itself is still in sync."""


def encode(message: dict[str, Any]) -> bytes:
    payload = cbor2.dumps(message)
    return HEADER.pack(len(payload)) + payload


def encode_item(value: Any) -> bytes:
    """One CBOR item, unframed: a request that goes into a ``multi``."""
    return cbor2.dumps(value)


#: Bytes a ``multi`` frame adds to its encoded requests (at most): id, op, ops, array header.
MULTI_OVERHEAD = 40


def encode_multi(request_id: int, ops: list[bytes]) -> bytes:
    """The frame ``{"id": request_id, "op": "multi", "ops": [...]}`` around requests already
    encoded with :func:`encode_item`, so each is encoded once, by the task that made it."""
    head = cbor2.dumps({"id": request_id, "op": "multi"})
    payload = b"".join((b"\xa3", head[1:], _OPS_KEY, _array_header(len(ops)), *ops))
    return HEADER.pack(len(payload)) + payload


_OPS_KEY = cbor2.dumps("ops")


def _array_header(length: int) -> bytes:
    if length < 24:
        return bytes((0x80 | length,))
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * width):
            return bytes((0x80 | info,)) + length.to_bytes(width, "big")
    raise ValueError("array too long for CBOR")


#: Nesting of an entry body, and of any frame.
MAX_BODY_DEPTH = 32
MAX_DEPTH = MAX_BODY_DEPTH + 4
#: Tags cbor2 decodes by itself, some at great cost (30: a fraction, 35: a regex, 28/29:
#: shared references that expand exponentially); refused before any of that work.
BUILTIN_TAGS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100)
BUILTIN_TAGS += (256, 258, 260, 261, 1004, 43000, 55799)


def _refuse_tag(*_: Any) -> Any:
    raise ValueError("CBOR tags are not accepted")


_STRICT: dict[str, Any] = {
    "tag_hook": _refuse_tag,
    "semantic_decoders": dict.fromkeys(BUILTIN_TAGS, _refuse_tag),
    "max_depth": MAX_DEPTH,
    "allow_indefinite": False,
    "allow_duplicate_keys": False,
    "strict_hashable_types": True,
    "str_errors": "strict",
}
_STRICT_BODY = {**_STRICT, "max_depth": MAX_BODY_DEPTH + 1}


class BadBody(ValueError):
    """Bytes that are not one CBOR item of the data model of entry bodies."""


class TooManyItems(BadBody):
    """A body holding more items than its reader allows (decoding it would cost too much)."""


def encode_body(body: Any) -> bytes:
    """A body as it travels and is stored: one CBOR item. The node checks the data model."""
    try:
        return cbor2.dumps(body)
    except Exception as exc:  # cbor2 raises several types for unencodable values
        raise BadBody(f"body cannot be encoded: {exc}") from None


def check_body(raw: Any, max_items: int) -> tuple[int, Any]:
    """The items in ``raw`` and the value it holds, if it is one body of the data model with
    at most ``max_items``: its headers are read first (TooManyItems, or BadBody naming the
    problem), and only then is it decoded, to check what headers do not show (UTF-8, duplicate
    keys, trailing bytes)."""
    if type(raw) is not bytes:
        raise BadBody(f"a body must be a CBOR byte string, not {type(raw).__name__}")
    try:
        count = item_count(raw, max_items, body_depth=MAX_BODY_DEPTH)
    except ValueError as exc:
        raise BadBody(str(exc)) from None
    if count > max_items:
        raise TooManyItems(f"the bodies of one append hold at most {max_items} items in all")
    return count, decode_body(raw)


def _decode_one(data: bytes, options: dict[str, Any], error: type[Exception]) -> Any:
    """Exactly one CBOR item, decoded with ``options``; ``error`` for anything else."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, **options).decode()
    except Exception as exc:  # cbor2 raises many types on garbage
        raise error(f"not valid CBOR of the accepted kinds: {exc}") from None
    if stream.tell() != len(data):
        raise error(f"{len(data) - stream.tell()} bytes follow the CBOR item")
    return value


def decode_body(raw: bytes) -> Any:
    """The value an encoded body holds, decoded as strictly as frames are (BadBody otherwise)."""
    return _decode_one(raw, _STRICT_BODY, BadBody)


def decode_payload(payload: bytes, max_items: int | None = None) -> dict[str, Any]:
    """One frame's CBOR map, decoded strictly: no tags, no indefinite lengths, no duplicate or
    non-text/bytes keys, at most ``MAX_DEPTH`` deep and, if given, ``max_items`` items (keys
    and values of any kind), counted before any decoding (BadFrame otherwise)."""
    if max_items is not None and len(payload) > max_items:  # else it cannot hold more
        try:
            if item_count(payload, max_items) > max_items:
                raise BadFrame(f"a frame holds at most {max_items} items")
        except ValueError as exc:
            raise BadFrame(f"payload is not valid CBOR of the accepted kinds: {exc}") from None
    message = _decode_one(payload, _STRICT, BadFrame)
    if not isinstance(message, dict):
        raise BadFrame(f"a frame must hold a CBOR map, not {type(message).__name__}")
    return message


class FrameDecoder:
    """Incremental decoder: feed bytes, iterate complete messages (or BadFrame instances)."""

    def __init__(self, max_frame: int = MAX_FRAME, max_items: int | None = None) -> None:
        self.max_frame = max_frame
        #: Items per frame; None trusts the peer (a client reading its node's replies).
        self.max_items = max_items
        self._buffer = bytearray()
        #: Payload size of the frame last yielded (what holding its message costs).
        self.last_size = 0

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def frames(self) -> Iterator[dict[str, Any] | BadFrame]:
        """Yield each complete message; a malformed payload is yielded as a BadFrame."""
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > self.max_frame:
                raise FrameTooLarge(f"frame of {length} bytes exceeds limit {self.max_frame}")
            end = HEADER.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            self.last_size = length
            try:
                yield decode_payload(payload, self.max_items)
            except BadFrame as exc:
                yield exc

    @property
    def buffered(self) -> int:
        return len(self._buffer)


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry as every API returns it."""

    pos: int
    ts: int
    type: str
    author: str
    body: Any

    def to_wire(self) -> dict[str, Any]:
        return {
            "pos": self.pos,
            "ts": self.ts,
            "type": self.type,
            "author": self.author,
            "body": encode_body(self.body),
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Entry:
        body = decode_body(wire["body"])
        return cls(wire["pos"], wire["ts"], wire["type"], wire["author"], body)
