"""What a chaos run shows a reader: a summary table and a PNG timeline of the history.

The timeline plots append latency (each ok append at its completion time, indeterminate ones
marked) and throughput (ok appends per second), with every fault window shaded and labelled.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from logact.jepsen_tests.history import fault_window, is_window_fault

#: The snapshot counters a node reports (server/raft.py, status "snapshots").
SNAPSHOT_FACTS = ("written", "installed", "ignored")


def summary_tables(result: dict[str, Any]) -> list[Table]:
    ops = Table(
        title="operations",
        caption="op:outcome as recorded: ok = acknowledged, fail = surely not done, "
        "info = indeterminate (may or may not have happened)",
    )
    ops.add_column("op:outcome")
    ops.add_column("count", justify="right")
    for key, count in sorted(result["operations"].items()):
        ops.add_row(key, str(count))
    anomalies = Table(
        title="anomalies by checker",
        caption="each checker reads the history independently; first = its first finding",
    )
    anomalies.add_column("checker")
    anomalies.add_column("count", justify="right")
    anomalies.add_column("first")
    by_checker = Counter(a["checker"] for a in result["anomalies"])
    for checker, count in sorted(by_checker.items()):
        first = next(a["message"] for a in result["anomalies"] if a["checker"] == checker)
        anomalies.add_row(checker, str(count), first[:120])
    if not by_checker:
        anomalies.add_row("(none)", "0", "")
    windows = Table(
        title="availability per fault window",
        caption="fault (its target choice), targets = the nodes it hit; seconds in effect; "
        "ok/fail/info = appends completed in the window by outcome; recovery s = from the "
        "heal to the first ok append",
    )
    for column in ("#", "fault", "targets", "seconds", "ok", "fail", "info", "recovery s"):
        windows.add_column(column)
    for w in result["availability"]:
        recovery = "-" if w["recovery_ns"] is None else f"{w['recovery_ns'] / 1e9:.2f}"
        windows.add_row(
            str(w["index"]),
            f"{w['fault']} ({w['target']})" if w["target"] else w["fault"],
            ",".join(w["targets"]),
            f"{(w['end'] - w['start']) / 1e9:.1f}",
            str(w["ok"]),
            str(w["fail"]),
            str(w["info"]),
            recovery,
        )
    return [ops, anomalies, windows]


def print_summary(result: dict[str, Any], console: Console) -> None:
    for table in summary_tables(result):
        console.print(table)
    verdict = (
        "[green]no anomalies[/green]"
        if not result["anomalies"]
        else (f"[red]{len(result['anomalies'])} anomalies[/red]")
    )
    console.print(
        f"{verdict} · {result['faults_applied']} faults applied · {result['duration_s']} s"
    )
    if result.get("not_exercised"):
        console.print(f"[yellow]not exercised:[/yellow] {', '.join(result['not_exercised'])}")
    raft = result.get("raft", {})
    if raft:
        snapshots = ", ".join(
            f"{node} " + "/".join(str(facts["snapshots"].get(k, 0)) for k in SNAPSHOT_FACTS)
            for node, facts in sorted(raft.items())
            if facts.get("snapshots")
        )
        console.print(f"snapshots {'/'.join(SNAPSHOT_FACTS)} per node: {snapshots}")
    for note in result.get("notes", []):
        console.print(f"note: {note}")


def plot_timeline(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Latency and throughput over time, fault windows shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    appends = [op for op in history if op["op"] == "append"]
    origin = min((op["invoke"] for op in history), default=0)

    def seconds(ns: int) -> float:
        return (ns - origin) / 1e9

    ok = [op for op in appends if op["outcome"] == "ok"]
    info = [op for op in appends if op["outcome"] == "info"]
    figure, (latency, throughput) = plt.subplots(2, 1, sharex=True, figsize=(12, 6))
    latency.scatter(
        [seconds(op["complete"]) for op in ok],
        [(op["complete"] - op["invoke"]) / 1e6 for op in ok],
        s=2,
        label="ok append",
    )
    latency.scatter(
        [seconds(op["complete"]) for op in info],
        [(op["complete"] - op["invoke"]) / 1e6 for op in info],
        s=12,
        marker="x",
        color="red",
        label="indeterminate",
    )
    if ok or info:
        latency.set_yscale("log")
    else:
        latency.text(
            0.5, 0.5, "no appends in this workload", ha="center", transform=latency.transAxes
        )
    latency.set_ylabel("append latency (ms)")
    latency.legend(loc="upper right")
    per_second = Counter(int(seconds(op["complete"])) for op in ok)
    if per_second:
        xs = range(max(per_second) + 1)
        throughput.plot(list(xs), [per_second.get(x, 0) for x in xs])
    throughput.set_ylabel("ok appends / s")
    throughput.set_xlabel("seconds")
    for op in history:
        if op["op"] == "fault" and is_window_fault(op):
            start, end = fault_window(op)
            for axis in (latency, throughput):
                axis.axvspan(seconds(start), seconds(end), color="orange", alpha=0.25)
            latency.annotate(
                op.get("fault", "?"),
                (seconds(start), 1),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                va="top",
            )
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
