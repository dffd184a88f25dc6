"""The ``logact`` command line."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import trio
from rich.table import Table

from logact.cli.common import client_options as _client_options
from logact.cli.common import console, find_error
from logact.cli.common import fail as _fail
from logact.cli.common import make_client as _make_client
from logact.cli.common import run as _run
from logact.cli.output import emit, json_option
from logact.ops.node_probe import NodeState, Probe, has_quorum, probe_all
from logact.protocol.errors import UnknownBus
from logact.server.config import ConfigError, load_config

if TYPE_CHECKING:
    from logact.ops.local_cluster import LocalCluster


@dataclasses.dataclass(frozen=True)
class Lazy:
    """A command whose module loads only when the command is used."""

    #: ``module:attribute``.
    target: str
    #: Its short help, for ``logact --help`` to list without importing the module (a test
    #: checks it against the command's own).
    help: str
    #: The extra of pyproject.toml its module needs, if any, and that extra's top-level modules.
    extra: str | None = None
    extra_modules: tuple[str, ...] = ()


class LazyGroup(click.Group):
    """Commands whose modules load only when used: ``logact --help`` and a log node starting up
    do not pay seconds to import the openai package, the agent or AgentDojo."""

    LAZY = {
        "agent": Lazy("logact.cli.agent:agent", "Run LogAct agent components against a bus."),
        "mail": Lazy(
            "logact.cli.agent:mail",
            "Send mail to the agent of a bus (one that exists, unless --create).",
        ),
        "vote": Lazy(
            "logact.cli.agent:vote",
            "The human voter: show pending intents with context and record approve/reject.",
        ),
        "policy": Lazy(
            "logact.cli.agent:policy",
            "Append new policy versions (atomically, when both are given); later intents use them.",
        ),
        "demo": Lazy(
            "logact.cli.agent_demo:demo",
            "A 3-node cluster and an agent on it: vetoes, a leader kill, a timeline, checks.",
        ),
        "hook": Lazy(
            "logact.cli.hook:hook",
            "Gate a coding agent's tool calls through LogAct: the harness's command hook "
            "(claude-code, codex) and the gate that decides its calls (serve).",
        ),
        "chaos": Lazy(
            "logact.cli.chaos:chaos",
            "Faults from a seeded schedule, a recorded history, independent checkers; exit "
            "status 1 on any anomaly (and, with --strict, on a requested fault kind that never "
            "ran).",
        ),
        "eval": Lazy(
            "logact.cli.eval:eval_",
            "Evaluate LogAct's voters on third-party benchmarks.",
            extra="eval",
            extra_modules=("agentdojo",),
        ),
        "health": Lazy(
            "logact.cli.health:health",
            "Check agents' buses for stalls, loops, error streaks, rising cost and slow actions.",
        ),
        "supervise": Lazy(
            "logact.cli.supervise:supervise",
            "Mail agents advice when they work slowly, and gossip what their peers have done.",
        ),
        "scenario": Lazy(
            "logact.cli.scenario:scenario",
            "Supervision scenarios: checksum advice and swarm gossip.",
        ),
        "log-demo": Lazy(
            "logact.cli.demo:log_demo",
            "Bring up a 3-node cluster, run a workload through a leader failure, verify, shut "
            "down.",
        ),
        "bench": Lazy(
            "logact.benchmarks.cli:bench",
            "Append latency (p50/p99) and throughput of a fresh local 3-node cluster.",
        ),
        "bench-snapshots": Lazy(
            "logact.benchmarks.snapshots:bench_snapshots",
            "Append latency and elections while every node snapshots a large live state.",
        ),
        "bench-memory": Lazy(
            "logact.benchmarks.memory_cli:bench_memory",
            "RSS of each node of a fresh 3-node cluster holding --mb MiB of live entries, "
            "against the goal of 1.5 x live bytes + 64 MiB.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        lazy = self.LAZY.get(name)
        if lazy is None:
            return super().get_command(ctx, name)
        module, attribute = lazy.target.split(":")
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in lazy.extra_modules:
                raise
            _fail(
                f"`logact {name}` needs the {lazy.extra} extra ({missing}), which is not "
                f"installed: install it with scripts/install {lazy.extra} (from the logact "
                "repository)"
            )
        command: click.Command = getattr(loaded, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the lazy commands' short help taken from ``LAZY``."""
        listed: list[tuple[str, Callable[[int], str]]] = []
        for name in self.list_commands(ctx):
            lazy = self.LAZY.get(name)
            if lazy is not None:
                # A stand-in that only has the help: click shortens it as for the real one.
                listed.append((name, click.Command(name, help=lazy.help).get_short_help_str))
            elif (command := self.commands.get(name)) is not None and not command.hidden:
                listed.append((name, command.get_short_help_str))
        if listed:
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(name, short_help(limit)) for name, short_help in listed])


