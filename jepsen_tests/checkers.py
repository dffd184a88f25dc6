"""Pure checkers of chaos-run histories (records as in docs/chaos.md and jepsen_tests/history.py).

Each checker is ``list[dict] -> list[Anomaly]``, where an anomaly's ``ops`` are indexes into that
list. Nothing here does I/O, reads a clock or draws a random number: the same history always
gives the same verdict, and a checker can be tested on hand-made histories.

Positions are visible to clients (every acknowledged append says where it landed; every read
says what is where), so no search over linearizations is needed: every check is a map lookup or
a sweep over ops sorted by time, O(n log n) in the number of observations.

Log records may carry a ``bus``; the log checkers compare only records of the same bus (a
record without one is on bus ``""``). Times compare strictly: A "completed before" B was
invoked only if ``A.complete < B.invoke``; equal stamps count as concurrent.

Responsibilities, so that one fault names one cause (a few faults are seen by two checkers,
e.g. a duplicated append is both a payload at two positions and an append applied twice):

- ``total_order``: observations agree with each other (one payload per position, one position
  per payload) and every slice read is gap-free;
- ``lost_writes``: acknowledgements agree with the final read;
- ``real_time``: positions respect the real-time order of appends;
- ``linearizable_reads``: what reads observed is fresh, monotonic and never disappears;
- ``subscriptions``: each subscription's deliveries, on their own and against the final read;
- ``node_state``: each node's own copy of every bus, against the final linearizable reads;
- the agent checkers judge the final content of each agent bus plus the external ledger.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.introspection.safety import SafetyReport, check_bus
from logact.jepsen_tests.history import (
    META_OPS,
    Op,
    fault_window,
    is_window_fault,
    parse_ledger_line,
    validate_history,
)
from logact.protocol.codec import Entry

#: How many positions/payloads a message lists before it says "and N more".
SHOW = 5


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A violated property; ``ops`` are the history indexes that witness it (sorted)."""

    checker: str
    message: str
    ops: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(sorted(set(self.ops))))

    def to_dict(self) -> dict[str, Any]:
        return {"checker": self.checker, "message": self.message, "ops": list(self.ops)}


def _show(items: Iterable[Any]) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:SHOW])
    return shown + (f" and {len(items) - SHOW} more" if len(items) > SHOW else "")


def _bus(op: Op) -> str:
    return op.get("bus", "")


def _on(bus: str) -> str:
    return f" of bus {bus!r}" if bus else ""


def _ok(op: Op, kind: str) -> bool:
    return op["op"] == kind and op["outcome"] == "ok"


# --- the log as the clients saw it -------------------------------------------------------------


@dataclass(slots=True)
class _Final:
    """The last ok final_read of a bus."""

    index: int
    start: int
    at: dict[int, str]  # position -> payload
    where: dict[str, list[int]]  # payload -> positions
    tail: int  # one past the highest position read (start if it read nothing)


def _finals(history: list[Op]) -> dict[str, _Final]:
    finals: dict[str, _Final] = {}
    for i, op in enumerate(history):
        if not _ok(op, "final_read"):
            continue
        start = op.get("start", 0)
        at: dict[int, str] = {}
        where: dict[str, list[int]] = defaultdict(list)
        for pos, payload in op["entries"]:
            at[pos] = payload
            where[payload].append(pos)
        tail = max(at, default=start - 1) + 1
        finals[_bus(op)] = _Final(i, start, at, dict(where), max(tail, start))
    return finals


def _observations(history: list[Op]) -> Iterator[tuple[int, str, list[list[Any]]]]:
    """(op index, bus, [[pos, payload, ...], ...]) for every read, subscription and final read."""
    for i, op in enumerate(history):
        kind = op["op"]
        if kind in ("read", "final_read") and op["outcome"] == "ok":
            yield i, _bus(op), op["entries"]
        elif kind == "subscribe" and "deliveries" in op:
            yield i, _bus(op), op["deliveries"]


def _gap(op: Op, entries: list[list[Any]], expected: int) -> str | None:
    """Why ``entries`` are not the consecutive positions from ``expected``, or None."""
    if not entries and op.get("tail") is not None and expected < op["tail"]:
        return f"returned nothing from {expected} although its tail is {op['tail']}"
    for pos, *_ in entries:
        if pos != expected:
            return f"expected position {expected} next, got {pos}"
        expected += 1
    if entries and op.get("next") is not None and op["next"] != expected:
        return f"returned entries up to {expected - 1} but next = {op['next']}"
    if entries and op.get("tail") is not None and op["tail"] < expected:
        return f"returned position {expected - 1} beyond its own tail {op['tail']}"
    return None


