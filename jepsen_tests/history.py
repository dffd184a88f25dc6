"""Chaos-run histories: one operation per JSON line (format in docs/chaos.md).

Records stay plain dicts, so the runner, the checkers and a person with ``jq`` read the same
thing. This module gives them one shape check (``validate_op``), so a malformed record fails
loudly where it is written or read instead of turning into a bogus anomaly in a checker, one
writer that can be shared by every task of a run, and one clock (``now_ns``) for invoke and
complete times, so times of different processes compare.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

Op = dict[str, Any]
Outcome = Literal["ok", "fail", "info"]

OUTCOMES: frozenset[str] = frozenset({"ok", "fail", "info"})
#: Records that describe the run rather than a client's request (not counted as availability).
META_OPS: frozenset[str] = frozenset(
    {"fault", "final_read", "final_bus", "ledger", "final_state", "node_state"}
)


class HistoryError(ValueError):
    """A history record (or line of a history file) does not have the documented shape."""


def now_ns() -> int:
    """The run's one clock: monotonic, so fault windows and op times compare across tasks."""
    return time.monotonic_ns()


# --- validation --------------------------------------------------------------------------------


def _where(op: Any) -> str:
    if isinstance(op, dict):
        return f"{op.get('op', '?')} op {op.get('id', '?')} of {op.get('process', '?')!r}"
    return "record"


