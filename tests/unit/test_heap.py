"""Freed memory goes back to the OS once a snapshot has been loaded (server/heap.py)."""

from __future__ import annotations

import os

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