def _clashes(
    first: Mapping[str, Mapping[Any, tuple[Any, int]]],
    more: Mapping[tuple[str, Any], Mapping[Any, int]],
    describe: Callable[[str, Any, dict[Any, int]], str],
) -> list[Anomaly]:
    """One anomaly per key seen with more than one value ({value: first op index})."""
    out = []
    for (bus, key), extra in sorted(more.items()):
        value, op = first[bus][key]
        seen = {value: op, **extra}
        out.append(Anomaly("total_order", describe(bus, key, seen), tuple(seen.values())))
    return out


def total_order(history: list[Op]) -> list[Anomaly]:
    """Every position holds one payload and every payload one position, across all reads,
    subscription deliveries and final reads; each read and final read is a gap-free slice.

    Acknowledged positions are not observations here (``lost_writes`` compares them). A read
    with a ``types`` filter may skip positions, so only its consistency is checked; a read
    below the trim point starts at ``trim``.
    """
    out: list[Anomaly] = []
    # per bus: position -> (payload, op) first seen, and later different payloads
    pos_first: dict[str, dict[int, tuple[str, int]]] = defaultdict(dict)
    pay_first: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    pos_more: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    pay_more: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for i, bus, entries in _observations(history):
        by_pos, by_pay = pos_first[bus], pay_first[bus]
        for pos, payload, *_ in entries:
            seen = by_pos.get(pos)
            if seen is None:
                by_pos[pos] = (payload, i)
            elif seen[0] != payload:
                pos_more[bus, pos].setdefault(payload, i)
            where = by_pay.get(payload)
            if where is None:
                by_pay[payload] = (pos, i)
            elif where[0] != pos:
                pay_more[bus, payload].setdefault(pos, i)
        op = history[i]
        if op["op"] == "subscribe" or "types" in op:
            continue
        start = op.get("start", 0)
        problem = _gap(op, entries, max(start, op.get("trim", 0)))
        if problem:
            what = "final read" if op["op"] == "final_read" else f"read from {start}"
            out.append(Anomaly("total_order", f"{what}{_on(bus)} is not gap-free: {problem}", (i,)))
    out += _clashes(
        pos_first,
        pos_more,
        lambda bus, pos, seen: (
            f"position {pos}{_on(bus)} holds {len(seen)} payloads: "
            + ", ".join(f"{p!r} (op {j})" for p, j in seen.items())
        ),
    )
    out += _clashes(
        pay_first,
        pay_more,
        lambda bus, payload, seen: (
            f"payload {payload!r}{_on(bus)} is at {len(seen)} positions: "
            + ", ".join(f"{p} (op {j})" for p, j in sorted(seen.items()))
        ),
    )
    return out