@click.group(cls=LazyGroup)
@click.version_option(package_name="logact", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """LogAct: agentic reliability on a Raft-replicated shared log."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Cluster config (TOML) that names this node.",
)
@click.option("--id", "node_id", required=True, help="This node's id in the config.")
@click.option(
    "--run-dir",
    default=".",
    type=click.Path(file_okay=False),
    help="Relative data_dir paths are resolved against this directory.",
)
def node(config_path: str, node_id: str, run_dir: str) -> None:
    """Run one log node in the foreground until SIGTERM (exit 143) or Ctrl-C (exit 130)."""
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
    try:
        _run(run_node, config, node_id, Path(run_dir).resolve(), stoppable=True)
    except Exception as exc:
        busy = find_error(exc, OSError)
        if busy is None or busy.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            raise
        _fail(f"node {node_id} cannot listen on {this.client_address}: {busy.strerror}")


@main.group()
def secrets() -> None:
    """The secret files a configuration names (tokens, the Raft password)."""


@secrets.command("init")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Cluster config (TOML) whose secret files to create.",
)
@json_option('{"created": [PATH, ...]}')
def secrets_init(config_path: str, as_json: bool) -> None:
    """Create every missing token_file and password_file with 256 random bits (mode 0600).

    Run it once, then copy the same files to every node: each node must hold the same secrets.
    """
    from logact.server.secret_files import ensure_secret_files

    created = ensure_secret_files(config_path)
    try:
        load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    if as_json:
        emit({"created": [str(path) for path in created]})
        return
    for path in created:
        console.print(f"created {path}")
    if not created:
        console.print("every secret file exists; nothing created")


@main.group()
def cluster() -> None:
    """Manage a local cluster of node processes."""


def _cluster_args(func: Any) -> Any:
    func = click.option(
        "--run-dir",
        default=".run/cluster",
        show_default=True,
        type=click.Path(file_okay=False),
        help="The nodes' pid files and logs (and relative data dirs) live here.",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        default="config/cluster.toml",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="Cluster config (TOML) of the nodes.",
    )(func)
    return func


def _local_cluster(config_path: str, run_dir: str) -> LocalCluster:
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
@json_option('one object: "leader", "started" and "already_running" (node id: pid), "run_dir"')
def cluster_up(config_path: str, run_dir: str, wait: float, as_json: bool) -> None:
    """Start each node that is not running as its own process; return once every node it
    started answers and a leader is elected that is one of this run dir's processes.

    Starts nothing if an address of a node to start is in use; if a node it started exits, no
    leader comes in time or it is stopped (Ctrl-C, SIGTERM), it stops the nodes it started and
    exits 1.
    """
    from logact.ops.local_cluster import NodesExited
    from logact.ops.stopping import Stopped, stop_on_signals

    local = _local_cluster(config_path, run_dir)
    running = {node_id: local.pid(node_id) for node_id in local.node_ids}
    to_start = [node_id for node_id, pid in running.items() if pid is None]
    busy = local.busy_addresses(to_start)
    if busy:
        _fail(f"address in use: {', '.join(busy)}; nothing started")
    started = {node_id: local.start(node_id) for node_id in to_start}
    try:
        leader = stop_on_signals(lambda: trio.run(local.wait_until_up, wait))
    except NodesExited as exc:
        every = "every node it started exited" if len(exc.codes) == len(started) else "exited"
        _failed_start(local, started, f"{every}: {exc}", list(exc.codes))
    except trio.TooSlowError:
        _failed_start(local, started, f"no leader within {wait:g}s", list(local.exited()))
    except Stopped as stopped:
        _failed_start(local, started, f"{stopped} before a leader was elected", [])
    already = {node_id: pid for node_id, pid in running.items() if pid is not None}
    if as_json:
        emit(
            {
                "leader": leader,
                "started": started,
                "already_running": already,
                "run_dir": str(local.run_dir),
            }
        )
        return
    said = [f"leader {leader}"]
    if started:
        said.append(f"started {_pids(started)}")
    if already:
        said.append(f"already running {_pids(already)}")
    click.echo(f"cluster up: {'; '.join(said)}; run dir {local.run_dir}")


def _pids(pids: dict[str, int]) -> str:
    return ", ".join(f"{node_id} (pid {pid})" for node_id, pid in pids.items())


def _failed_start(
    local: LocalCluster, started: dict[str, int], why: str, show: Sequence[str]
) -> NoReturn:
    """Stop what this ``cluster up`` started, then fail with ``why`` and the end of the logs of
    the nodes in ``show``."""
    stopped = {node_id: pid for node_id in started if (pid := local.stop(node_id)) is not None}
    lines = [why + (f"; stopped {_pids(stopped)}, which it had started" if stopped else "")]
    for node_id in show:
        lines.append(f"  the end of {local.log_file(node_id)}:")
        lines += [f"    {line}" for line in local.log_tail(node_id)]
    _fail("\n".join(lines))


@cluster.command("down")
@_cluster_args
@json_option('one object: "stopped" (node id: pid), "run_dir"')
def cluster_down(config_path: str, run_dir: str, as_json: bool) -> None:
    """Stop every node started from RUN_DIR (SIGTERM, then SIGKILL after 10 s).

    Only a process whose pid, start time and boot match what was recorded when it was started is
    signalled. Exits 1 if a configured address still accepts connections afterwards.
    """
    local = _local_cluster(config_path, run_dir)
    stopped = local.stop_all()
    if as_json:
        emit({"stopped": stopped, "run_dir": str(local.run_dir)})
    elif stopped:
        click.echo(f"stopped {_pids(stopped)}")
    else:
        click.echo(f"nothing was running (run dir {local.run_dir})")
    answering = trio.run(local.answering)
    if answering:
        _fail(
            f"still answering: {', '.join(answering)} (not started from {local.run_dir}, "
            "so not stopped)"
        )


@cluster.command("status")
@_cluster_args
@json_option('one object keyed by node id: "pid", "address", "state", "error", "status"')
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds per node.")
def cluster_status(config_path: str, run_dir: str, as_json: bool, timeout: float) -> None:
    """Per-node process, health (ok / unreachable / unauthorized) and Raft status; exits 1
    without a quorum of healthy nodes."""
    local = _local_cluster(config_path, run_dir)
    probes: dict[str, Probe] = trio.run(local.probes, timeout)
    pids = {node_id: local.pid(node_id) for node_id in probes}
    if as_json:
        rows = {
            node_id: {"pid": pids[node_id], "address": found.address, **found.as_json()}
            for node_id, found in probes.items()
        }
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        _print_status_table(probes, pids)
    _require_quorum(list(probes.values()))


def _print_status_table(
    probes: dict[str, Probe], pids: dict[str, int | None] | None = None
) -> None:
    """One row per node (``probes`` by node id or address; a pid column if ``pids``); why a node
    is not ok goes to stderr."""
    statuses = [found.status for found in probes.values() if found.status is not None]
    leader_commit = max((s["node"].get("commit_index") or 0 for s in statuses), default=0)
    columns = ["node", "pid", "state", "role", "leader", "term", "commit", "applied", "lag"]
    columns += ["entries", "durability"]
    rows: list[list[str]] = []
    for name, found in probes.items():
        pid = str((pids or {}).get(name) or "-")
        if found.status is None:
            rows.append([name, pid, f"[red]{found.state}[/red]", *["-"] * 8])
            continue
        info = found.status["node"]
        applied = info.get("last_applied")
        lag = leader_commit - applied if applied is not None else None
        rows.append(
            [
                info.get("id", name),
                pid,
                f"[green]{found.state}[/green]",
                info.get("role", "?"),
                *(str(info.get(key)) for key in ("leader", "term", "commit_index")),
                str(applied),
                str(lag),
                str(found.status["log"]["entries"]),
                found.status["durability"],
            ]
        )
    keep = [i for i, column in enumerate(columns) if pids is not None or column != "pid"]
    table = Table(title="LogAct cluster")
    for i in keep:
        table.add_column(columns[i])
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    console.print(table)
    for name, found in probes.items():
        where = name if name == found.address else f"{name} ({found.address})"
        if found.state is not NodeState.OK:
            click.echo(f"{where}: {found.state}: {found.error}", err=True)


def _require_quorum(probes: list[Probe]) -> None:
    """Fail unless a majority of the nodes are ok (as ``etcdctl endpoint health`` does)."""
    if has_quorum(probes, len(probes)):
        return
    counts = {state: sum(p.state is state for p in probes) for state in NodeState}
    others = ", ".join(f"{n} {s}" for s, n in counts.items() if n and s is not NodeState.OK)
    _fail(f"no quorum: {counts[NodeState.OK]} of {len(probes)} nodes ok ({others})")


@main.command()
@_client_options
@json_option('one object keyed by node address: "state", "error", "status"')
def status(
    config_path: str, nodes: str | None, token: str | None, timeout: float, as_json: bool
) -> None:
    """Health (ok / unreachable / unauthorized), leader, term, commit index and lag of every
    node; exits 1 without a quorum of healthy nodes."""
    client = _make_client(config_path, nodes, token, timeout, "reader")

    async def gather() -> list[Probe]:
        return await probe_all(client.addresses, client.token, tls=client.tls, timeout=timeout)

    probes = {found.address: found for found in _run(gather)}
    if as_json:
        click.echo(json.dumps({a: p.as_json() for a, p in probes.items()}, indent=2, default=str))
    else:
        _print_status_table(probes)
    _require_quorum(list(probes.values()))


@main.command()
@_client_options
@click.option("--bus", required=True, help="The bus to append to (e.g. agent/1).")
@click.option("--type", "etype", required=True, help="Entry type.")
@click.option("--string", "as_string", is_flag=True, help="BODY is a string, not JSON.")
@json_option('{"bus": BUS, "pos": POSITION}')
@click.argument("body")
def append(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    etype: str,
    as_string: bool,
    as_json: bool,
    body: str,
) -> None:
    """Append one entry (the bus is created by its first entry); BODY is JSON, or with
    --string the string itself."""
    value: Any = body
    if not as_string:
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            _fail(
                f"BODY is not valid JSON ({exc.msg} at character {exc.pos}); "
                "pass --string to append it as a string"
            )
    client = _make_client(config_path, nodes, token, timeout, "writer")

    async def go() -> int:
        async with client:
            return await client.append(bus, etype, value)

    pos = _run(go)
    if as_json:
        emit({"bus": bus, "pos": pos})
    else:
        click.echo(f"appended at position {pos} of bus {bus}")


class NoSuchBus(Exception):
    """A bus nothing was ever appended to (or claimed on): reading it is an error."""

    def __init__(self, bus: str, hint: str = "") -> None:
        super().__init__(f"bus {bus!r} does not exist{hint}")


def _entry_json(entry: Any) -> str:
    return json.dumps(dataclasses.asdict(entry), default=repr)


def iso_utc(ts_ms: int) -> str:
    """A timestamp in ms since the epoch as ISO-8601 UTC, to the millisecond."""
    seconds, ms = divmod(ts_ms, 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=ms * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entry_line(entry: Any) -> str:
    body = json.dumps(entry.body, default=repr)
    return f"{entry.pos:>8}  {iso_utc(entry.ts)}  {entry.type:<14} {entry.author:<10} {body}"


@main.command()
@_client_options
@click.option("--bus", required=True, help="The bus to read.")
@click.option("--start", type=int, default=0, show_default=True, help="First position to read.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many.")
@click.option("--types", default=None, help="Comma-separated entry types.")
@click.option("--stale", is_flag=True, help="Read the node's local copy (may be stale).")
@json_option('one object per entry (JSON lines): "pos", "ts" (ms), "type", "author", "body"')
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
    """Read entries (linearizable unless --stale); a bus that does not exist is an error.
    Timestamps are ISO-8601 UTC (ms since the epoch with --json)."""
    client = _make_client(config_path, nodes, token, timeout, "reader")

    async def go() -> Any:
        async with client:
            try:
                return await client.read(
                    bus, start, limit, types.split(",") if types else None, stale=stale
                )
            except UnknownBus:
                raise NoSuchBus(bus) from None

    result = _run(go, errors=(NoSuchBus,), stoppable=True)
    for entry in result.entries:
        click.echo(_entry_json(entry) if as_json else _entry_line(entry))
    if not as_json:
        click.echo(f"-- next {result.next}, tail {result.tail}, trim {result.trim}", err=True)


@main.command()
@_client_options
@click.option("--bus", required=True, help="The bus to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new entries.")
@click.option(
    "--wait-for-bus",
    is_flag=True,
    help="With -f: follow a bus that does not exist yet from its first entry.",
)
@click.option(
    "--from",
    "from_pos",
    type=int,
    default=None,
    help="Start position (default: the last 10 entries).",
)
@click.option("--types", default=None, help="Comma-separated entry types.")
@json_option('one object per entry (JSON lines): "pos", "ts" (ms), "type", "author", "body"')
def tail(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    follow: bool,
    wait_for_bus: bool,
    from_pos: int | None,
    types: str | None,
    as_json: bool,
) -> None:
    """Show the end of a bus; with -f, follow it (survives leader changes) until Ctrl-C (exit
    130) or SIGTERM (exit 143). A bus that does not exist is an error unless -f --wait-for-bus."""
    if wait_for_bus and not follow:
        _fail("--wait-for-bus needs -f")
    client = _make_client(config_path, nodes, token, timeout, "reader")
    type_list = types.split(",") if types else None

    def show(entry: Any) -> None:
        click.echo(_entry_json(entry) if as_json else _entry_line(entry))

    async def go() -> None:
        async with client:
            end = await client.check_tail(bus)
            start = from_pos if from_pos is not None else max(end.trim, end.tail - 10)
            try:
                if not follow:
                    for entry in await client.read_all(bus, start, type_list):
                        show(entry)
                    return
                if not wait_for_bus:
                    await client.read(bus, start, 1)  # UnknownBus if there is no such bus
            except UnknownBus:
                hint = "" if not follow else " (-f --wait-for-bus waits for its first entry)"
                raise NoSuchBus(bus, hint) from None
            async with contextlib.aclosing(client.subscribe(bus, start, type_list)) as entries:
                async for entry in entries:
                    show(entry)

    _run(go, errors=(NoSuchBus,), stoppable=True)


@main.command()
@_client_options
@json_option('one object per bus (JSON lines): "bus", "tail", "trim", "bytes"')
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
            emit({"bus": info.bus, "tail": info.tail, "trim": info.trim, "bytes": info.bytes})
        else:
            click.echo(f"{info.bus}  tail={info.tail} trim={info.trim} bytes={info.bytes}")


@main.command()
@_client_options
@click.option("--bus", required=True, help="The bus to trim.")
@click.option("--before", type=int, required=True, help="Drop every entry below this position.")
@json_option('{"bus": BUS, "trim": POSITION}')
def trim(
    config_path: str,
    nodes: str | None,
    token: str | None,
    timeout: float,
    bus: str,
    before: int,
    as_json: bool,
) -> None:
    """Drop entries below a position (admin)."""
    client = _make_client(config_path, nodes, token, timeout)

    async def go() -> int:
        async with client:
            return await client.trim(bus, before)

    point = _run(go)
    if as_json:
        emit({"bus": bus, "trim": point})
    else:
        click.echo(f"trim point {point}")


if __name__ == "__main__":
    main()
