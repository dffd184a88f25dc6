"""Reading a CBOR payload's headers alone, before decoding it: how many items it holds and,
for entry bodies, whether it stays inside the data model.

Decoding costs time and memory per item, not per byte: a megabyte of one-byte items (empty
maps, zeros) decodes into a million objects, about 80 MB, with the interpreter lock held.
Walking the headers skips strings by their length, so it costs at most ``limit`` steps however
the payload is built, and it needs no decoded tree to check a body against the model.
"""

from __future__ import annotations

_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
#: Major type 7: false, true, null. Floats (25-27) are checked for finiteness.
_PLAIN_SIMPLE = (20, 21, 22)
#: Exponent bits all ones (infinity or NaN) for half, single and double floats.
_NOT_FINITE = {25: 0x7C00, 26: 0x7F800000, 27: 0x7FF0000000000000}


def item_count(payload: bytes, limit: int, *, body_depth: int | None = None) -> int:
    """The number of items (keys and values of any kind) in ``payload``, or ``limit + 1`` if
    there are more. A truncated payload counts what it holds; the decoder refuses it later.

    Raises ValueError for tags and indefinite lengths, whose content cannot be bounded here.
    With ``body_depth`` the payload must also be a body of the data model: only text map keys,
    false/true/null among simple values, finite floats, containers nested at most
    ``body_depth`` deep (ValueError naming the problem otherwise).
    """
    pos, end, items = 0, len(payload), 0
    pending = [1]  # items still to read in each open container; the top level holds one
    in_map = [False]
    while pending:
        left = pending[-1]
        if not left:
            pending.pop()
            in_map.pop()
            continue
        if pos >= end or items > limit:
            break
        pending[-1] = left - 1
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
        if body_depth is not None:
            if in_map[-1] and not left % 2 and major != 3:
                raise ValueError("map keys must be text")
            if major == 7:
                if info in _NOT_FINITE:
                    mask = _NOT_FINITE[info]
                    if argument & mask == mask:
                        raise ValueError("floats must be finite")
                elif info not in _PLAIN_SIMPLE:
                    raise ValueError("simple values other than false, true and null")
            elif major in (4, 5) and len(pending) > body_depth:
                raise ValueError(f"bodies nest at most {body_depth} levels deep")
        if major in (2, 3):
            pos += argument
        elif major == 4:
            pending.append(argument)
            in_map.append(False)
        elif major == 5:
            pending.append(2 * argument)
            in_map.append(True)
        elif major == 6:
            raise ValueError("CBOR tags are not accepted")
    return items