def lost_writes(history: list[Op]) -> list[Anomaly]:
    """Acknowledgements against the final read of their bus.

    - an ``ok`` append is in the final read exactly once, at the position it was told;
    - a ``fail`` append appears nowhere (no read, subscription or final read holds its payload);
    - an ``info`` append appears at most once in the final read;
    - every payload of the final read was written by some append op (no phantom entries);
    - a bus with appends has an ok final read (otherwise nothing could be checked).
    """
    out: list[Anomaly] = []
    finals = _finals(history)
    appends: dict[str, list[int]] = defaultdict(list)
    failed: dict[str, dict[str, int]] = defaultdict(dict)  # bus -> payload -> fail append op
    for i, op in enumerate(history):
        if op["op"] == "append":
            appends[_bus(op)].append(i)
            if op["outcome"] == "fail":
                failed[_bus(op)][op["payload"]] = i
    for bus, indexes in sorted(appends.items()):
        final = finals.get(bus)
        if final is None:
            out.append(
                Anomaly(
                    "lost_writes",
                    f"no ok final_read{_on(bus)}: its {len(indexes)} appends cannot be checked",
                    (),
                )
            )
            continue
        written: set[str] = set()
        for i in indexes:
            op = history[i]
            payload, outcome = op["payload"], op["outcome"]
            written.add(payload)
            where = final.where.get(payload, [])
            if outcome == "ok":
                pos = op["position"]
                if final.at.get(pos) != payload:
                    found = f"is at {_show(where)}" if where else "is missing"
                    out.append(
                        Anomaly(
                            "lost_writes",
                            f"ok append {payload!r}{_on(bus)} acknowledged at position {pos} "
                            f"{found} in the final read (which has {final.at.get(pos)!r} there)",
                            (i, final.index),
                        )
                    )
            if outcome != "fail" and len(where) > 1:
                out.append(
                    Anomaly(
                        "lost_writes",
                        f"{outcome} append {payload!r}{_on(bus)} was applied {len(where)} times, "
                        f"at positions {_show(where)}",
                        (i, final.index),
                    )
                )
        for pos, payload in sorted(final.at.items()):
            if payload not in written:
                out.append(
                    Anomaly(
                        "lost_writes",
                        f"the final read{_on(bus)} holds {payload!r} at position {pos}, which "
                        "no append wrote",
                        (final.index,),
                    )
                )
    if failed:
        reported: set[tuple[str, str]] = set()
        for j, bus, entries in _observations(history):
            fails = failed.get(bus)
            if not fails:
                continue
            for pos, payload, *_ in entries:
                i = fails.get(payload)
                if i is not None and (bus, payload) not in reported:
                    reported.add((bus, payload))
                    out.append(
                        Anomaly(
                            "lost_writes",
                            f"failed append {payload!r}{_on(bus)} appears at position {pos} "
                            f"(op {j} saw it)",
                            (i, j),
                        )
                    )
    return out


def real_time(history: list[Op]) -> list[Anomaly]:
    """A completed before B was invoked ⇒ position(A) < position(B).

    A ranges over ok appends (their acknowledged position). B ranges over ok appends and over
    ``info`` appends that landed (their position in the final read: they were invoked at a known
    time even if their completion is unknown). One anomaly per B, naming the completed append
    with the highest position.
    """
    out: list[Anomaly] = []
    finals = _finals(history)
    done: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (complete, pos, op)
    started: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (invoke, pos, op)
    for i, op in enumerate(history):
        if op["op"] != "append":
            continue
        bus = _bus(op)
        if op["outcome"] == "ok":
            done[bus].append((op["complete"], op["position"], i))
            started[bus].append((op["invoke"], op["position"], i))
        elif op["outcome"] == "info" and bus in finals:
            where = finals[bus].where.get(op["payload"])
            if where:
                started[bus].append((op["invoke"], where[0], i))
    for bus, subjects in sorted(started.items()):
        acks = sorted(done[bus])
        subjects.sort()
        j, best_pos, best_op = 0, -1, -1
        for invoke, pos, i in subjects:
            while j < len(acks) and acks[j][0] < invoke:
                if acks[j][1] > best_pos:
                    best_pos, best_op = acks[j][1], acks[j][2]
                j += 1
            if best_pos >= pos:
                a, b = history[best_op], history[i]
                out.append(
                    Anomaly(
                        "real_time",
                        f"append {a['payload']!r} completed at position {best_pos} before append "
                        f"{b['payload']!r} was invoked, which got the lower or equal position "
                        f"{pos}{_on(bus)}",
                        (best_op, i),
                    )
                )
    return out


def _tail_witnesses(op: Op) -> Iterator[tuple[int, int]]:
    """(time, n): at ``time`` the log was known to hold at least ``n`` entries."""
    kind, ok = op["op"], op["outcome"] == "ok"
    if kind == "append" and ok:
        yield op["complete"], op["position"] + 1
    elif kind == "check_tail" and ok:
        yield op["complete"], op["tail"]
    elif kind == "read" and ok:
        if op.get("tail") is not None:
            yield op["complete"], op["tail"]
        if op["entries"]:
            yield op["complete"], max(pos for pos, _ in op["entries"]) + 1
    elif kind == "subscribe":
        for pos, _, t in op.get("deliveries", ()):
            yield t, pos + 1


