"""Counting the items of a CBOR payload from its headers alone, before decoding it.

Decoding costs time and memory per item, not per byte: a megabyte of one-byte items (empty
maps, zeros) decodes into a million objects, about 80 MB, with the interpreter lock held.
Walking the headers skips strings by their length, so counting costs at most ``limit`` steps
however the payload is built. Nothing else is checked here; the strict decoder does that.
"""

from __future__ import annotations

_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}


def item_count(payload: bytes, limit: int) -> int:
    """The number of items (keys and values of any kind) in ``payload``, or ``limit + 1`` if
    there are more. A truncated payload counts what it holds.

    Raises ValueError for tags and indefinite lengths, whose content cannot be bounded here.
    """
    pos, end, items = 0, len(payload), 0
    pending = [1]  # items still to read in each open container; the top level holds one
    while pending:
        if not pending[-1]:
            pending.pop()
            continue
        if pos >= end or items > limit:
            break
        pending[-1] -= 1
        items += 1
        initial = payload[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info < 24:
            argument = info
        elif info in _ARGUMENT_BYTES:
            width = _ARGUMENT_BYTES[info]
            argument = int.from_bytes(payload[pos : pos + width], "big")
            pos += width
        else:
            raise ValueError("indefinite lengths and reserved values are not accepted")
        if major in (2, 3):
            pos += argument
        elif major == 4:
            pending.append(argument)
        elif major == 5:
            pending.append(2 * argument)
        elif major == 6:
            raise ValueError("CBOR tags are not accepted")
    return items
