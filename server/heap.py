"""glibc's heap: where a node's large transient buffers come from (``mallopt``), and handing
the memory a loaded snapshot freed back to the OS (``malloc_trim``).

A node makes large short-lived buffers all the time: a pickled batch of 10 KB entries, the
AppendEntries message carrying it and its encrypted form are each 100 KiB to a few MiB. Above
glibc's default mmap threshold (128 KiB, raised only by freeing a larger mapped block) each was
mapped, faulted in page by page and unmapped: at 10 KB entries under load, a quarter of the
leader's CPU was system time. ``keep_large_blocks_in_heap`` serves blocks up to 32 MiB from the
heap and keeps up to 16 MiB free at its top for the next one (issue 18).

Loading a snapshot decodes it whole — every entry's body a bytes object of its own — and
builds the state from it, joining the bodies into chunks; then the decoded copy is freed. glibc
keeps those freed blocks in its heap between the chunks, where they count towards the RSS until
reused: a node restarted with 200 MiB of live entries held 434 MiB instead of the 237 MiB the
same state takes when built by appends. ``malloc_trim(0)`` returns the free pages inside the
heap (in ~30 ms for that heap). Elsewhere (musl, macOS) there is nothing to call.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's largest allowed threshold on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free bytes at the heap's top kept for reuse before glibc gives them back.
TRIM_THRESHOLD = 16 * 1024 * 1024


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


_TRIM = _libc_function("malloc_trim")
_MALLOPT = _libc_function("mallopt")


def keep_large_blocks_in_heap() -> bool:
    """Serve transient buffers of up to 32 MiB from the heap; False where the C library has
    no ``mallopt`` or refuses the settings."""
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        _MALLOPT(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def give_back_freed_memory() -> bool:
    """Return the heap's free pages to the OS; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
