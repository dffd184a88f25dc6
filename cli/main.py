"""The ``logact`` command line."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import click
import trio
from rich.table import Table

from logact.cli.common import client_options as _client_options
from logact.cli.common import console
from logact.cli.common import fail as _fail
from logact.cli.common import make_client as _make_client
from logact.cli.common import run as _run
from logact.cli.demo import log_demo
from logact.client.client import Client
from logact.protocol.errors import LogError
from logact.server.config import ConfigError, load_config


class LazyGroup(click.Group):
    """Commands whose modules load only when used: the agent commands import the openai
    package, which costs seconds that a log node starting up should not pay."""

    LAZY = {
        "agent": "logact.cli.agent:agent",
        "mail": "logact.cli.agent:mail",
        "vote": "logact.cli.agent:vote",
        "policy": "logact.cli.agent:policy",
        "demo": "logact.cli.agent_demo:demo",
        "hook": "logact.cli.hook:hook",
        "chaos": "logact.cli.chaos:chaos",
        "eval": "logact.cli.eval:eval_",
        "health": "logact.cli.health:health",
        "supervise": "logact.cli.supervise:supervise",
        "scenario": "logact.cli.scenario:scenario",
        "bench-snapshots": "logact.benchmarks.snapshots:bench_snapshots",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            module, attribute = self.LAZY[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """LogAct: agentic reliability on a Raft-replicated shared log."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--id", "node_id", required=True)
@click.option(
    "--run-dir",
    default=".",
    type=click.Path(file_okay=False),
    help="Relative data_dir paths are resolved against this directory.",
)
def node(config_path: str, node_id: str, run_dir: str) -> None:
    """Run one log node in the foreground."""
    from logact.server import secrets_check
    from logact.server.node import load_validator, run_node

    logging.getLogger().setLevel(logging.INFO)
    try:
        config = load_config(config_path)
        this = config.node(node_id)
        load_validator(config.validator)
    except ConfigError as exc:
        _fail(str(exc))
    weak = secrets_check.findings(config)
    if weak and secrets_check.exposed(this) and not config.unsafe.weak_secrets:
        _fail(
            f"node {node_id} listens beyond loopback with weak secrets: {'; '.join(weak)}. "
            "Use long random secrets (e.g. `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`)."
        )
    for finding in weak:
        logging.getLogger("logact.node").warning("%s (acceptable on loopback only)", finding)
    os.umask(0o077)  # data, snapshots and logs: readable by this user only
    trio.run(run_node, config, node_id, Path(run_dir).resolve())


@main.group()
def secrets() -> None:
    """The secret files a configuration names (tokens, the Raft password)."""


@secrets.command("init")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
def secrets_init(config_path: str) -> None:
    """Create every missing token_file and password_file with 256 random bits (mode 0600).

    Run it once, then copy the same files to every node: each node must hold the same secrets.
    """
    from logact.server.secret_files import ensure_secret_files

    created = ensure_secret_files(config_path)
    try:
        load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    for path in created:
        console.print(f"created {path}")
    if not created:
        console.print("every secret file exists; nothing created")


@main.group()
def cluster() -> None:
    """Manage a local cluster of node processes."""


def _cluster_args(func: Any) -> Any:
    func = click.option(
        "--run-dir", default=".run/cluster", show_default=True, type=click.Path(file_okay=False)
    )(func)
    func = click.option(
        "--config",
        "config_path",
        default="config/cluster.toml",
        show_default=True,
        type=click.Path(dir_okay=False),
    )(func)
    return func


def _local_cluster(config_path: str, run_dir: str) -> Any:
    from logact.ops.local_cluster import LocalCluster

    try:
        return LocalCluster(config_path, run_dir)
    except ConfigError as exc:
        _fail(str(exc))


@cluster.command("up")
@_cluster_args
@click.option(
    "--wait", type=float, default=30.0, show_default=True, help="Seconds to wait for a leader."
)
def cluster_up(config_path: str, run_dir: str, wait: float) -> None:
    """Start every node as its own process; return once a leader is elected."""
    local = _local_cluster(config_path, run_dir)
    local.start_all()
    try:
        leader = trio.run(local.wait_for_leader, wait)
    except trio.TooSlowError:
        _fail(f"no leader within {wait}s; see {local.run_dir / 'logs'}")
    console.print(
        f"cluster up: {len(local.node_ids)} nodes, leader [bold]{leader}[/bold], "
        f"run dir {local.run_dir}"
    )


@cluster.command("down")
@_cluster_args
def cluster_down(config_path: str, run_dir: str) -> None:
    """Stop every node (SIGTERM, then SIGKILL)."""
    local = _local_cluster(config_path, run_dir)
    local.stop_all()
    console.print("cluster down")


@cluster.command("status")
@_cluster_args
@click.option("--json", "as_json", is_flag=True)
def cluster_status(config_path: str, run_dir: str, as_json: bool) -> None:
    """Per-node process and Raft status."""
    local = _local_cluster(config_path, run_dir)
    statuses = trio.run(local.statuses)
    rows = {nid: {"pid": local.pid(nid), "status": s} for nid, s in statuses.items()}
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    _print_status_table(
        {nid: row["status"] for nid, row in rows.items()},
        {nid: row["pid"] for nid, row in rows.items()},
    )