def linearizable_reads(history: list[Op]) -> list[Anomaly]:
    """Reads are fresh, monotonic, and what they saw never disappears.

    - freshness: an ok ``check_tail``, or an ok ``read`` that reports its ``tail``, must report
      a tail >= n for every witness completed before it was invoked, where witnesses are: ok
      appends (n = position + 1), earlier ok reads and check_tails (their tail; a read's
      highest entry + 1), and subscription deliveries (n = position + 1 at delivery time).
      Reads marked ``"stale": true`` are witnesses but are not held to freshness. When the
      violating witness is an earlier read of the same process, the tail went backwards;
    - no disappearance: every entry an ok read returned is in the final read at its position,
      and no read or check_tail saw a tail beyond the final read's.
    """
    out: list[Anomaly] = []
    witnesses: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (time, n, op)
    subjects: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (invoke, tail, op)
    for i, op in enumerate(history):
        bus = _bus(op)
        for t, n in _tail_witnesses(op):
            witnesses[bus].append((t, n, i))
        fresh = (_ok(op, "check_tail") or _ok(op, "read")) and not op.get("stale")
        if fresh and op.get("tail") is not None:
            subjects[bus].append((op["invoke"], op["tail"], i))
    for bus, reads in sorted(subjects.items()):
        seen = sorted(witnesses[bus])
        reads.sort()
        j, best_n, best_op = 0, 0, -1
        for invoke, tail, i in reads:
            while j < len(seen) and seen[j][0] < invoke:
                if seen[j][1] > best_n:
                    best_n, best_op = seen[j][1], seen[j][2]
                j += 1
            if tail < best_n:
                out.append(_stale(history, best_op, best_n, i, tail, bus))
    finals = _finals(history)
    for i, op in enumerate(history):
        final = finals.get(_bus(op))
        if final is None or not (_ok(op, "read") or _ok(op, "check_tail")):
            continue
        bus = _bus(op)
        gone = [p for p, _ in op.get("entries", ()) if p not in final.at]
        if gone:
            out.append(
                Anomaly(
                    "linearizable_reads",
                    f"{op['op']} saw positions {_show(gone)}{_on(bus)} that are not in the "
                    f"final read (it ends at {final.tail})",
                    (i, final.index),
                )
            )
        elif op.get("tail") is not None and op["tail"] > final.tail:
            out.append(
                Anomaly(
                    "linearizable_reads",
                    f"{op['op']} saw tail {op['tail']}{_on(bus)} but the final read ends at "
                    f"{final.tail}: entries disappeared",
                    (i, final.index),
                )
            )
    return out


def _stale(history: list[Op], w: int, n: int, i: int, tail: int, bus: str) -> Anomaly:
    witness, op = history[w], history[i]
    if witness["process"] == op["process"] and witness["op"] in ("read", "check_tail"):
        message = (
            f"tail went backwards for {op['process']!r}{_on(bus)}: {n} (op {w}) then "
            f"{tail} (op {i})"
        )
    elif witness["op"] == "append":
        message = (
            f"stale {op['op']}{_on(bus)}: append {witness['payload']!r} completed at position "
            f"{n - 1} before it was invoked, but it saw tail {tail}"
        )
    else:
        message = (
            f"stale {op['op']}{_on(bus)}: {witness['op']} by {witness['process']!r} had seen "
            f"{n} entries before it was invoked, but it saw tail {tail}"
        )
    return Anomaly("linearizable_reads", message, (w, i))


def subscriptions(history: list[Op]) -> list[Anomaly]:
    """Each subscription's deliveries are exactly the positions start, start+1, ... in order
    (no gap, no duplicate, no reordering) and agree with the final read of the bus.

    Any outcome counts: a subscription cut off by the end of the run must still have delivered
    a gap-free prefix.
    """
    out: list[Anomaly] = []
    finals = _finals(history)
    for i, op in enumerate(history):
        if op["op"] != "subscribe" or "deliveries" not in op:
            continue
        bus, start, deliveries = _bus(op), op["start"], op["deliveries"]
        what = f"subscription from {start}{_on(bus)} by {op['process']!r}"
        positions = [pos for pos, _, _ in deliveries]
        counts = Counter(positions)
        dups = sorted(p for p, c in counts.items() if c > 1)
        if dups:
            out.append(Anomaly("subscriptions", f"{what} delivered {_show(dups)} twice", (i,)))
        below = sorted(p for p in counts if p < start)
        if below:
            out.append(
                Anomaly("subscriptions", f"{what} delivered {_show(below)}, below its start", (i,))
            )
        holes: list[int] = []  # the first few missing positions
        n_missing, expected = 0, start
        for pos in sorted(p for p in counts if p >= start):
            n_missing += pos - expected
            holes.extend(range(expected, min(pos, expected + SHOW)))
            expected = pos + 1
        if n_missing:
            shown = ", ".join(map(str, holes[:SHOW]))
            more = f" and {n_missing - SHOW} more" if n_missing > SHOW else ""
            out.append(Anomaly("subscriptions", f"{what} has a gap: skipped {shown}{more}", (i,)))
        if not dups and positions != sorted(positions):
            out.append(Anomaly("subscriptions", f"{what} delivered out of order", (i,)))
        final = finals.get(bus)
        if final is None:
            continue
        wrong = [(p, v) for p, v, _ in deliveries if final.at.get(p) != v]
        if wrong:
            pos, payload = wrong[0]
            out.append(
                Anomaly(
                    "subscriptions",
                    f"{what} delivered {payload!r} at {pos}, but the final read has "
                    f"{final.at.get(pos)!r} there ({len(wrong)} such deliveries)",
                    (i, final.index),
                )
            )
    return out


