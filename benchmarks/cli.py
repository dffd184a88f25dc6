"""``logact bench``: latency and throughput of a fresh 3-node cluster against same-run baselines."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
import trio
from rich.console import Console

from logact.benchmarks.report import finish, print_report, write_json
from logact.benchmarks.runner import LOGACT_PHASES, SYSTEM_PHASES, Settings, run_bench
from logact.ops.stopping import Stopped, interrupted


def _console(stderr: bool = False) -> Console:
    """Piped or logged: do not squeeze the table into 80 columns."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=140)


#: ``--json -`` writes the results on stdout; the text for people goes here instead.
STDOUT = "-"


async def _run_until_signal(
    settings: Settings, console: Console
) -> dict[str, Any] | signal.Signals:
    """Run the bench: its results, or the signal that stopped it. SIGTERM/SIGHUP cancel it
    like Ctrl-C, so every cleanup path still runs.

    Nodes run in their own sessions: without this, ``timeout logact bench`` would leave them
    behind.
    """
    result: dict[str, Any] | signal.Signals | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            nonlocal result
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                async for signum in signals:
                    result = signal.Signals(signum)
                    nursery.cancel_scope.cancel()
                    return

        async def measure() -> None:
            nonlocal result
            result = await run_bench(settings, console.print)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        nursery.start_soon(measure)
    assert result is not None  # the bench finished, or a signal cancelled it
    return result


def _procs(value: str) -> tuple[int, ...]:
    try:
        procs = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter("a comma-separated list of process counts, e.g. 1,4") from None
    if not procs or any(p < 1 for p in procs):
        raise click.BadParameter("process counts must be >= 1")
    return procs


