"""Validation of client requests and their translation into commands for ``LogState``.

Pure functions: a request dict (decoded from the wire or built in-process) is checked field by
field and either becomes a typed command (``command_types``) or raises a typed error. Nothing
that fails here ever reaches the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from logact.protocol.codec import BUS_ID, BadBody, TooManyItems, check_body
from logact.protocol.errors import BadRequest, Forbidden, TooLarge
from logact.server.command_types import Append, Claim, NewEntry, Quota, Trim
from logact.server.replicated_form import INT_LIMIT

ENTRY_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")


@dataclass(frozen=True, slots=True)
class Limits:
    max_entry_bytes: int = 1024 * 1024  # encoded body size of one entry
    #: Values and keys in all the bodies of one append: what checking them costs the node
    #: (about 1-3 us each; a megabyte of one-byte items would take seconds).
    max_batch_items: int = 65536
    max_batch_entries: int = 1000
    max_batch_bytes: int = 4 * 1024 * 1024
    max_read_limit: int = 1000
    max_read_bytes: int = 4 * 1024 * 1024
    #: Live (untrimmed) bytes of entry bodies: per bus, per author and in the whole log. The
    #: log is held in memory: these bound what appends can make every node hold.
    max_bus_bytes: int = 256 * 1024 * 1024
    max_principal_bytes: int = 1024 * 1024 * 1024
    max_log_bytes: int = 4 * 1024 * 1024 * 1024

    @property
    def max_frame(self) -> int:
        """Largest request frame a node accepts: a full batch of bodies plus what frames it."""
        return self.max_batch_bytes + 256 * 1024

    @property
    def max_frame_items(self) -> int:
        """Items in one request frame: a full batch takes five per entry (bodies are byte
        strings), so this bounds the cost of decoding any frame to what honest ones need."""
        return 8 * self.max_batch_entries + 1024

    def to_wire(self) -> dict[str, int]:
        return {
            "max_frame": self.max_frame,
            "max_frame_items": self.max_frame_items,
            "max_entry_bytes": self.max_entry_bytes,
            "max_batch_items": self.max_batch_items,
            "max_batch_entries": self.max_batch_entries,
            "max_batch_bytes": self.max_batch_bytes,
        }


def field(
    request: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    """The named field, type-checked; bool is never accepted where int is expected."""
    if name not in request or request[name] is None:
        if default is ...:
            raise BadRequest(f"missing field {name!r}")
        return default
    value = request[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadRequest(f"field {name!r} must be {_kind_name(kind)}, not bool")
    if not isinstance(value, kind):
        raise BadRequest(f"field {name!r} must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def bus_id(request: dict[str, Any]) -> str:
    bus = field(request, "bus", str)
    if not BUS_ID.fullmatch(bus):
        raise BadRequest("bus ids are 1-256 characters of [A-Za-z0-9._/-]")
    return bus


def position(request: dict[str, Any], name: str, default: Any = ...) -> int:
    value = field(request, name, int, default)
    if value is not None and not 0 <= value < INT_LIMIT:
        raise BadRequest(f"field {name!r} must be a position in [0, 2**63)")
    return value


def name_field(request: dict[str, Any], name: str) -> str:
    value = field(request, name, str)
    if not NAME.fullmatch(value):
        raise BadRequest(f"field {name!r} must be 1-128 characters of [A-Za-z0-9_.:/-]")
    return value


def types_filter(request: dict[str, Any]) -> frozenset[str] | None:
    types = field(request, "types", list, None)
    if types is None:
        return None
    if not types or not all(isinstance(t, str) and ENTRY_TYPE.fullmatch(t) for t in types):
        raise BadRequest("'types' must be a non-empty list of entry type names")
    return frozenset(types)


class ItemBudget:
    """Items (keys and values) left to check in the bodies of one request: an append, or all
    the appends of one ``multi``, so a multi costs the node no more than one full append."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def multi_ops(request: dict[str, Any], limits: Limits) -> list[dict[str, Any]]:
    """The appends of a ``multi`` request: 1 to ``max_batch_entries`` maps holding, in all, at
    most ``max_batch_entries`` entries (each append is checked by :func:`append_command`)."""
    ops = field(request, "ops", list)
    if not ops:
        raise BadRequest("'ops' must hold at least one append")
    entries = 0
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or op.get("op") != "append":
            raise BadRequest(f"op {index}: a multi holds appends only ('op': 'append')")
        raw = op.get("entries")
        entries += len(raw) if isinstance(raw, list) else 1
    if entries > limits.max_batch_entries:
        raise TooLarge(f"a multi holds at most {limits.max_batch_entries} entries in all")
    return ops


