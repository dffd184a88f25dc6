"""``logact chaos``: Jepsen-style fault injection against a real cluster, checked offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import trio

from logact.cli.common import stoppable
from logact.cli.output import emit, json_option, text_console
from logact.jepsen_tests.history import read_history
from logact.jepsen_tests.report import plot_timeline, print_summary
from logact.jepsen_tests.runner import UNSAFE_MODES, WORKLOADS, ChaosOptions, run_chaos
from logact.jepsen_tests.schedule import parse_nemeses


@click.command()
@click.option(
    "--nemesis",
    "nemeses",
    default="kill,pause,partition,restart-all",
    show_default=True,
    help="Comma-separated: kill, pause, partition, restart-all, targeted, "
    "lose-unsynced, hostile (optionally kind:target, e.g. kill:leader), or all.",
)
@click.option(
    "--workload",
    type=click.Choice(WORKLOADS),
    default="log",
    show_default=True,
    help="log: appenders, readers and subscribers; agent: whole agents doing tasks.",
)
@click.option(
    "--time",
    "time_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds of load and faults (settling and final reads come after).",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Seeds the fault schedule and load."
)
@click.option(
    "--seeds",
    type=int,
    default=1,
    show_default=True,
    help="Run this many seeds in a row (seed, seed+1, ...), one folder each.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="chaos-results",
    show_default=True,
    help="Each run's history, report and timeline go to WORKLOAD-seedN here.",
)
@click.option(
    "--net",
    type=click.Choice(["proxy", "netns"]),
    default="proxy",
    show_default=True,
    help="Partitions by per-link TCP proxies, or by network namespaces (root only).",
)
@click.option(
    "--agents", type=int, default=3, show_default=True, help="Agents of the agent workload."
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 also when a requested nemesis kind was not exercised (too short a --time, "
    "or no target at the time).",
)
@click.option(
    "--unsafe",
    type=click.Choice(sorted(UNSAFE_MODES)),
    default=None,
    help="Run a deliberately broken server mode, to see the checkers catch it.",
)
@json_option(
    'one object: "runs" (each "seed", "folder" and "result", its result.json), "totals", '
    '"ok" (the exit status is 0); the progress goes to stderr'
)
def chaos(
    nemeses: str,
    workload: str,
    time_s: float,
    seed: int,
    seeds: int,
    out: str,
    net: str,
    agents: int,
    strict: bool,
    unsafe: str | None,
    as_json: bool,
) -> None:
    """Faults from a seeded schedule, a recorded history, independent checkers; exit status 1
    on any anomaly (and, with --strict, on a requested fault kind that never ran)."""
    try:
        parse_nemeses(nemeses.split(","))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--nemesis") from None
    totals = {"runs": 0, "anomalies": 0, "faults": 0, "snapshots_installed": 0}
    totals |= {"not_exercised": 0}
    totals |= {"snapshots_ignored": 0}
    runs = []
    console = text_console(as_json)

    def every_seed() -> None:
        """One run per seed, each stopping what it started when it ends or is stopped."""
        for run_seed in range(seed, seed + seeds):
            folder = Path(out) / f"{workload}-seed{run_seed}"
            console.rule(f"chaos: {workload} workload, nemeses {nemeses}, seed {run_seed}, {net}")
            options = ChaosOptions(
                nemeses=[n for n in nemeses.split(",") if n],
                workload=workload,
                time_s=time_s,
                seed=run_seed,
                out=folder,
                net=net,
                agents=agents,
                unsafe=unsafe,
            )
            result = trio.run(run_chaos, options, lambda line: console.print(line, markup=False))
            document = json.loads((folder / "result.json").read_text())
            plot_timeline(
                read_history(folder / "history.jsonl"),
                folder / "timeline.png",
                f"{workload} · {nemeses} · seed {run_seed}",
            )
            print_summary(document, console)
            console.print(f"written: {folder}/history.jsonl, result.json, timeline.png")
            runs.append({"seed": run_seed, "folder": str(folder), "result": document})
            totals["runs"] += 1
            totals["anomalies"] += len(result.anomalies)
            totals["faults"] += result.faults_applied
            totals["not_exercised"] += len(result.not_exercised)
            for kind in ("installed", "ignored"):
                totals[f"snapshots_{kind}"] += sum(
                    facts["snapshots"][kind] for facts in result.raft.values() if facts["snapshots"]
                )

    # Ctrl-C or SIGTERM: the run's cluster is stopped, one line, exit 130 / 143.
    stoppable(every_seed)
    if seeds > 1:
        console.print(f"totals: {totals}")
    failed = bool(totals["anomalies"] or (strict and totals["not_exercised"]))
    if as_json:
        emit({"runs": runs, "totals": totals, "ok": not failed})
    sys.exit(1 if failed else 0)
