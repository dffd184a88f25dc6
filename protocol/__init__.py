"""The contract between clients and servers: frames and the CBOR data model (``codec``), error
codes (``errors``) and the one log API every implementation offers (``api``). Both
``logact.server`` and ``logact.client`` build on it; it imports neither."""

from logact.protocol.api import BusInfo, LogAPI, ReadResult, Tail
from logact.protocol.codec import Entry
from logact.protocol.errors import (
    BadRequest,
    ConditionFailed,
    ErrorCode,
    Fenced,
    Forbidden,
    LogError,
    NotLeader,
    Overloaded,
    QuotaExceeded,
    Timeout,
    TooLarge,
    Trimmed,
    Unauthorized,
    Unavailable,
    UnknownBus,
)

__all__ = [
    "BadRequest",
    "BusInfo",
    "ConditionFailed",
    "Entry",
    "ErrorCode",
    "Fenced",
    "Forbidden",
    "LogAPI",
    "LogError",
    "NotLeader",
    "Overloaded",
    "QuotaExceeded",
    "ReadResult",
    "Tail",
    "Timeout",
    "TooLarge",
    "Trimmed",
    "Unauthorized",
    "Unavailable",
    "UnknownBus",
]