def append_command(
    request: dict[str, Any],
    author: str,
    ts: int,
    limits: Limits,
    may_append: Callable[[str], bool],
    fences: Mapping[str, str] | None = None,
    validate: Callable[[str, Any], str | None] | None = None,
    budget: ItemBudget | None = None,
) -> Append:
    """Build an append command; the ACL is checked before any body is examined.

    ``fences`` maps entry types to the fencing name guarding them: the command carries the
    names its types need (``guards``), and the state machine requires their fence once claimed.
    ``budget``: the items its bodies may hold (shared by the appends of a multi); default
    ``max_batch_items``.
    """
    bus = bus_id(request)
    raw_entries = field(request, "entries", list)
    if not raw_entries:
        raise BadRequest("'entries' must hold at least one entry")
    if len(raw_entries) > limits.max_batch_entries:
        raise TooLarge(f"a batch holds at most {limits.max_batch_entries} entries")
    types: list[str] = []
    for index, raw in enumerate(raw_entries):
        if type(raw) is dict:
            etype = raw.get("type")
            if type(etype) is str and "body" in raw and ENTRY_TYPE.fullmatch(etype):
                types.append(etype)
                continue
        types.append(_entry_type(index, raw))
    denied = [t for t in set(types) if not may_append(t)]
    if denied:
        raise Forbidden(f"principal {author!r} may not append {sorted(denied)}")
    entries: list[NewEntry] = []
    total = 0
    budget = budget or ItemBudget(limits.max_batch_items)
    for index, (etype, raw) in enumerate(zip(types, raw_entries, strict=True)):
        body = raw["body"]
        if type(body) is not bytes:
            raise BadRequest(f"entry {index}: a body must be a CBOR byte string")
        size = len(body)
        if size > limits.max_entry_bytes:
            raise TooLarge(f"entry {index} is over the limit of {limits.max_entry_bytes} bytes")
        total += size
        if total > limits.max_batch_bytes:
            raise TooLarge(f"batch is over the limit of {limits.max_batch_bytes} bytes")
        try:
            items, value = check_body(body, budget.left)
        except TooManyItems as exc:
            raise TooLarge(f"entry {index}: {exc}") from None
        except BadBody as exc:
            raise BadRequest(f"entry {index}: {exc}") from None
        budget.left -= items
        if validate is not None and (problem := validate(etype, value)):
            raise BadRequest(f"entry {index}: {problem[:500]}")
        entries.append(NewEntry(etype, body, size))
    guards = sorted({fences[t] for t in types if t in fences}) if fences else []
    key = _optional(request, "key", list)
    if key is not None and (
        len(key) != 2
        or not isinstance(key[0], str)
        or not 1 <= len(key[0]) <= 128
        or isinstance(key[1], bool)
        or not isinstance(key[1], int)
        or not 0 <= key[1] < INT_LIMIT
    ):
        raise BadRequest("'key' must be [client_id (1-128 chars), sequence number >= 0]")
    expect = None if request.get("expect_tail") is None else position(request, "expect_tail")
    fence = _optional(request, "fence", list)
    if fence is not None and (
        len(fence) != 2
        or not isinstance(fence[0], str)
        or not NAME.fullmatch(fence[0])
        or isinstance(fence[1], bool)
        or not isinstance(fence[1], int)
        or not 0 <= fence[1] < INT_LIMIT
    ):
        raise BadRequest("'fence' must be [name, epoch in [0, 2**63)]")
    return Append(
        bus=bus,
        entries=tuple(entries),
        author=author,
        ts=ts,
        quota=Quota(limits.max_bus_bytes, limits.max_principal_bytes, limits.max_log_bytes),
        guards=tuple(guards),
        key=None if key is None else (key[0], key[1]),
        expect_tail=expect,
        fence=None if fence is None else (fence[0], fence[1]),
    )


def _entry_type(index: int, raw: Any) -> str:
    """The type of entry ``index`` of an append, or the error saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise BadRequest(f"entry {index} must be a map with 'type' and 'body'")
    etype: str = field(raw, "type", str)
    if not ENTRY_TYPE.fullmatch(etype):
        raise BadRequest(f"entry {index}: type must be 1-64 characters of [A-Za-z0-9_.-]")
    if "body" not in raw:
        raise BadRequest(f"entry {index}: missing field 'body'")
    return etype


def _optional(request: dict[str, Any], name: str, kind: type) -> Any:
    """``field(request, name, kind, None)``, without its cost when the field is absent or of
    exactly ``kind`` (every append checks several)."""
    value = request.get(name)
    if value is None or type(value) is kind:
        return value
    return field(request, name, kind)


def trim_command(request: dict[str, Any], ts: int) -> Trim:
    return Trim(bus_id(request), position(request, "before"), ts)


def claim_command(request: dict[str, Any], ts: int) -> Claim:
    return Claim(bus_id(request), name_field(request, "name"), ts)