def _bus_state(op: Op, bus: str) -> tuple[int, dict[int, str]]:
    """(trim point, position -> digest) of ``bus`` in a final_state or node_state record."""
    state = op["buses"].get(bus)
    if state is None:
        return 0, {}
    return state["trim"], {pos: digest for pos, digest in state["entries"]}


def node_states(history: list[Op]) -> list[Anomaly]:
    """Every node's own copy of every bus, read once the run is over, equals the final log.

    ``final_state`` records are linearizable reads of every bus taken before and after the
    nodes' own copies (``node_state``, stale reads of each node) were read. Committed logs only
    grow, so the last final read extends the first, and each node holds every entry the first
    read held (above its own trim point) and nothing the last read does not hold at that
    position. Every node the final reads name must have a readable copy: the check cannot pass
    by reading nothing.
    """
    finals = [i for i, op in enumerate(history) if op["op"] == "final_state"]
    if not finals:
        return []
    good = [i for i in finals if history[i]["outcome"] == "ok"]
    if not good:
        return [Anomaly("node_state", "no final read of every bus succeeded", tuple(finals))]
    lo, hi = good[0], good[-1]
    lower, upper = history[lo], history[hi]
    out: list[Anomaly] = []

    def compare(held: Op, index: int, who: str) -> None:
        for bus in sorted(set(held["buses"]) | set(lower["buses"])):
            trim, have = _bus_state(held, bus)
            upper_trim, final = _bus_state(upper, bus)
            earlier = _bus_state(lower, bus)[1]
            wrong = [
                p
                for p, d in have.items()
                if (p >= upper_trim and final.get(p) != d) or earlier.get(p, d) != d
            ]
            if wrong:
                out.append(
                    Anomaly(
                        "node_state",
                        f"{who} holds entries{_on(bus)} that differ from the final reads: "
                        f"at {_show(sorted(wrong))}",
                        (index, lo, hi),
                    )
                )
            missing = sorted(p for p in earlier if p >= trim and p not in have)
            if missing:
                out.append(
                    Anomaly(
                        "node_state",
                        f"{who} lacks committed entries{_on(bus)}: {_show(missing)}",
                        (index, lo),
                    )
                )

    if hi != lo:
        compare(upper, hi, "the last final read")
    states = {op["node"]: i for i, op in enumerate(history) if op["op"] == "node_state"}
    for node in upper["nodes"]:
        index = states.get(node)
        if index is None:
            out.append(Anomaly("node_state", f"{node}'s own copy of the log was not read", (hi,)))
        elif history[index]["outcome"] != "ok":
            error = history[index].get("error", "no reason recorded")
            out.append(
                Anomaly("node_state", f"{node}'s own copy could not be read: {error}", (index,))
            )
        else:
            compare(history[index], index, node)
    return out


# --- agent buses -------------------------------------------------------------------------------

#: Entry types whose unreadability could hide an execution or a decision.
_DECISIVE = frozenset({"intent", "commit", "abort", "exec_start", "result"})


@dataclass(slots=True)
class _AgentBus:
    """One final_bus record folded: the first decision, exec_starts and results per intent."""

    index: int
    state: BusState
    safety: SafetyReport  # the independent checker's verdict on the raw entries
    intents: set[int] = field(default_factory=set)  # positions of intent entries
    decided: dict[int, tuple[int, bool]] = field(default_factory=dict)  # id -> (pos, commit?)
    starts: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    results: dict[int, list[tuple[int, e.Result]]] = field(
        default_factory=lambda: defaultdict(list)
    )


