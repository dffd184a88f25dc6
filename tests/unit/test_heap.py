"""glibc's heap in a node (server/heap.py): large transient buffers come from the heap, and
freed memory goes back to the OS once a snapshot has been loaded."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from logact.server.heap import give_back_freed_memory

MIB = 1024 * 1024


def resident() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_blocks_freed_between_live_ones_leave_the_rss() -> None:
    """As a decoded snapshot's bodies do, freed between the chunks built from them."""
    blocks = [bytes([i % 251]) * 10_240 for i in range(5_000)]  # 50 MiB in the heap
    kept = blocks[::8]
    del blocks
    before = resident()
    if not give_back_freed_memory():
        pytest.skip("this C library has no malloc_trim")
    assert before - resident() > 20 * MIB
    assert len(kept) == 625


MAPPED_BLOCKS = """
import ctypes
from logact.server.heap import keep_large_blocks_in_heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_by(size):
    before = libc.mallinfo2().hblks
    block = bytearray(size)
    return libc.mallinfo2().hblks - before

print(mapped_by(1 << 20), keep_large_blocks_in_heap(), mapped_by(1 << 20), mapped_by(8 << 20))
"""


@pytest.mark.process
def test_large_transient_blocks_come_from_the_heap_not_their_own_mapping() -> None:
    """A 1 MiB buffer (a batch of 10 KB entries) was mmapped, faulted in and unmapped each
    time; a node's are served from the heap once ``keep_large_blocks_in_heap`` has run."""
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018
    except AttributeError:
        pytest.skip("this C library has no mallinfo2")
    result = subprocess.run(
        [sys.executable, "-c", MAPPED_BLOCKS], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True", "0", "0"]
