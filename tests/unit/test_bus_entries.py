"""A bus's entries held compactly (server/bus_entries.py) read as the list of tuples they
replaced: same entries after any appends and trims, copies that later changes leave alone, and
a fraction of the memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import cbor2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from logact.server import bus_entries
from logact.server.bus_entries import BusEntries, Entry
from logact.server.snapshot_writer import encode_pieces
from logact.server.state import LogState

NAMES = ("t", "note", "data", "alice", "bob")


@contextmanager
def chunk_bytes(size: int) -> Iterator[None]:
    """Small chunks, so a few entries fill one."""
    saved = bus_entries.CHUNK_BYTES
    bus_entries.CHUNK_BYTES = size
    try:
        yield
    finally:
        bus_entries.CHUNK_BYTES = saved


class EntriesMachine(RuleBasedStateMachine):
    """BusEntries against a list of tuples; copies are checked against the list as it was."""

    def __init__(self) -> None:
        super().__init__()
        self.saved = bus_entries.CHUNK_BYTES
        bus_entries.CHUNK_BYTES = 40
        self.held = BusEntries()
        self.model: list[Entry] = []
        self.trimmed = 0  # position of model[0]
        self.copies: list[tuple[BusEntries, int, list[Entry]]] = []

    def teardown(self) -> None:
        bus_entries.CHUNK_BYTES = self.saved

    @rule(
        ts=st.integers(0, 2**63 - 1),
        etype=st.sampled_from(NAMES),
        author=st.sampled_from(NAMES),
        body=st.binary(max_size=100),  # some fill a chunk alone, some share one
        size=st.integers(0, 2**63 - 1),  # a command's size, as carried (not len(body))
    )
    def append(self, ts: int, etype: str, author: str, body: bytes, size: int) -> None:
        self.held.append(ts, etype, author, body, size)
        self.model.append((self.trimmed + len(self.model), ts, etype, author, body, size))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def trim(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(0, len(self.model)))
        self.held.trim(count)
        del self.model[:count]
        self.trimmed += count

    @rule()
    def copy(self) -> None:
        self.copies.append((self.held.copy(), self.trimmed, list(self.model)))

    @invariant()
    def reads_as_the_list(self) -> None:
        assert len(self.held) == len(self.model)
        assert list(self.held.rows(self.trimmed)) == self.model
        for index, entry in enumerate(self.model):
            assert self.held.entry(index, entry[0]) == entry
            assert (self.held.type(index), self.held.author(index)) == entry[2:4]
            assert self.held.size(index) == entry[5]

    @invariant()
    def copies_stay_as_they_were(self) -> None:
        for held, trimmed, model in self.copies:
            assert list(held.rows(trimmed)) == model

    @invariant()
    def trimmed_bodies_hold_no_more_than_live_ones(self) -> None:
        """Chunks hold live bodies and at most as many trimmed bytes (half a chunk, rounded)."""
        live = sum(len(entry[4]) for entry in self.model)
        held = sum(len(chunk) for chunk in self.held._chunks) + self.held._pending_bytes
        assert held <= 2 * live + 1


TestEntriesMachine = EntriesMachine.TestCase
TestEntriesMachine.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_rows_index_and_slice_as_a_list() -> None:
    held = BusEntries()
    for i in range(5):
        held.append(i, "t", "a", bytes([i]), 1)
    rows = held.rows(10)
    expected = [(10 + i, i, "t", "a", bytes([i]), 1) for i in range(5)]
    assert rows[-1] == expected[-1] and rows[1:3] == expected[1:3] and rows[::2] == expected[::2]
    assert len(rows) == 5 and list(rows) == expected


def test_an_entry_costs_a_few_dozen_bytes_besides_its_body() -> None:
    """A list of tuples took ~330 bytes per entry besides the body (issue 18)."""
    bodies = [cbor2.dumps(bytes([i % 256]) * 98) for i in range(20_000)]  # 100 B each
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = BusEntries()
        for i, body in enumerate(bodies):
            held.append(1_000 + i, "data", "admin", body, len(body))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(held) == 20_000
    overhead = used - sum(len(body) for body in bodies)
    assert overhead / 20_000 < 48, overhead / 20_000


def test_a_lazy_state_image_encodes_as_the_plain_one_and_later_commands_leave_it() -> None:
    state = LogState()
    with chunk_bytes(64):
        for i in range(300):
            body = cbor2.dumps({"i": i, "pad": "x" * (i % 50)})
            cmd = {"op": "append", "bus": f"b{i % 3}", "entries": [("t", body, len(body))]}
            state.apply_replicated({**cmd, "author": "a", "ts": i})
        state.apply_replicated({"op": "trim", "bus": "b1", "before": 40})
        plain = cbor2.dumps(state.to_snapshot())
        lazy = state.to_snapshot(lazy=True)
        for i in range(300, 400):
            cmd = {"op": "append", "bus": "b1", "entries": [("u", b"\xf6", 1)]}
            state.apply_replicated({**cmd, "author": "z", "ts": i})
        state.apply_replicated({"op": "trim", "bus": "b1", "before": 90})
    assert b"".join(encode_pieces(lazy)) == plain
    assert cbor2.dumps(LogState.from_snapshot(cbor2.loads(plain)).to_snapshot()) == plain
