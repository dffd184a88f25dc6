"""Bus patterns of roles: which buses a role's rights apply to.

A pattern is a bus id with wildcards: ``*`` matches within one ``/``-separated segment,
``**`` matches anything (any depth), and ``{principal}`` stands for the name of the principal
using the role, so one role can give every agent its own subtree (``agent/{principal}/**``).
"""

from __future__ import annotations

import functools
import re

#: What a pattern may contain: bus id characters, ``*`` and the ``{principal}`` placeholder.
PATTERN = re.compile(r"(?:[A-Za-z0-9._/*-]|\{principal\}){1,256}")
ANY = ("**",)


def valid(pattern: str) -> bool:
    return bool(PATTERN.fullmatch(pattern))


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str, principal: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*|\{principal\})", pattern)
    regex = "".join(
        ".*"
        if part == "**"
        else "[^/]*"
        if part == "*"
        else re.escape(principal)
        if part == "{principal}"
        else re.escape(part)
        for part in parts
    )
    return re.compile(regex)


def matches(patterns: tuple[str, ...], bus: str, principal: str) -> bool:
    """Whether ``bus`` matches any of ``patterns`` for ``principal``."""
    return any(_compiled(pattern, principal).fullmatch(bus) for pattern in patterns)
