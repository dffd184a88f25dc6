"""``logact log-demo``: the log alone — a real 3-node cluster, a workload, a leader failure.

Brings the cluster up as separate processes, runs concurrent writers and a tailing subscriber,
kills the leader with SIGKILL mid-run, restarts it, verifies from the log that every
acknowledged append is present exactly once at its acknowledged position and that the
subscriber saw a gap-free, duplicate-free stream, shows status, and shuts the cluster down.
"""

from __future__ import annotations

import sys

import click
import trio
from rich.console import Console
from rich.table import Table

from logact.cli.common import stoppable
from logact.ops.local_cluster import LocalCluster
from logact.protocol.errors import LogError
from logact.scenarios.log_demo import PortsInUse, verify, workload
from logact.scenarios.log_demo import fresh_cluster as fresh_local_cluster
from logact.scenarios.report import Check, all_passed

console = Console() if Console().is_terminal else Console(width=120)


def print_progress(line: str) -> None:
    """A demo's progress line, indented under its step."""
    console.print(f"  {line}", markup=False)


def fresh_cluster(config_path: str, run_dir: str) -> LocalCluster:
    """A local cluster about to start on empty data; exits if its ports are taken."""
    try:
        return fresh_local_cluster(config_path, run_dir)
    except PortsInUse as exc:
        console.print(
            f"[red]ports in use: {exc}[/red] — is a cluster already "
            "running? (`logact cluster down`)"
        )
        sys.exit(1)


def print_check(check: Check) -> None:
    """``ok``, ``FAIL`` or, for a check that is not required, ``n/a``, then the claim."""
    mark = (
        "[green]ok[/green]  " if check.passed else "[red]FAIL[/red]" if check.required else "n/a "
    )
    console.print(f"  {mark} {check.name}" + (f" ({check.detail})" if check.detail else ""))


@click.command("log-demo")
@click.option(
    "--config",
    "config_path",
    default="config/cluster.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Cluster config (TOML) of the 3 nodes.",
)
@click.option(
    "--run-dir",
    default=".run/log-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The nodes' pid files, logs and data (data wiped first).",
)
@click.option("--writers", default=4, show_default=True, help="Concurrent appending clients.")
@click.option("--appends", "per_writer", default=150, show_default=True, help="Appends per writer.")
@click.option("--keep", is_flag=True, help="Leave the cluster running afterwards.")
def log_demo(config_path: str, run_dir: str, writers: int, per_writer: int, keep: bool) -> None:
    """Bring up a 3-node cluster, run a workload through a leader failure, verify, shut down.

    Ctrl-C or SIGTERM stops it: the cluster is shut down (unless --keep), then one line on
    stderr and exit 130 or 143.
    """
    local = fresh_cluster(config_path, run_dir)
    console.rule("LogAct demo: 3-node Raft shared log")
    console.print(
        f"config {local.config_path} · durability [bold]{local.config.durability}"
        f"[/bold] · run dir {local.run_dir}"
    )

    def show() -> bool:
        """Every step; whether every check passed (False: it failed before its checks)."""
        try:
            return _steps(local, writers, per_writer)
        except (LogError, trio.TooSlowError) as exc:
            logs = local.run_dir / "logs"
            console.print(f"[red]demo failed: {exc!r}[/red]; node logs in {logs}")
            return False

    def shut_down() -> None:
        if not keep:
            local.stop_all()
            console.print("5. cluster down")

    ok = stoppable(show, shut_down)
    console.rule("[green]all checks passed[/green]" if ok else "[red]checks failed[/red]")
    sys.exit(0 if ok else 1)


def _steps(local: LocalCluster, writers: int, per_writer: int) -> bool:
    """Steps 1-4: cluster up, the workload, the checks, the status; whether the checks passed."""
    local.start_all()
    leader = trio.run(local.wait_for_leader, 30)
    console.print(f"1. cluster up: nodes {', '.join(local.node_ids)}, leader {leader}")
    console.print(f"2. workload: {writers} writers x {per_writer} appends, one subscriber")
    result = trio.run(workload, local, writers, per_writer, print_progress)
    console.print("3. checks from the log")
    checks = verify(result)
    for check in checks:
        print_check(check)
    ok = all_passed(checks)
    console.print("4. status")
    statuses = trio.run(local.statuses)
    table = Table()
    for column in ("node", "role", "leader", "term", "commit", "applied", "entries"):
        table.add_column(column)
    for node_id, status in statuses.items():
        if status is None:
            table.add_row(node_id, "down", *["-"] * 5)
            continue
        info = status["node"]
        table.add_row(
            node_id,
            info["role"],
            str(info["leader"]),
            str(info["term"]),
            str(info["commit_index"]),
            str(info["last_applied"]),
            str(status["log"]["entries"]),
        )
    console.print(table)
    return ok