def _bad(op: Any, problem: str) -> HistoryError:
    return HistoryError(f"malformed {_where(op)}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _need_int(op: Op, key: str, *, optional: bool = False, lo: int | None = None) -> None:
    if key not in op and optional:
        return
    value = op.get(key)
    if not _is_int(value):
        raise _bad(op, f"{key!r} must be an integer, got {value!r}")
    if lo is not None and value < lo:
        raise _bad(op, f"{key!r} must be >= {lo}, got {value}")


def _need_str(op: Op, key: str, *, optional: bool = False) -> None:
    if key not in op and optional:
        return
    if not isinstance(op.get(key), str):
        raise _bad(op, f"{key!r} must be a string, got {op.get(key)!r}")


def _need_list(op: Op, key: str) -> list[Any]:
    value = op.get(key)
    if not isinstance(value, list):
        raise _bad(op, f"{key!r} must be a list, got {type(value).__name__}")
    return value


def _check_tuples(op: Op, key: str, kinds: tuple[str, ...], items: list[Any] | None = None) -> None:
    """Each item of list ``key`` (or of ``items``, named ``key``) is a list whose items have
    ``kinds`` ("int", "str", "any")."""
    if items is None:
        items = _need_list(op, key)
    # Fast path for the shapes used ([pos, payload], [pos, payload, time], [pos, type, body]);
    # the loop below runs only to name the bad item.
    third_int = kinds[2:3] == ("int",)
    if kinds[:2] == ("int", "str") and all(
        type(x) is list
        and len(x) == len(kinds)
        and type(x[0]) is int
        and x[0] >= 0
        and type(x[1]) is str
        and (not third_int or (type(x[2]) is int and x[2] >= 0))
        for x in items
    ):
        return
    for n, item in enumerate(items):
        if not isinstance(item, list) or len(item) != len(kinds):
            raise _bad(op, f"{key}[{n}] must be a list of {len(kinds)} items, got {item!r}")
        for value, kind in zip(item, kinds, strict=True):
            if (kind == "int" and not (_is_int(value) and value >= 0)) or (
                kind == "str" and not isinstance(value, str)
            ):
                raise _bad(op, f"{key}[{n}] must be [{', '.join(kinds)}], got {item!r}")


def _check_state(op: Op) -> None:
    """``buses``: bus -> {"trim": int, "tail": int, "entries": [[pos, digest], ...]}."""
    buses = op.get("buses")
    if not isinstance(buses, dict):
        raise _bad(op, f"'buses' must be a map, got {type(buses).__name__}")
    for bus, state in buses.items():
        where = f"buses[{bus!r}]"
        if not isinstance(bus, str) or not isinstance(state, dict):
            raise _bad(op, f"{where} must map a bus name to a map")
        for key in ("trim", "tail"):
            if not (_is_int(state.get(key)) and state[key] >= 0):
                raise _bad(op, f"{where}.{key} must be an integer >= 0, got {state.get(key)!r}")
        entries = state.get("entries")
        if not isinstance(entries, list):
            raise _bad(op, f"{where}.entries must be a list")
        _check_tuples(op, f"{where}.entries", ("int", "str"), entries)


def parse_ledger_line(line: str) -> tuple[str, int, str]:
    """``"<bus> <intent_id> <token>"`` as ``(bus, intent_id, token)``; HistoryError if not."""
    parts = line.split(maxsplit=2) if isinstance(line, str) else []
    if len(parts) != 3 or not parts[1].isdigit():
        raise HistoryError(f"ledger line {line!r} is not '<bus> <intent_id> <token>'")
    return parts[0], int(parts[1]), parts[2]


def validate_op(op: Any) -> Op:
    """``op`` itself if it is a well-formed record; HistoryError naming the field if not.

    Common fields are always checked; op-specific fields only where docs/chaos.md defines the
    op (and, for results, only when the outcome is ``ok``). Unknown ops pass with their common
    fields checked, so a workload can add an op without touching this module.
    """
    if not isinstance(op, dict):
        raise HistoryError(f"a history record must be a JSON object, got {type(op).__name__}")
    _need_str(op, "process")
    _need_str(op, "op")
    _need_int(op, "id")
    _need_int(op, "invoke")
    _need_int(op, "complete")
    if op["complete"] < op["invoke"]:
        raise _bad(op, f"completes ({op['complete']}) before it is invoked ({op['invoke']})")
    if op.get("outcome") not in OUTCOMES:
        raise _bad(op, f"'outcome' must be ok, fail or info, got {op.get('outcome')!r}")
    _need_str(op, "error", optional=True)
    _need_str(op, "bus", optional=True)
    ok = op["outcome"] == "ok"
    match op["op"]:
        case "append":
            _need_str(op, "payload")
            _need_int(op, "position", optional=not ok, lo=0)
        case "read":
            if ok:
                _need_int(op, "start", lo=0)
                _check_tuples(op, "entries", ("int", "str"))
                for key in ("next", "tail", "trim"):
                    _need_int(op, key, optional=True, lo=0)
        case "check_tail":
            _need_int(op, "tail", optional=not ok, lo=0)
        case "subscribe":
            _need_int(op, "start", lo=0)
            if ok or "deliveries" in op:
                _check_tuples(op, "deliveries", ("int", "str", "int"))
        case "final_read":
            if ok:
                _need_int(op, "start", optional=True, lo=0)
                _check_tuples(op, "entries", ("int", "str"))
        case "final_bus":
            _need_str(op, "bus")
            if ok:
                _check_tuples(op, "entries", ("int", "str", "any"))
        case "ledger":
            if ok:
                for line in _need_list(op, "lines"):
                    try:
                        parse_ledger_line(line)
                    except HistoryError as exc:
                        raise _bad(op, str(exc)) from None
        case "final_state":
            nodes = _need_list(op, "nodes")
            if not all(isinstance(n, str) for n in nodes):
                raise _bad(op, f"'nodes' must be strings, got {nodes!r}")
            if ok:
                _check_state(op)
        case "node_state":
            _need_str(op, "node")
            if ok:
                _check_state(op)
        case "fault":
            _need_str(op, "fault")
            targets = _need_list(op, "targets")
            if not all(isinstance(t, str) for t in targets):
                raise _bad(op, f"'targets' must be strings, got {targets!r}")
            if "window" in op:
                window = op["window"]
                if not (
                    isinstance(window, list)
                    and len(window) == 2
                    and all(_is_int(t) for t in window)
                    and window[0] <= window[1]
                ):
                    raise _bad(op, f"'window' must be [start, end] with start <= end: {window!r}")
    return op


def validate_history(history: Iterable[Any]) -> None:
    """Validate every record; the error names the record's index."""
    for index, op in enumerate(history):
        try:
            validate_op(op)
        except HistoryError as exc:
            raise HistoryError(f"history[{index}]: {exc}") from None


def make_op(
    process: str,
    op: str,
    id: int,
    invoke: int,
    complete: int,
    outcome: Outcome,
    **fields: Any,
) -> Op:
    """A validated record with the common fields first (the order a person reads them in)."""
    record: Op = {"process": process, "op": op, "id": id, "invoke": invoke, "complete": complete}
    record["outcome"] = outcome
    record.update(fields)
    return validate_op(record)


def is_window_fault(op: Op) -> bool:
    """A nemesis fault that (may have) happened: ``fail`` means it was never applied."""
    return op.get("op") == "fault" and op.get("outcome") != "fail"


def fault_window(op: Op) -> tuple[int, int]:
    """The time span a fault was in effect: its ``window``, else its own invoke..complete."""
    window = op.get("window")
    if window:
        return window[0], window[1]
    return op["invoke"], op["complete"]


# --- files -------------------------------------------------------------------------------------


class HistoryWriter:
    """Appends records as JSON lines, one flush per record, so a crash loses at most one line.

    A lock makes ``write`` safe from several threads; trio tasks on one thread need nothing more
    because ``write`` never awaits.
    """

    def __init__(self, path: str | Path, *, validate: bool = True) -> None:
        self.path = Path(path)
        self.validate = validate
        self.count = 0
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, op: Op) -> None:
        if self.validate:
            validate_op(op)
        line = json.dumps(op, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            if self._file.closed:
                raise HistoryError(f"history {self.path} is closed")
            self._file.write(line)
            self._file.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it ended with a newline)."""
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            yield number, line.rstrip("\n"), line.endswith("\n")


def read_history(path: str | Path, *, validate: bool = True) -> list[Op]:
    """Every record of a history file, in file order.

    Blank lines are skipped. A last line without its newline that is not valid JSON is a write
    torn by a crash and is dropped; any other bad line raises HistoryError with its number.
    """
    path = Path(path)
    history: list[Op] = []
    for number, text, complete in _lines(path):
        if not text.strip():
            continue
        try:
            op = json.loads(text)
        except json.JSONDecodeError as exc:
            if not complete:
                break
            raise HistoryError(f"{path}:{number}: not JSON: {exc}") from None
        if validate:
            try:
                validate_op(op)
            except HistoryError as exc:
                raise HistoryError(f"{path}:{number}: {exc}") from None
        history.append(op)
    return history