def _print_status_table(statuses: dict[str, Any], pids: dict[str, Any] | None = None) -> None:
    leader_commit = max(
        (s["node"].get("commit_index") or 0 for s in statuses.values() if s), default=0
    )
    table = Table(title="LogAct cluster")
    for column in (
        "node",
        "pid",
        "role",
        "leader",
        "term",
        "commit",
        "applied",
        "lag",
        "entries",
        "durability",
    ):
        table.add_column(column)
    for node_id, status in statuses.items():
        pid = str((pids or {}).get(node_id) or "-")
        if status is None:
            table.add_row(node_id, pid, "[red]down[/red]", *["-"] * 7)
            continue
        info = status["node"]
        node_id = info.get("id", node_id)
        applied = info.get("last_applied")
        lag = leader_commit - applied if applied is not None else None
        table.add_row(
            node_id,
            pid,
            info.get("role", "?"),
            str(info.get("leader")),
            str(info.get("term")),
            str(info.get("commit_index")),
            str(applied),
            str(lag),
            str(status["log"]["entries"]),
            status["durability"],
        )
    console.print(table)


@main.command()
@_client_options
@click.option("--json", "as_json", is_flag=True)
def status(
    config_path: str, nodes: str | None, token: str | None, timeout: float, as_json: bool
) -> None:
    """Leader, term, commit index and per-node lag, asked of every node."""
    client = _make_client(config_path, nodes, token, timeout, "reader")

    async def gather() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for address in client.addresses:
            try:
                async with Client(
                    [address], client.token, timeout=2.0, prefer_leader=False, tls=client.tls
                ) as c:
                    out[address] = await c.status()
            except (LogError, OSError):
                out[address] = None
        return out

    statuses = _run(gather)
    if as_json:
        click.echo(json.dumps(statuses, indent=2, default=str))
    else:
        _print_status_table(statuses)
    if not any(statuses.values()):
        _fail("no node answered (down, unreachable, or a TLS or token problem)")


@main.command()
@_client_options
@click.option("--bus", required=True)
@click.option("--type", "etype", required=True, help="Entry type.")
@click.argument("body")
def append(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    etype: str,
    body: str,
) -> None:
    """Append one entry; BODY is JSON (or a plain string)."""
    try:
        value: Any = json.loads(body)
    except json.JSONDecodeError:
        value = body
    client = _make_client(config_path, nodes, token, timeout, "writer")

    async def go() -> int:
        async with client:
            return await client.append(bus, etype, value)

    click.echo(_run(go))


def _entry_json(entry: Any) -> str:
    return json.dumps(dataclasses.asdict(entry), default=repr)


def _entry_line(entry: Any) -> str:
    body = json.dumps(entry.body, default=repr)
    return f"{entry.pos:>8}  {entry.ts}  {entry.type:<14} {entry.author:<10} {body}"


@main.command()
@_client_options
@click.option("--bus", required=True)
@click.option("--start", type=int, default=0, show_default=True)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--types", default=None, help="Comma-separated entry types.")
@click.option("--stale", is_flag=True, help="Read the node's local copy (may be stale).")
@click.option("--json", "as_json", is_flag=True)
def read(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    start: int,
    limit: int,
    types: str | None,
    stale: bool,
    as_json: bool,
) -> None:
    """Read entries (linearizable unless --stale)."""
    client = _make_client(config_path, nodes, token, timeout, "reader")

    async def go() -> Any:
        async with client:
            return await client.read(
                bus, start, limit, types.split(",") if types else None, stale=stale
            )

    result = _run(go)
    for entry in result.entries:
        click.echo(_entry_json(entry) if as_json else _entry_line(entry))
    if not as_json:
        click.echo(f"-- next {result.next}, tail {result.tail}, trim {result.trim}", err=True)


@main.command()
@_client_options
@click.option("--bus", required=True)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new entries.")
@click.option(
    "--from",
    "from_pos",
    type=int,
    default=None,
    help="Start position (default: the last 10 entries).",
)
@click.option("--types", default=None)
@click.option("--json", "as_json", is_flag=True)
def tail(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    follow: bool,
    from_pos: int | None,
    types: str | None,
    as_json: bool,
) -> None:
    """Show the end of a bus; with -f, follow it (survives leader changes)."""
    client = _make_client(config_path, nodes, token, timeout, "reader")
    type_list = types.split(",") if types else None

    async def go() -> None:
        async with client:
            end = await client.check_tail(bus)
            start = from_pos if from_pos is not None else max(end.trim, end.tail - 10)
            if not follow:
                for entry in await client.read_all(bus, start, type_list):
                    click.echo(_entry_json(entry) if as_json else _entry_line(entry))
                return
            async for entry in client.subscribe(bus, start, type_list):
                click.echo(_entry_json(entry) if as_json else _entry_line(entry))

    with contextlib.suppress(KeyboardInterrupt):
        _run(go)


@main.command()
@_client_options
@click.option("--json", "as_json", is_flag=True)
def buses(
    config_path: str, nodes: str | None, token: str | None, timeout: float, as_json: bool
) -> None:
    """List buses with their tail and trim point."""
    client = _make_client(config_path, nodes, token, timeout, "reader")

    async def go() -> Any:
        async with client:
            return await client.list_buses()

    infos = _run(go)
    for info in infos:
        if as_json:
            click.echo(
                json.dumps(
                    {"bus": info.bus, "tail": info.tail, "trim": info.trim, "bytes": info.bytes}
                )
            )
        else:
            click.echo(f"{info.bus}  tail={info.tail} trim={info.trim} bytes={info.bytes}")


@main.command()
@_client_options
@click.option("--bus", required=True)
@click.option("--before", type=int, required=True)
def trim(
    config_path: str, nodes: str | None, token: str | None, timeout: float, bus: str, before: int
) -> None:
    """Drop entries below a position (admin)."""
    client = _make_client(config_path, nodes, token, timeout)

    async def go() -> int:
        async with client:
            return await client.trim(bus, before)

    click.echo(f"trim point {_run(go)}")


main.add_command(log_demo)
try:
    from logact.benchmarks.cli import bench

    main.add_command(bench)
except ImportError:
    pass


if __name__ == "__main__":
    main()
