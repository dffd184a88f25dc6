"""Model-based test of the pure log state machine (``LogState``).

A hypothesis ``RuleBasedStateMachine`` drives the real ``LogState`` (commands built by the real
``logact.server.commands`` validators) and a deliberately naive reference model side by side:
a dict of plain Python lists (position == list index, never deleted), a trim point per bus, a
dict of epochs and an unbounded dict of idempotency keys. Every reply is compared with the
model; invariants check dense positions, full reads, bus listings, summaries and that a CBOR
snapshot round trip reproduces the state exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from logact.server.command_types import Barrier, Done
from logact.server.commands import Limits, append_command, claim_command, trim_command
from logact.server.state import LogState

BUSES = ("a", "b", "agent/7")
TYPES = ("intent", "vote", "result")
AUTHORS = ("alice", "bob")
CLIENTS = ("c1", "c2", "c3")
FENCE_NAMES = ("driver", "exec")

bodies = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(min_value=-5, max_value=5), max_size=3),
)
entries_strategy = st.lists(st.tuples(st.sampled_from(TYPES), bodies), min_size=1, max_size=4)


@dataclass
class ModelEntry:
    ts: int
    type: str
    author: str
    body: Any
    size: int


@dataclass
class ModelBus:
    log: list[ModelEntry] = field(default_factory=list)  # index == position, never shrinks
    trim: int = 0
    last_ts: int = 0

    @property
    def tail(self) -> int:
        return len(self.log)

    def live(self) -> list[tuple[int, ModelEntry]]:
        return [(pos, self.log[pos]) for pos in range(self.trim, self.tail)]


class Model:
    """The trivially simple reference: no windows, no LRU, nothing clever."""

    def __init__(self) -> None:
        self.buses: dict[str, ModelBus] = {}
        self.epochs: dict[tuple[str, str], int] = {}
        self.dedup: dict[tuple[str, int], dict[str, int]] = {}
        self.applied = 0

    def append(
        self,
        bus_id: str,
        entries: list[tuple[str, Any, int]],
        author: str,
        ts: int,
        key: tuple[str, int] | None,
        expect: int | None,
        fence: tuple[str, int] | None,
    ) -> dict[str, Any]:
        self.applied += 1
        if key is not None:
            key = (f"{author}/{key[0]}", key[1])  # dedup keys are scoped by principal
        if key is not None and key in self.dedup:
            return {"ok": True, "duplicate": True, **self.dedup[key]}
        bus = self.buses.get(bus_id)
        tail = bus.tail if bus else 0
        if fence is not None:
            current = self.epochs.get((bus_id, fence[0]), 0)
            if fence[1] != current:
                return {"ok": False, "code": "fenced", "current_epoch": current}
        if expect is not None and expect != tail:
            return {"ok": False, "code": "condition_failed", "tail": tail}
        bus = self.buses.setdefault(bus_id, ModelBus())
        entry_ts = max(ts, bus.last_ts)
        bus.last_ts = entry_ts
        first = bus.tail
        for etype, body, size in entries:
            bus.log.append(ModelEntry(entry_ts, etype, author, body, size))
        reply = {"first": first, "last": bus.tail - 1, "ts": entry_ts}
        if key is not None:
            self.dedup[key] = reply
        return {"ok": True, "duplicate": False, **reply}

    def trim(self, bus_id: str, before: int) -> dict[str, Any]:
        self.applied += 1
        bus = self.buses.get(bus_id)
        if bus is None:
            return {"ok": False, "code": "unknown_bus"}
        if before > bus.tail:
            return {"ok": False, "code": "bad_request", "tail": bus.tail}
        bus.trim = max(bus.trim, before)
        return {"ok": True, "trim": bus.trim, "tail": bus.tail}

    def claim(self, bus_id: str, name: str) -> dict[str, Any]:
        self.applied += 1
        self.buses.setdefault(bus_id, ModelBus())
        self.epochs[(bus_id, name)] = self.epochs.get((bus_id, name), 0) + 1
        return {"ok": True, "epoch": self.epochs[(bus_id, name)]}


def stored(pos: int, entry: ModelEntry) -> tuple[int, int, str, str, Any, int]:
    return (pos, entry.ts, entry.type, entry.author, cbor2.dumps(entry.body), entry.size)


def cbor_roundtrip(state: LogState) -> LogState:
    return LogState.from_snapshot(cbor2.loads(cbor2.dumps(state.to_snapshot())))


def check_reply(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual["ok"] is expected["ok"], (actual, expected)
    if expected["ok"]:
        for name, value in expected.items():
            if name == "duplicate":
                assert actual.get("duplicate", False) is value, (actual, expected)
            else:
                assert actual[name] == value, (name, actual, expected)
    else:
        assert actual["code"] == expected["code"], (actual, expected)
        assert isinstance(actual["message"], str) and actual["message"]
        for name, value in expected.items():
            if name not in ("ok", "code"):
                assert actual["details"][name] == value, (name, actual, expected)


class LogStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sut = LogState()
        self.model = Model()
        self.clock = 1_000
        self.next_seq: dict[str, int] = dict.fromkeys(CLIENTS, 0)
        self.used_keys: list[tuple[str, int]] = []

    # ------------------------------------------------------------------ helpers
    def _tick(self, delta: int) -> int:
        """Command timestamps mostly advance but may go backwards (a new leader's clock)."""
        self.clock = max(0, self.clock + delta)
        # The default dedup TTL is an hour: the model (unbounded dedup) relies on never
        # reaching it within one run.
        assert self.clock < LogState().dedup_ttl_ms
        return self.clock

    def _tail(self, bus_id: str) -> int:
        bus = self.model.buses.get(bus_id)
        return bus.tail if bus else 0

    def _do_append(
        self,
        data: st.DataObject,
        bus_id: str,
        batch: list[tuple[str, Any]],
        author: str,
        key: tuple[str, int] | None,
        expect_kind: str,
        fence_kind: str,
        fence_name: str,
        delta: int,
    ) -> None:
        tail = self._tail(bus_id)
        request: dict[str, Any] = {
            "op": "append",
            "bus": bus_id,
            "entries": [{"type": etype, "body": cbor2.dumps(body)} for etype, body in batch],
            # A forged author in the request must never be used: it comes from the principal.
            "author": "mallory",
        }
        if key is not None:
            request["key"] = list(key)
        expect: int | None = None
        if expect_kind == "right":
            expect = tail
        elif expect_kind == "wrong":
            offset = data.draw(st.integers(min_value=1, max_value=3), label="expect offset")
            expect = tail - offset if tail >= offset and data.draw(st.booleans()) else tail + offset
        if expect is not None:
            request["expect_tail"] = expect
        fence: tuple[str, int] | None = None
        if fence_kind != "none":
            current = self.model.epochs.get((bus_id, fence_name), 0)
            if fence_kind == "current":
                epoch = current
            elif fence_kind == "stale" and current > 0:
                epoch = data.draw(st.integers(min_value=0, max_value=current - 1), label="stale")
            else:
                epoch = current + data.draw(st.integers(min_value=1, max_value=3), label="future")
            fence = (fence_name, epoch)
            request["fence"] = list(fence)
        ts = self._tick(delta)
        cmd = append_command(request, author, ts, Limits(), lambda etype: etype in TYPES)
        assert cmd.author == author
        sizes = [len(cbor2.dumps(body)) for _, body in batch]
        assert [entry.size for entry in cmd.entries] == sizes

        tail_before = {b: self.sut.tail(b)["tail"] for b in BUSES}
        actual = self.sut.apply(cmd).to_wire()
        expected = self.model.append(
            bus_id,
            [(t, b, s) for (t, b), s in zip(batch, sizes, strict=True)],
            author,
            ts,
            key,
            expect,
            fence,
        )
        check_reply(actual, expected)
        if actual.get("duplicate") or not actual["ok"]:
            # A retry or a rejected append never adds anything anywhere.
            assert {b: self.sut.tail(b)["tail"] for b in BUSES} == tail_before
        if key is not None and key not in self.used_keys:
            self.used_keys.append(key)

    # ------------------------------------------------------------------ rules
    @rule(
        data=st.data(),
        bus_id=st.sampled_from(BUSES),
        batch=entries_strategy,
        author=st.sampled_from(AUTHORS),
        keyed=st.booleans(),
        client=st.sampled_from(CLIENTS),
        expect_kind=st.sampled_from(("none", "none", "right", "wrong")),
        fence_kind=st.sampled_from(("none", "none", "current", "stale", "future")),
        fence_name=st.sampled_from(FENCE_NAMES),
        delta=st.integers(min_value=-50, max_value=500),
    )
    def append(
        self,
        data: st.DataObject,
        bus_id: str,
        batch: list[tuple[str, Any]],
        author: str,
        keyed: bool,
        client: str,
        expect_kind: str,
        fence_kind: str,
        fence_name: str,
        delta: int,
    ) -> None:
        key = None
        if keyed:
            key = (client, self.next_seq[client])
            self.next_seq[client] += 1
        self._do_append(
            data, bus_id, batch, author, key, expect_kind, fence_kind, fence_name, delta
        )

    @precondition(lambda self: bool(self.used_keys))
    @rule(
        data=st.data(),
        bus_id=st.sampled_from(BUSES),
        batch=entries_strategy,
        author=st.sampled_from(AUTHORS),
        expect_kind=st.sampled_from(("none", "right", "wrong")),
        fence_kind=st.sampled_from(("none", "current", "stale", "future")),
        fence_name=st.sampled_from(FENCE_NAMES),
        delta=st.integers(min_value=-50, max_value=500),
    )
    def retry(
        self,
        data: st.DataObject,
        bus_id: str,
        batch: list[tuple[str, Any]],
        author: str,
        expect_kind: str,
        fence_kind: str,
        fence_name: str,
        delta: int,
    ) -> None:
        """Re-send a previously used key (possibly with different contents or conditions)."""
        key = data.draw(st.sampled_from(self.used_keys), label="retried key")
        self._do_append(
            data, bus_id, batch, author, key, expect_kind, fence_kind, fence_name, delta
        )

    @rule(data=st.data(), bus_id=st.sampled_from(BUSES))
    def trim(self, data: st.DataObject, bus_id: str) -> None:
        before = data.draw(st.integers(min_value=0, max_value=self._tail(bus_id) + 2), label="at")
        cmd = trim_command({"bus": bus_id, "before": before}, self._tick(1))
        check_reply(self.sut.apply(cmd).to_wire(), self.model.trim(bus_id, before))

    @rule(bus_id=st.sampled_from(BUSES), name=st.sampled_from(FENCE_NAMES))
    def claim(self, bus_id: str, name: str) -> None:
        cmd = claim_command({"bus": bus_id, "name": name}, self._tick(1))
        check_reply(self.sut.apply(cmd).to_wire(), self.model.claim(bus_id, name))

    @rule()
    def barrier(self) -> None:
        self.model.applied += 1
        assert self.sut.apply(Barrier()) == Done()

    @rule()
    def restart_from_snapshot(self) -> None:
        """Continue on a state rebuilt from a CBOR-encoded snapshot (a follower catching up)."""
        self.sut = cbor_roundtrip(self.sut)

    @rule(
        data=st.data(),
        bus_id=st.sampled_from((*BUSES, "never-used")),
        limit=st.integers(min_value=1, max_value=6),
        types=st.none() | st.frozensets(st.sampled_from((*TYPES, "other")), min_size=1),
        max_bytes=st.integers(min_value=1, max_value=40),
    )
    def read(
        self,
        data: st.DataObject,
        bus_id: str,
        limit: int,
        types: frozenset[str] | None,
        max_bytes: int,
    ) -> None:
        start = data.draw(st.integers(min_value=0, max_value=self._tail(bus_id) + 2), label="at")
        self._check_read(bus_id, start, limit, types, max_bytes)

    def _check_read(
        self,
        bus_id: str,
        start: int,
        limit: int,
        types: frozenset[str] | None,
        max_bytes: int,
    ) -> None:
        """A read against its specification, evaluated on the model."""
        bus = self.model.buses.get(bus_id)
        reply = self.sut.read(bus_id, start, limit, types, max_bytes)
        if bus is None:
            assert reply["ok"] is False and reply["code"] == "unknown_bus"
            return
        if start < bus.trim:
            assert reply["ok"] is False and reply["code"] == "trimmed"
            assert reply["details"]["trim"] == bus.trim
            return
        assert reply["ok"] is True
        assert (reply["tail"], reply["trim"]) == (bus.tail, bus.trim)
        matching = [
            stored(pos, e)
            for pos, e in bus.live()
            if pos >= start and (types is None or e.type in types)
        ]
        got = [tuple(e) for e in reply["entries"]]
        nxt = reply["next"]
        # What is returned is exactly a prefix of the matching entries, within the limits.
        assert got == matching[: len(got)]
        assert len(got) <= limit
        assert len(got) <= 1 or sum(e[5] for e in got) <= max_bytes
        # It always makes progress when there is something to read (one entry may exceed
        # max_bytes on its own, or nothing could ever be read).
        assert bool(got) == bool(matching)
        # Every matching entry before ``next`` was returned; ``next`` never skips one.
        low = got[-1][0] + 1 if got else start
        assert low <= nxt <= max(start, bus.tail)
        assert all(e[0] >= nxt for e in matching[len(got) :])
        if len(got) < len(matching):
            # It stopped early only because of the limit or the byte budget.
            assert len(got) == limit or sum(e[5] for e in got) + matching[len(got)][5] > max_bytes
        elif len(got) < limit:
            assert nxt == max(start, bus.tail)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def bounded_reads_meet_their_spec(self) -> None:
        for bus_id, bus in self.model.buses.items():
            for start in {bus.trim, (bus.trim + bus.tail) // 2}:
                for limit, max_bytes in ((2, 8), (5, 25)):
                    for types in (None, frozenset({"vote"})):
                        self._check_read(bus_id, start, limit, types, max_bytes)

    @invariant()
    def buses_match(self) -> None:
        expected = [
            {
                "bus": bus_id,
                "tail": bus.tail,
                "trim": bus.trim,
                "bytes": sum(e.size for _, e in bus.live()),
            }
            for bus_id, bus in sorted(self.model.buses.items())
        ]
        assert self.sut.list_buses() == expected
        summary = self.sut.summary()
        assert summary["buses"] == len(self.model.buses)
        assert summary["entries"] == sum(len(b.live()) for b in self.model.buses.values())
        assert summary["bytes"] == sum(item["bytes"] for item in expected)
        assert summary["applied"] == self.model.applied
        for bus_id in (*BUSES, "never-used"):
            bus = self.model.buses.get(bus_id)
            tail = self.sut.tail(bus_id)
            if bus is None:
                assert tail == {"ok": True, "tail": 0, "trim": 0, "exists": False}
            else:
                assert tail == {"ok": True, "tail": bus.tail, "trim": bus.trim, "exists": True}
            for name in FENCE_NAMES:
                assert self.sut.epoch(bus_id, name) == self.model.epochs.get((bus_id, name), 0)

    @invariant()
    def positions_dense_and_reads_equal_model(self) -> None:
        for bus_id, bus in self.model.buses.items():
            reply = self.sut.read(bus_id, bus.trim, 10**6, None, 10**9)
            entries = [tuple(e) for e in reply["entries"]]
            assert [e[0] for e in entries] == list(range(bus.trim, bus.tail))
            assert entries == [stored(pos, e) for pos, e in bus.live()]
            assert reply["next"] == bus.tail
            # Per-bus timestamps never go backwards.
            stamps = [e[1] for e in entries]
            assert stamps == sorted(stamps)

    @invariant()
    def snapshot_roundtrip_is_equal(self) -> None:
        image = self.sut.to_snapshot()
        restored = cbor_roundtrip(self.sut)
        assert cbor2.dumps(restored.to_snapshot()) == cbor2.dumps(image)
        assert restored.list_buses() == self.sut.list_buses()
        assert restored.summary() == self.sut.summary()
        for bus_id in self.sut.buses:
            trim = self.sut.tail(bus_id)["trim"]
            assert restored.read(bus_id, trim, 10**6, None, 10**9) == self.sut.read(
                bus_id, trim, 10**6, None, 10**9
            )
            for name in FENCE_NAMES:
                assert restored.epoch(bus_id, name) == self.sut.epoch(bus_id, name)

    @invariant()
    def dedup_remembers_every_successful_key(self) -> None:
        assert {(cid, seq) for cid, rec in self.sut.clients.items() for seq in rec.results} == set(
            self.model.dedup
        )


TestLogStateMachine = LogStateMachine.TestCase
TestLogStateMachine.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
