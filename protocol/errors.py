"""Typed errors shared by the server and the client.

Every failure crosses the wire as ``{"code": ..., "message": ...}`` and is raised on the client
as the matching ``LogError`` subclass, so callers can branch on type rather than on text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    NOT_LEADER = "not_leader"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    FENCED = "fenced"
    CONDITION_FAILED = "condition_failed"
    UNKNOWN_BUS = "unknown_bus"
    TRIMMED = "trimmed"
    OVERLOADED = "overloaded"
    QUOTA_EXCEEDED = "quota_exceeded"


class LogError(Exception):
    """Base of every error the log reports; ``code`` is the wire code."""

    code: ErrorCode = ErrorCode.BAD_REQUEST
    #: True when the operation may be retried safely (with the same idempotency key).
    retryable: bool = False

    def __init__(self, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.code.value)
        self.message = message or self.code.value
        self.details = details or {}

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            wire["details"] = self.details
        return wire

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotLeader(LogError):
    code = ErrorCode.NOT_LEADER
    retryable = True


class Unavailable(LogError):
    code = ErrorCode.UNAVAILABLE
    retryable = True


class Timeout(LogError):
    """The outcome is unknown: the operation may or may not have taken effect."""

    code = ErrorCode.TIMEOUT
    retryable = True


class BadRequest(LogError):
    code = ErrorCode.BAD_REQUEST


class TooLarge(LogError):
    code = ErrorCode.TOO_LARGE


class Unauthorized(LogError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(LogError):
    code = ErrorCode.FORBIDDEN


class Fenced(LogError):
    code = ErrorCode.FENCED


class ConditionFailed(LogError):
    code = ErrorCode.CONDITION_FAILED


class UnknownBus(LogError):
    code = ErrorCode.UNKNOWN_BUS


class Trimmed(LogError):
    code = ErrorCode.TRIMMED


class Overloaded(LogError):
    code = ErrorCode.OVERLOADED
    retryable = True


class QuotaExceeded(LogError):
    """A quota of live bytes or subscriptions is used up: trim, or unsubscribe, first."""

    code = ErrorCode.QUOTA_EXCEEDED


ERROR_CLASSES: dict[ErrorCode, type[LogError]] = {
    cls.code: cls
    for cls in (
        NotLeader,
        Unavailable,
        Timeout,
        BadRequest,
        TooLarge,
        Unauthorized,
        Forbidden,
        Fenced,
        ConditionFailed,
        UnknownBus,
        Trimmed,
        Overloaded,
        QuotaExceeded,
    )
}


def error_from_wire(wire: Any) -> LogError:
    """Rebuild a typed error from its wire form; anything malformed becomes BadRequest."""
    if not isinstance(wire, dict):
        return BadRequest(f"malformed error: {wire!r}")
    try:
        cls = ERROR_CLASSES[ErrorCode(str(wire.get("code")))]
    except ValueError:
        cls = BadRequest
    details = wire.get("details")
    return cls(str(wire.get("message") or ""), details if isinstance(details, dict) else None)
