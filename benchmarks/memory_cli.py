"""``logact bench-memory``: RSS per node next to the live bytes its log holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import trio

from logact.benchmarks.memory import FillFailed, MemorySettings, describe, run
from logact.benchmarks.options import results_options
from logact.ops.stopping import Stopped, stop_on_signals


def _leaf(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` in ``exc``, which trio may have wrapped in exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            if (found := _leaf(sub, kind)) is not None:
                return found
        return None
    return exc if isinstance(exc, kind) else None


def _env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--node-env")
        env[name] = value
    return env


@click.command("bench-memory")
@click.option(
    "--mb",
    type=click.FloatRange(1, 4096),
    default=200.0,
    show_default=True,
    help="MiB of entry bodies to append (all stay live: nothing is trimmed).",
)
@click.option(
    "--small-share",
    type=click.FloatRange(0, 1),
    default=0.75,
    show_default=True,
    help="Share of the entries that are 100 B; the others are 10 KB.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Appends outstanding at once (tasks of one client).",
)
@click.option(
    "--buses",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Buses the entries are spread over.",
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "os"]),
    default="fsync",
    show_default=True,
    help="The cluster's durability mode.",
)
@click.option(
    "--compact-every",
    type=click.IntRange(2, 10**9),
    default=None,
    help="The nodes snapshot and compact their journal every so many Raft entries "
    "(log_compaction_min_entries; default: the configured one).",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Runs, each on a fresh cluster; the summary is their median.",
)
@click.option(
    "--node-env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set in every node's environment (e.g. MALLOC_ARENA_MAX=2); repeatable.",
)
@results_options("bench-results/memory.json")
def bench_memory(
    mb: float,
    small_share: float,
    concurrency: int,
    buses: int,
    durability: str,
    compact_every: int | None,
    repeat: int,
    node_env: tuple[str, ...],
    out: str,
    as_json: bool,
) -> None:
    """RSS of each node of a fresh 3-node cluster holding --mb MiB of live entries, against
    the goal of 1.5 x live bytes + 64 MiB.

    Then a follower is restarted and measured again once it serves every entry. Results are
    printed and written to --out; exit status 1 if the cluster did not take the load.
    """
    settings = MemorySettings(
        mb=mb,
        small_share=small_share,
        concurrency=concurrency,
        buses=buses,
        durability=durability,
        compact_every=compact_every,
        node_env=_env(node_env),
    )
    result: dict[str, Any] = {}

    def measure() -> None:
        result.update(trio.run(run, settings, repeat, lambda line: click.echo(line, err=as_json)))

    try:  # Ctrl-C or SIGTERM: the cluster of the moment is killed, then one line, 130 / 143
        stop_on_signals(measure)
    except Stopped as stopped:
        click.echo(str(stopped), err=True)
        sys.exit(stopped.exit_code)
    except BaseException as exc:
        if (failed := _leaf(exc, FillFailed)) is None:
            raise
        click.echo(f"error: {failed}: nothing was measured", err=True)
        sys.exit(1)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1))
    if as_json:
        click.echo(json.dumps(result))
    for line in describe(result):
        click.echo(line, err=as_json)
    click.echo(f"written: {out}", err=as_json)