@click.command()
@click.option(
    "--entries-100b",
    default=2000,
    show_default=True,
    type=click.IntRange(10, 10**6),
    help="Sequential appends of 100 B timed (after a warm-up).",
)
@click.option(
    "--entries-10kb",
    default=1000,
    show_default=True,
    type=click.IntRange(10, 10**6),
    help="Sequential appends of 10 KB timed (after a warm-up).",
)
@click.option(
    "--duration",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 300),
    help="Seconds of each concurrent-load window (after --warmup).",
)
@click.option(
    "--warmup",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Seconds of load before each window starts counting.",
)
@click.option(
    "--concurrency",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Concurrent appenders (one outstanding append each).",
)
@click.option(
    "--procs",
    "procs_text",
    default="1,4",
    show_default=True,
    help="Load shapes: comma-separated worker process counts sharing --concurrency.",
)
@click.option(
    "--client-batching/--no-client-batching",
    default=True,
    show_default=True,
    help="Whether LogAct's client coalesces concurrent appends into multi requests "
    "(docs/protocol.md); off measures one request per append.",
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "os"]),
    default="fsync",
    show_default=True,
    help="LogAct durability mode (etcd always fsyncs).",
)
@click.option(
    "--baseline",
    type=click.Choice(["etcd", "none"]),
    default="etcd",
    show_default=True,
    help="External baseline; the embedded log is always measured.",
)
@click.option(
    "--only",
    type=click.Choice(["logact", "embedded_tcp", "embedded", "etcd"]),
    multiple=True,
    help="Measure only these systems (repeatable).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results file (default bench-results/bench-<timestamp>.json); - prints them on stdout "
    "instead (output for programs: one object), the text going to stderr.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where nodes keep data and logs (default: a fresh temp directory).",
)
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Rounds over all systems; figures are per-metric medians over rounds.",
)
@click.option("--keep-run-dir", is_flag=True, help="Keep data and logs after the run.")
@click.option(
    "--phase",
    "phases",
    type=click.Choice([*SYSTEM_PHASES, *LOGACT_PHASES, "all"]),
    multiple=True,
    help="Phases to run (repeatable; default: sequential and throughput, on every system). "
    "decision, fanout, failover and restart are LogAct's own, each on a fresh cluster next to "
    "its baseline or bound; all: every phase.",
)
@click.option(
    "--decision-intents",
    default=200,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="decision phase: intents timed, one at a time.",
)
@click.option(
    "--failover-kills",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="failover phase: leader kills, one after another.",
)
@click.option(
    "--restart-entries",
    default=20_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="restart phase: entries in the log before the restart (the issue's size: 1000000).",
)
@click.option(
    "--restart-entry-bytes",
    default=1000,
    show_default=True,
    type=click.IntRange(10, 512 * 1024),
    help="restart phase: bytes per entry (random, incompressible).",
)
@click.option(
    "--restart-build-seconds",
    default=600.0,
    show_default=True,
    type=click.FloatRange(1, 7200),
    help="restart phase: bound on building the log; a shorter build is measured and says so.",
)
@click.option(
    "--fanout-subscribers",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="fanout phase: subscribers on the one bus (each its own connection).",
)
@click.option(
    "--fanout-messages",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="fanout phase: entries the writer appends, one at a time.",
)
def bench(
    entries_100b: int,
    entries_10kb: int,
    duration: float,
    warmup: float,
    concurrency: int,
    procs_text: str,
    client_batching: bool,
    durability: str,
    baseline: str,
    only: tuple[str, ...],
    json_path: str | None,
    run_dir: str | None,
    keep_run_dir: bool,
    repeat: int,
    phases: tuple[str, ...],
    decision_intents: int,
    failover_kills: int,
    restart_entries: int,
    restart_entry_bytes: int,
    restart_build_seconds: float,
    fanout_subscribers: int,
    fanout_messages: int,
) -> None:
    """Append latency (p50/p99) and throughput of a fresh local 3-node cluster.

    Starts its own cluster on free loopback ports, measures sequential appends and
    --concurrency concurrent appenders at 100 B and 10 KB, and compares with baselines measured
    in the same run: the embedded log (in-process and as one node over TCP) and, when installed,
    a 3-member etcd cluster. --phase adds LogAct's own phases (decision latency, fan-out,
    failover, restart; benchmarks/README.md). Every process it starts is killed at the end.
    """
    settings = Settings(
        entries_100b=entries_100b,
        entries_10kb=entries_10kb,
        duration=duration,
        warmup=warmup,
        concurrency=concurrency,
        durability=durability,
        baseline=baseline,
        procs=_procs(procs_text),
        client_batching=client_batching,
        run_dir=Path(run_dir) if run_dir else None,
        keep_run_dir=keep_run_dir,
        repeat=repeat,
        decision_intents=decision_intents,
        failover_kills=failover_kills,
        restart_entries=restart_entries,
        restart_entry_bytes=restart_entry_bytes,
        restart_build_seconds=restart_build_seconds,
        fanout_subscribers=fanout_subscribers,
        fanout_messages=fanout_messages,
    )
    if phases:
        settings.phases = (
            (*SYSTEM_PHASES, *LOGACT_PHASES) if "all" in phases else tuple(dict.fromkeys(phases))
        )
    if only:
        settings.systems = only
    own = [phase for phase in settings.phases if phase in LOGACT_PHASES]
    if own and "logact" not in settings.systems:
        raise click.UsageError(f"--phase {own[0]} measures LogAct: add --only logact")
    path = Path(json_path or f"bench-results/bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    to_stdout = json_path == STDOUT
    console = _console(stderr=to_stdout)
    console.print(
        f"logact bench: durability [bold]{durability}[/bold], "
        f"{concurrency} concurrent appenders, shapes {settings.procs}"
    )
    try:
        raw = trio.run(_run_until_signal, settings, console)
    except BaseException as exc:
        if not interrupted(exc):
            raise
        raw = signal.SIGINT
    if isinstance(raw, signal.Signals):  # every process the bench started was killed
        stopped = Stopped(raw)
        click.echo(str(stopped), err=True)
        sys.exit(stopped.exit_code)
    doc = finish(raw)
    if to_stdout:
        click.echo(json.dumps(doc, default=str))
    else:
        write_json(doc, path)
    print_report(doc, console)
    if not to_stdout:
        console.print(f"results written to {path}")
    failed = [name for name, result in doc["phases"].items() if "error" in result]
    if failed:
        click.echo(f"error: phase {', '.join(failed)} failed (see above)", err=True)
        sys.exit(1)