@dataclass(slots=True)
class _AgentView:
    buses: dict[str, _AgentBus]
    ledger: list[tuple[int, str, int, str]]  # (op, bus, intent_id, token)
    kills: dict[str, list[int]]  # bus -> kill-agent faults of its executor


def _agent_view(history: list[Op]) -> _AgentView:
    buses: dict[str, _AgentBus] = {}
    ledger: list[tuple[int, str, int, str]] = []
    kills: dict[str, list[int]] = defaultdict(list)
    for i, op in enumerate(history):
        if _ok(op, "final_bus"):
            buses[op["bus"]] = _fold_bus(i, op)
        elif _ok(op, "ledger"):
            ledger.extend((i, *parse_ledger_line(line)) for line in op["lines"])
        elif is_window_fault(op) and op["fault"] == "kill-agent":
            for target in op["targets"]:
                bus, _, component = target.rpartition(":")
                if component == "executor":
                    kills[bus].append(i)
                elif not bus:  # the whole agent
                    kills[target].append(i)
    return _AgentView(buses, ledger, kills)


def _fold_bus(index: int, op: Op) -> _AgentBus:
    raw = sorted(op["entries"], key=lambda entry: entry[0])
    state = BusState(op["bus"])
    for pos, kind, body in raw:
        state.apply(Entry(pos, 0, kind, "?", body))
    # The bus's safety is read from the raw entries, never through the runtime's fold.
    view = _AgentBus(index, state, check_bus(raw, finished=False))
    for pos, kind, body in raw:
        intent_id = body.get("intent_id") if isinstance(body, dict) else None
        if kind == "intent":
            view.intents.add(pos)
        elif kind in ("commit", "abort") and isinstance(intent_id, int):
            view.decided.setdefault(intent_id, (pos, kind == "commit"))
    for raw_entry, entry in state.entries:
        match entry:
            case e.ExecStart():
                view.starts[entry.intent_id].append(raw_entry.pos)
            case e.Result():
                view.results[entry.intent_id].append((raw_entry.pos, entry))
    return view


def _why_not_runnable(view: _AgentBus, intent_id: int, at: int | None) -> str | None:
    """Why intent ``intent_id`` could not run (at bus position ``at``, if known), or None."""
    if intent_id not in view.intents:
        return f"intent {intent_id} does not exist"
    decided = view.decided.get(intent_id)
    if decided is None:
        return f"intent {intent_id} was never decided"
    pos, committed = decided
    if not committed:
        return f"intent {intent_id} was vetoed (abort at {pos})"
    if at is not None and pos > at:
        return f"intent {intent_id} was undecided then (its commit is at {pos})"
    return None


#: The independent checker's rules (agent/introspection/safety.py) each anomaly kind reports.
_NOT_VETOED = frozenset({"ran_without_commit", "conflicting_decisions", "unreadable"})
_ONCE = frozenset({"ran_twice", "result_without_start"})


def _safety_anomalies(
    bus: str, agent: _AgentBus, rules: frozenset[str], kind: str
) -> list[Anomaly]:
    return [
        Anomaly(kind, f"bus {bus!r}: {v.detail}", (agent.index,))
        for v in agent.safety.violations
        if v.rule in rules
    ]


def no_vetoed_execution(history: list[Op]) -> list[Anomaly]:
    """Nothing runs without a prior commit.

    Each exec_start at position p needs its intent's first decision to be a commit below p;
    each ledger line needs its intent's first decision to be a commit (the ledger has no
    position) and a final_bus record of its bus. An unreadable intent, decision, exec_start or
    result entry is reported too: it could hide an execution.
    """
    out: list[Anomaly] = []
    view = _agent_view(history)
    for bus, agent in sorted(view.buses.items()):
        out += _safety_anomalies(bus, agent, _NOT_VETOED, "no_vetoed_execution")
        reported = {p for v in agent.safety.violations for p in v.positions}
        for raw, problem in agent.state.invalid:
            if raw.pos in reported:
                continue
            if raw.type in _DECISIVE:
                out.append(
                    Anomaly(
                        "no_vetoed_execution",
                        f"bus {bus!r}: unreadable {raw.type} at {raw.pos}: {problem}",
                        (agent.index,),
                    )
                )
    for i, bus, intent_id, token in view.ledger:
        agent = view.buses.get(bus)
        why = (
            f"there is no final_bus record of bus {bus!r}"
            if agent is None
            else _why_not_runnable(agent, intent_id, None)
        )
        if why:
            ops = (i,) if agent is None else (i, agent.index)
            out.append(
                Anomaly(
                    "no_vetoed_execution",
                    f"ledger line {bus} {intent_id} {token}: ran, but {why}",
                    ops,
                )
            )
    return out


