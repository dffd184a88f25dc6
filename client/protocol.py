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

PROTOCOL_VERSION = 1
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


def decode_payload(payload: bytes) -> dict[str, Any]:
    stream = io.BytesIO(payload)
    try:
        message = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises many types (incl. RecursionError) on garbage
        raise BadFrame(f"payload is not valid CBOR: {exc}") from None
    if stream.tell() != len(payload):
        raise BadFrame(f"{len(payload) - stream.tell()} bytes follow the CBOR item in the frame")
    if not isinstance(message, dict):
        raise BadFrame(f"a frame must hold a CBOR map, not {type(message).__name__}")
    return message


class FrameDecoder:
    """Incremental decoder: feed bytes, iterate complete messages (or BadFrame instances)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
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
            try:
                yield decode_payload(payload)
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
            "body": self.body,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Entry:
        return cls(wire["pos"], wire["ts"], wire["type"], wire["author"], wire["body"])
