"""Ratios, target verdicts, the rich table and the JSON file.

Every LogAct figure is shown next to the baselines measured in the same run, with the ratio, so
a reader never compares against numbers from another machine or another day.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from logact.benchmarks.phase_report import phase_targets, print_phases
from logact.benchmarks.stats import ratio

#: The issue's targets on a 2-core machine.
TARGET_P50_MS = 2.0
TARGET_OPS_100B = 20_000

BASELINES = ("etcd", "embedded_tcp", "embedded")
SHORT = {
    "logact": "LogAct",
    "etcd": "etcd",
    "embedded_tcp": "embedded TCP",
    "embedded": "embedded in-proc",
}


def _get(doc: dict[str, Any], *path: str) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def best_load(system: dict[str, Any], size: str) -> dict[str, Any] | None:
    entry = _get(system, "throughput", size)
    if not entry:
        return None
    return entry["shapes"][entry["best"]]


def shape_load(system: dict[str, Any], size: str, shape: str) -> dict[str, Any] | None:
    shapes = _get(system, "throughput", size, "shapes") or {}
    for name, result in shapes.items():
        if name.split(" ")[0] == shape:
            return result
    return None


def compute_ratios(doc: dict[str, Any]) -> dict[str, Any]:
    """LogAct / baseline for latency (lower is better) and throughput (higher is better)."""
    systems = doc["systems"]
    ours = systems.get("logact") or {}
    out: dict[str, Any] = {}
    for name in BASELINES:
        theirs = systems.get(name)
        if not theirs or "skipped" in theirs or "error" in theirs or "error" in ours:
            continue
        per: dict[str, Any] = {}
        for size in ("100B", "10KB"):
            for q in ("p50_ms", "p99_ms"):
                per[f"sequential_{size}_{q}"] = ratio(
                    _get(ours, "sequential", size, q), _get(theirs, "sequential", size, q)
                )
            a, b = best_load(ours, size), best_load(theirs, size)
            per[f"throughput_{size}_best"] = ratio(a and a["ops_per_s"], b and b["ops_per_s"])
        out[f"logact_vs_{name}"] = per
    return out


def compute_targets(doc: dict[str, Any]) -> dict[str, Any]:
    ours = doc["systems"].get("logact") or {}
    p50 = _get(ours, "sequential", "100B", "p50_ms")
    best = best_load(ours, "100B")
    ops = best["ops_per_s"] if best else None
    return {
        "p50_100B_light_load_ms": {
            "target": f"<= {TARGET_P50_MS}",
            "measured": p50,
            "met": p50 is not None and p50 <= TARGET_P50_MS,
        },
        "throughput_100B_ops_per_s": {
            "target": f">= {TARGET_OPS_100B}",
            "measured": ops,
            "shape": best["shape"] if best else None,
            "met": ops is not None and ops >= TARGET_OPS_100B,
        },
    }


def finish(doc: dict[str, Any]) -> dict[str, Any]:
    doc["ratios"] = compute_ratios(doc)
    doc["targets"] = {**compute_targets(doc), **phase_targets(doc.get("phases") or {})}
    return doc


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------- table
def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio_cell(value: float | None, higher_is_better: bool) -> str:
    if value is None:
        return "-"
    good = value >= 1 if higher_is_better else value <= 1
    return f"[{'green' if good else 'red'}]{value:.2f}x[/]"


Row = tuple[str, Callable[[dict[str, Any]], Any], bool | None]


def _rows(doc: dict[str, Any]) -> list[Row]:
    shapes: list[str] = []
    for system in doc["systems"].values():
        for size in ("100B", "10KB"):
            for name in _get(system, "throughput", size, "shapes") or {}:
                shape = name.split(" ")[0]
                if shape not in shapes:
                    shapes.append(shape)
    rows: list[Row] = []
    for size, label in (("100B", "100 B"), ("10KB", "10 KB")):
        rows.append(
            (
                f"sequential {label} p50 ms",
                lambda s, z=size: _get(s, "sequential", z, "p50_ms"),
                False,
            )
        )
        rows.append(
            (
                f"sequential {label} p99 ms",
                lambda s, z=size: _get(s, "sequential", z, "p99_ms"),
                False,
            )
        )
    for size, label in (("100B", "100 B"), ("10KB", "10 KB")):
        for shape in shapes:
            rows.append(
                (
                    f"appends/s {label} [{shape}]",
                    lambda s, z=size, h=shape: (shape_load(s, z, h) or {}).get("ops_per_s"),
                    True,
                )
            )
        rows.append(
            (
                f"under load {label} p50/p99 ms (best)",
                lambda s, z=size: _pair(best_load(s, z)),
                None,
            )
        )
    rows.append(
        (
            "server CPU µs/append 100 B (best)",
            lambda s: _get(best_load(s, "100B") or {}, "cpu", "server_cpu_us_per_append"),
            False,
        )
    )
    rows.append(
        (
            "leader CPU µs/append 100 B (best)",
            lambda s: _get(best_load(s, "100B") or {}, "cpu", "leader_cpu_us_per_append"),
            False,
        )
    )
    for field, label in (("server", "server"), ("leader", "leader")):
        rows.append(
            (
                f"{label} CPU µs/append sequential 100 B",
                lambda s, f=field: _get(s, "sequential", "100B", "cpu", f"{f}_cpu_us_per_append"),
                False,
            )
        )
    rows.append(
        (
            "client CPU µs/append 100 B (best)",
            lambda s: _get(best_load(s, "100B") or {}, "cpu", "client_cpu_us_per_append"),
            False,
        )
    )
    rows.append(
        (
            "appends per client request 100 B (best)",
            lambda s: (best_load(s, "100B") or {}).get("appends_per_request"),
            None,
        )
    )
    rows.append(
        (
            "appends per Raft entry 100 B (best)",
            lambda s: (best_load(s, "100B") or {}).get("commands_per_batch"),
            None,
        )
    )
    rows.append(
        (
            "appends per fsync 100 B (best)",
            lambda s: (
                (best_load(s, "100B") or {}).get("appends_per_fsync")
                if str(s.get("durability", "")).startswith("fsync")
                else "n/a (no fsync)"
            ),
            None,
        )
    )
    rows.append(("RSS at start MiB (per server)", lambda s: _memory_cell(s, at="at_start"), None))
    rows.append(("RSS after run MiB (per server)", _memory_cell, None))
    rows.append(("peak RSS MiB (per server)", lambda s: _memory_cell(s, "peak_rss_kib"), None))
    rows.append(("log held MiB / entries", _held_cell, None))
    return rows


def _pair(load: dict[str, Any] | None) -> str | None:
    if not load:
        return None
    return f"{_fmt(load['latency']['p50_ms'])} / {_fmt(load['latency']['p99_ms'])}"


def _memory_cell(
    system: dict[str, Any], field: str = "rss_kib", at: str = "after_run"
) -> str | None:
    memory = system.get(f"memory_{at}")
    if not memory:
        return None
    return " ".join(f"{(m or {}).get(field, 0) / 1024:.0f}" for m in memory.values())


def _held_cell(system: dict[str, Any]) -> str | None:
    log = _get(system, "info", "log")
    if not log:
        return None
    return f"{log['bytes'] / 2**20:.0f} / {log['entries']:,.0f}"


def print_report(doc: dict[str, Any], console: Console) -> None:
    systems = doc["systems"]
    durability = doc["settings"]["durability"]
    order = [k for k in ("logact", "etcd", "embedded_tcp", "embedded") if k in systems]
    shown = [k for k in order if "skipped" not in systems[k]]
    ratio_with = [k for k in ("etcd", "embedded") if k in shown and "logact" in shown]
    table = Table(
        title=f"logact bench: durability = {durability} "
        f"({doc['settings']['concurrency']} concurrent appenders, "
        f"{doc['settings']['duration']:g} s windows, "
        f"median of {doc['settings']['repeat']} round(s))"
    )
    table.add_column("metric")
    for key in shown:
        table.add_column(SHORT[key], justify="right")
    for key in ratio_with:
        table.add_column(f"LogAct ÷ {SHORT[key]}", justify="right")
    for label, getter, higher in _rows(doc):
        values = {k: getter(systems[k]) if "error" not in systems[k] else None for k in shown}
        if all(v is None for v in values.values()):
            continue
        cells = [_fmt(values[k]) for k in shown]
        for key in ratio_with:
            ours, theirs = values.get("logact"), values.get(key)
            numeric = isinstance(ours, int | float) and isinstance(theirs, int | float)
            cells.append(
                _ratio_cell(ratio(ours, theirs), higher) if numeric and higher is not None else ""
            )
        table.add_row(label, *cells)
    if table.row_count:
        console.print(table)
    print_phases(doc, console)
    for key in order:
        system = systems[key]
        if "skipped" in system:
            console.print(f"[yellow]{SHORT[key]}: {system['skipped']}, skipped[/yellow]")
        elif "error" in system:
            console.print(f"[red]{SHORT[key]} failed: {system['error']}[/red]")
        else:
            probe = _get(system, "fdatasync_100b_before", "p50_ms")
            console.print(
                f"{SHORT[key]}: {system['label']}, durability {system['durability']}; "
                f"fdatasync(100 B) p50 just before: {_fmt(probe, 3)} ms"
                + (
                    f"; failed rounds: {system['failed_rounds']}"
                    if "failed_rounds" in system
                    else ""
                )
            )
    env = doc["environment"]
    console.print(
        f"machine: {env['cpus']} CPUs, load average at start {env['loadavg_at_start'][0]:.2f}, "
        f"fdatasync(100 B) p50 {env['fdatasync_100b']['p50_ms']} ms; load generator: "
        f"PxT = P worker processes x T trio/asyncio tasks, one connection per process"
    )
    busy = _get(best_load(systems.get("logact") or {}, "100B") or {}, "cpu")
    if busy:
        console.print(
            f"CPU in the LogAct 100 B window: servers {busy['servers_total_s']} s "
            f"{busy['servers_s']}, load generators {busy['clients_s']} s, other processes "
            f"{busy['other_s']} s, machine {busy['machine_busy_pct']}% busy"
        )
        if busy["other_s"] > 0.1 * doc["settings"]["duration"]:
            console.print(
                "[yellow]warning: other processes used CPU during the run; "
                "figures are pessimistic[/yellow]"
            )
    for name, target in doc["targets"].items():
        if target["measured"] is None:
            console.print(f"target {name} {target['target']}: not measured")
            continue
        if target["met"] is None:
            console.print(
                f"target {name} {target['target']}: measured {_fmt(target['measured'])} "
                f"({target['note']}): not judged"
            )
            continue
        verdict = "[green]met[/green]" if target["met"] else "[red]not met[/red]"
        console.print(
            f"target {name} {target['target']}: measured {_fmt(target['measured'])} -> {verdict}"
        )