def at_most_once(history: list[Op]) -> list[Anomaly]:
    """Each intent has at most one exec_start, at most one result and at most one ledger line,
    and every ledger line has an exec_start on its bus (the executor marks an action before
    running it; an unmarked run would be re-run after a restart instead of reported in doubt).
    """
    out: list[Anomaly] = []
    view = _agent_view(history)
    for bus, agent in sorted(view.buses.items()):
        out += _safety_anomalies(bus, agent, _ONCE, "at_most_once")
    lines: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
    for i, bus, intent_id, token in view.ledger:
        lines[bus, intent_id].append((i, token))
    for (bus, intent_id), done in sorted(lines.items()):
        ops = tuple(i for i, _ in done)
        if len(done) > 1:
            out.append(
                Anomaly(
                    "at_most_once",
                    f"bus {bus!r}: intent {intent_id} ran {len(done)} times (ledger tokens "
                    f"{_show(t for _, t in done)})",
                    ops,
                )
            )
        agent = view.buses.get(bus)
        if agent is not None and not agent.starts.get(intent_id):
            out.append(
                Anomaly(
                    "at_most_once",
                    f"bus {bus!r}: intent {intent_id} ran (ledger) without an exec_start",
                    (*ops, agent.index),
                )
            )
    return out


def in_doubt_surfaced(history: list[Op]) -> list[Anomaly]:
    """Interrupted actions are reported in doubt, and only interrupted ones.

    Per bus, on the final bus content and the ``kill-agent`` faults whose targets name
    ``"<bus>:executor"`` (or the whole agent, ``"<bus>"``; faults with outcome ``fail`` were not
    applied and do not count):

    1. every exec_start has a result after it: an action interrupted by an executor kill must
       have been surfaced by the restarted executor as an in-doubt result (the workload lets
       the agent settle before the final read, so an action still running is also reported);
    2. every in-doubt result follows an exec_start of its intent (only a started action can be
       interrupted);
    3. the bus has at most as many in-doubt results as executor kills: the executor runs one
       action at a time, so each kill interrupts at most one, and a surplus means an executor
       reported an interruption that did not happen (or a normal result was lost).

    Bus entries carry no runner time, so "started before the kill" cannot be tested directly;
    rules 1 and 3 together bound it from both sides.
    """
    out: list[Anomaly] = []
    view = _agent_view(history)
    for bus, agent in sorted(view.buses.items()):
        kills = view.kills.get(bus, [])
        in_doubt: list[int] = []
        for intent_id, starts in sorted(agent.starts.items()):
            first = min(starts)
            if not any(pos > first for pos, _ in agent.results.get(intent_id, ())):
                cause = (
                    f"after {len(kills)} executor kill(s) it was never reported in doubt"
                    if kills
                    else "the executor was never killed, yet the action has no result"
                )
                out.append(
                    Anomaly(
                        "in_doubt_surfaced",
                        f"bus {bus!r}: intent {intent_id} started at {first} has no result: "
                        f"{cause}",
                        (agent.index, *kills),
                    )
                )
        for intent_id, results in sorted(agent.results.items()):
            starts = agent.starts.get(intent_id, [])
            for pos, result in results:
                if not result.in_doubt:
                    continue
                in_doubt.append(intent_id)
                if not any(s < pos for s in starts):
                    out.append(
                        Anomaly(
                            "in_doubt_surfaced",
                            f"bus {bus!r}: in-doubt result at {pos} for intent {intent_id}, "
                            "which has no exec_start before it",
                            (agent.index,),
                        )
                    )
        if len(in_doubt) > len(kills):
            out.append(
                Anomaly(
                    "in_doubt_surfaced",
                    f"bus {bus!r}: {len(in_doubt)} in-doubt results (intents "
                    f"{_show(in_doubt)}) but only {len(kills)} executor kill(s)",
                    (agent.index, *kills),
                )
            )
    return out


