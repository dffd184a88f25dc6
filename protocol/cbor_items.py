"""Reading a CBOR payload's headers alone, before decoding it: how many items it holds and,
for entry bodies, whether it stays inside the data model.

Decoding costs time and memory per item, not per byte: a megabyte of one-byte items (empty
maps, zeros) decodes into a million objects, about 80 MB, with the interpreter lock held.
Walking the headers skips strings by their length, so it costs at most ``limit`` steps however
the payload is built, and it needs no decoded tree to check a body against the model.
"""

from __future__ import annotations

#: Major type 7: false, true, null. Floats (25-27) are checked for finiteness.
_PLAIN_SIMPLE = (20, 21, 22)
#: Exponent bits all ones (infinity or NaN) for half, single and double floats.
_NOT_FINITE = {25: 0x7C00, 26: 0x7F800000, 27: 0x7FF0000000000000}
_LEAF, _STRING, _ARRAY, _MAP, _TAG, _INDEFINITE = range(6)
_KINDS = {0: _LEAF, 1: _LEAF, 2: _STRING, 3: _STRING, 4: _ARRAY, 5: _MAP, 6: _TAG, 7: _LEAF}


def _header(initial: int) -> tuple[int, int, int, int, int]:
    """(kind, major type, additional info, argument bytes that follow, immediate argument)."""
    major, info = initial >> 5, initial & 0x1F
    if info > 27:
        return _INDEFINITE, major, info, 0, 0
    width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info, 0)
    return _KINDS[major], major, info, width, info if info < 24 else 0


#: Every initial byte, decoded once: the walk costs one table lookup per item.
_HEADERS = tuple(_header(initial) for initial in range(256))


def item_count(payload: bytes, limit: int, *, body_depth: int | None = None) -> int:
    """The number of items (keys and values of any kind) in ``payload``, or ``limit + 1`` if
    there are more. A truncated payload counts what it holds; the decoder refuses it later.

    Raises ValueError for tags and indefinite lengths, whose content cannot be bounded here.
    With ``body_depth`` the payload must also be a body of the data model: only text map keys,
    false/true/null among simple values, finite floats, containers nested at most
    ``body_depth`` deep (ValueError naming the problem otherwise).
    """
    checking = body_depth is not None
    max_depth = body_depth or 0
    pos, end, items = 0, len(payload), 0
    left, in_map = 1, False  # items still to read in the open container; the top holds one
    parents: list[tuple[int, bool]] = []  # the same for each enclosing container
    headers = _HEADERS
    while True:
        if not left:
            if not parents:
                return items
            left, in_map = parents.pop()
            continue
        if pos >= end or items > limit:
            return items
        kind, major, info, width, argument = headers[payload[pos]]
        pos += 1
        if width:
            argument = int.from_bytes(payload[pos : pos + width], "big")
            pos += width
        if kind >= _TAG:
            if kind == _TAG:
                raise ValueError("CBOR tags are not accepted")
            raise ValueError("indefinite lengths and reserved values are not accepted")
        if checking:
            if in_map and not left % 2 and major != 3:
                raise ValueError("map keys must be text")
            if major == 7:
                if info in _NOT_FINITE:
                    mask = _NOT_FINITE[info]
                    if argument & mask == mask:
                        raise ValueError("floats must be finite")
                elif info not in _PLAIN_SIMPLE:
                    raise ValueError("simple values other than false, true and null")
            elif kind >= _ARRAY and len(parents) >= max_depth:
                raise ValueError(f"bodies nest at most {body_depth} levels deep")
        left -= 1
        items += 1
        if kind == _STRING:
            pos += argument
        elif kind == _ARRAY:
            parents.append((left, in_map))
            left, in_map = argument, False
        elif kind == _MAP:
            parents.append((left, in_map))
            left, in_map = 2 * argument, True