def tasks_finished(history: list[Op]) -> list[Anomaly]:
    """Every agent_input got an answer: an agent_output that names it (``input_id``), or an
    inf_in after it followed by an agent_output (an input arriving during a loop is buffered
    into that loop's next inference, and that loop's output names only the input that woke it).
    """
    out: list[Anomaly] = []
    view = _agent_view(history)
    for bus, agent in sorted(view.buses.items()):
        inputs: list[int] = []
        inf_ins: list[int] = []
        named: set[int] = set()
        last_output = -1
        for raw, entry in agent.state.entries:
            match entry:
                case e.AgentInput():
                    inputs.append(raw.pos)
                case e.InfIn():
                    inf_ins.append(raw.pos)
                case e.AgentOutput():
                    last_output = raw.pos
                    if entry.input_id is not None and entry.input_id < raw.pos:
                        named.add(entry.input_id)
        for pos in inputs:
            if pos in named:
                continue
            k = bisect.bisect_right(inf_ins, pos)
            if k < len(inf_ins) and inf_ins[k] < last_output:
                continue
            out.append(
                Anomaly(
                    "tasks_finished",
                    f"bus {bus!r}: the agent_input at {pos} has no agent_output",
                    (agent.index,),
                )
            )
    return out


# --- availability ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Client ops of one fault window: a measurement, never an anomaly.

    An op belongs to the window if it was invoked in ``[start, end]``. ``recovery_ns`` is the
    time from the window's end to the first ok completion at or after it (whenever that op was
    invoked); None if no op completed ok after the window.
    """

    index: int  # the fault record
    fault: str
    targets: tuple[str, ...]
    start: int
    end: int
    ok: int
    fail: int
    info: int
    recovery_ns: int | None
    target: str = ""  # the schedule's choice of target (leader, majority-minority, ...)

    @property
    def total(self) -> int:
        return self.ok + self.fail + self.info


def _client_op(op: Op) -> bool:
    """A workload request (subscriptions live for the whole run, so they are not counted)."""
    return op["op"] not in META_OPS and op["op"] != "subscribe" and op["process"] != "nemesis"


def availability(history: list[Op]) -> list[WindowStats]:
    """Per fault (in history order): ok / fail / info counts and the recovery time."""
    invokes: dict[str, list[int]] = {"ok": [], "fail": [], "info": []}
    ok_done: list[int] = []
    for op in history:
        if _client_op(op):
            invokes[op["outcome"]].append(op["invoke"])
            if op["outcome"] == "ok":
                ok_done.append(op["complete"])
    for times in (*invokes.values(), ok_done):
        times.sort()

    def count(times: list[int], start: int, end: int) -> int:
        return bisect.bisect_right(times, end) - bisect.bisect_left(times, start)

    stats: list[WindowStats] = []
    for i, op in enumerate(history):
        if not is_window_fault(op):
            continue
        start, end = fault_window(op)
        k = bisect.bisect_left(ok_done, end)
        stats.append(
            WindowStats(
                index=i,
                fault=op["fault"],
                targets=tuple(op["targets"]),
                start=start,
                end=end,
                ok=count(invokes["ok"], start, end),
                fail=count(invokes["fail"], start, end),
                info=count(invokes["info"], start, end),
                recovery_ns=ok_done[k] - end if k < len(ok_done) else None,
                target=op.get("target", ""),
            )
        )
    return stats


# --- suites ------------------------------------------------------------------------------------

Checker = Callable[[list[Op]], list[Anomaly]]

LOG_CHECKERS: dict[str, Checker] = {
    "total_order": total_order,
    "lost_writes": lost_writes,
    "real_time": real_time,
    "linearizable_reads": linearizable_reads,
    "subscriptions": subscriptions,
    "node_state": node_states,
}
AGENT_CHECKERS: dict[str, Checker] = {
    "no_vetoed_execution": no_vetoed_execution,
    "at_most_once": at_most_once,
    "in_doubt_surfaced": in_doubt_surfaced,
    "tasks_finished": tasks_finished,
    "node_state": node_states,
}


def _run(history: list[Op], checkers: dict[str, Checker]) -> list[Anomaly]:
    validate_history(history)  # a malformed record is a harness bug: HistoryError, not anomaly
    return [anomaly for check in checkers.values() for anomaly in check(history)]


def check_log(history: list[Op]) -> list[Anomaly]:
    """Every log checker, after validating the records (HistoryError if one is malformed)."""
    return _run(history, LOG_CHECKERS)


def check_agent(history: list[Op]) -> list[Anomaly]:
    """Every agent checker, after validating the records (HistoryError if one is malformed)."""
    return _run(history, AGENT_CHECKERS)
