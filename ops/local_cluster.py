"""Supervise local node processes: start, stop, kill, restart, wait for a leader.

Used by ``logact cluster``, the integration tests and the chaos runner. Each node runs as
``python -m logact.cli.main node ...`` in its own session, logging to ``RUN_DIR/logs/ID.log``
with its identity in ``RUN_DIR/pids/ID.pid``: the pid, and the kernel's start time of that
process and boot id, so a pid the kernel has since given to another process is never signalled.
"""

from __future__ import annotations

import functools
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from logact.ops.node_probe import Probe, probe, probe_all
from logact.ops.ports import accepting, bindable
from logact.server.config import ClusterConfig, load_config
from logact.server.secret_files import ensure_secret_files
from logact.server.tls import client_context_for


@functools.cache
def _boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()


def _stat(pid: int) -> tuple[str, int] | None:
    """Process ``pid``'s state letter and start time (clock ticks after boot); None if none."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[19])


@dataclass(frozen=True, slots=True)
class NodeProcess:
    """A node process as it was started: its pid and what tells that very process apart from
    a later one the kernel gave the same pid (its start time and the boot it ran in)."""

    pid: int
    start_ticks: int
    boot_id: str

    @classmethod
    def of(cls, pid: int) -> NodeProcess | None:
        stat = _stat(pid)
        return None if stat is None else cls(pid, stat[1], _boot_id())

    @classmethod
    def parse(cls, text: str) -> NodeProcess | None:
        """A pid file's record; None for anything else (an older pid-only file cannot be
        verified, so it is never trusted)."""
        parts = text.split()
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            return None
        return cls(int(parts[0]), int(parts[1]), parts[2])

    def line(self) -> str:
        return f"{self.pid} {self.start_ticks} {self.boot_id}\n"

    def running(self) -> bool:
        """This process is alive: not exited, not a zombie, not a newer process on its pid."""
        stat = _stat(self.pid)
        return (
            stat is not None
            and stat[0] != "Z"
            and stat[1] == self.start_ticks
            and self.boot_id == _boot_id()
        )

    def send(self, signum: int) -> bool:
        """Signal this process; False (nothing sent) if it is not running. The pid is pinned
        with a pidfd while it is checked, so the signal cannot reach a process that took the
        pid in between."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        try:
            if not self.running():
                return False
            signal.pidfd_send_signal(pidfd, signum)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)


class NodesExited(Exception):
    """Node processes this supervisor started exited while it waited for the cluster."""

    def __init__(self, codes: dict[str, int]) -> None:
        super().__init__(", ".join(f"{node} (exit code {code})" for node, code in codes.items()))
        self.codes = codes


def agreed_leader(
    statuses: dict[str, dict[str, Any] | None], size: int, among: Iterable[str] | None = None
) -> str | None:
    """The node that reports itself leader and that a majority of ``size`` nodes (those of
    ``among`` that answered, default all) name as leader; None if there is none yet."""
    voters = set(statuses if among is None else among)
    leaders = [
        status["node"]["leader"]
        for node_id, status in statuses.items()
        if status is not None and node_id in voters
    ]
    for node_id, status in statuses.items():
        is_leader = status is not None and status["node"]["role"] == "leader"
        if is_leader and leaders.count(node_id) * 2 > size:
            return node_id
    return None


class LocalCluster:
    """Node processes of one config, supervised through pid files under ``run_dir``.

    ``env`` is added to every node's environment; ``prefix(node_id)`` is put before a node's
    command (e.g. ``ip netns exec NS`` to run it in a network namespace).
    """

    def __init__(
        self,
        config_path: str | Path,
        run_dir: str | Path,
        *,
        env: dict[str, str] | None = None,
        prefix: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.config_path = Path(config_path).resolve()
        ensure_secret_files(self.config_path)
        self.config: ClusterConfig = load_config(self.config_path)
        self.run_dir = Path(run_dir).resolve()
        self.env = env or {}
        self.prefix = prefix or (lambda node_id: [])
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def node_ids(self) -> list[str]:
        return [node.id for node in self.config.nodes]

    @property
    def addresses(self) -> list[str]:
        return [node.client_address for node in self.config.nodes]

    def admin_token(self) -> str:
        for token, principal in self.config.tokens.items():
            if principal.admin:
                return token
        raise LookupError("the configuration has no admin principal")

    @functools.cached_property
    def tls(self) -> ssl.SSLContext | None:
        """How this supervisor's own clients reach the nodes (the config's [tls])."""
        return client_context_for(self.config.tls)

    def pid_file(self, node_id: str) -> Path:
        return self.run_dir / "pids" / f"{node_id}.pid"

    def log_file(self, node_id: str) -> Path:
        return self.run_dir / "logs" / f"{node_id}.log"

    def process(self, node_id: str) -> NodeProcess | None:
        """The node process recorded in the pid file (running or not)."""
        try:
            return NodeProcess.parse(self.pid_file(node_id).read_text())
        except FileNotFoundError:
            return None

    def pid(self, node_id: str) -> int | None:
        """The pid of the node's process if that very process is running."""
        record = self.process(node_id)
        return record.pid if record is not None and record.running() else None

    def start(self, node_id: str) -> int:
        if self.pid(node_id) is not None:
            raise RuntimeError(f"node {node_id} is already running")
        for sub in ("pids", "logs"):
            (self.run_dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        # Node logs name principals and peers: readable by this user only.
        log_fd = os.open(self.log_file(node_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(log_fd, "ab") as log:
            proc = subprocess.Popen(
                [
                    *self.prefix(node_id),
                    sys.executable,
                    "-m",
                    "logact.cli.main",
                    "node",
                    "--config",
                    str(self.config_path),
                    "--id",
                    node_id,
                    "--run-dir",
                    str(self.run_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env},
            )
        self.procs[node_id] = proc
        record = NodeProcess.of(proc.pid)  # our unreaped child: its /proc entry is there
        assert record is not None, f"no /proc entry for the child {proc.pid}"
        self.pid_file(node_id).write_text(record.line())
        return proc.pid

    def start_all(self) -> None:
        for node_id in self.node_ids:
            if self.pid(node_id) is None:
                self.start(node_id)

    def exited(self) -> dict[str, int]:
        """Exit codes of the nodes this object started that have exited since."""
        codes = {node_id: proc.poll() for node_id, proc in self.procs.items()}
        return {node_id: code for node_id, code in codes.items() if code is not None}

    def log_tail(self, node_id: str, lines: int = 3) -> list[str]:
        """The last non-blank lines of the node's log."""
        try:
            text = self.log_file(node_id).read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def addresses_of(self, node_ids: Iterable[str]) -> list[tuple[str, str, int]]:
        """``(what, host, port)`` of every client and Raft address of the nodes, ``what``
        naming it (``n1 client``)."""
        found = []
        for node_id in node_ids:
            node = self.config.node(node_id)
            found.append((f"{node_id} client", node.client_host, node.client_port))
            if node.raft_host is not None and node.raft_port is not None:
                found.append((f"{node_id} raft", node.raft_host, node.raft_port))
        return found

    def busy_addresses(self, node_ids: Iterable[str]) -> list[str]:
        """``host:port (what)`` of each address of the nodes that cannot be bound now."""
        return [
            f"{host}:{port} ({what})"
            for what, host, port in self.addresses_of(node_ids)
            if not bindable(host, port)
        ]

    async def answering(self) -> list[str]:
        """``host:port (what)`` of each configured address that still accepts connections."""
        found: list[str] = []

        async def check(what: str, host: str, port: int) -> None:
            if await accepting(host, port):
                found.append(f"{host}:{port} ({what})")

        async with trio.open_nursery() as nursery:
            for what, host, port in self.addresses_of(self.node_ids):
                nursery.start_soon(check, what, host, port)
        return sorted(found)

    def signal(self, node_id: str, signum: int) -> None:
        record = self.process(node_id)
        if record is not None:
            record.send(signum)

    def kill(self, node_id: str) -> None:
        """kill -9 and reap."""
        record = self.process(node_id)
        if record is not None and record.send(signal.SIGKILL):
            self._reap(node_id, record, 10)

    def stop(self, node_id: str, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the pid stopped, None if the node's process
        was not running (its stale pid file is removed)."""
        return self.stop_nodes([node_id], timeout).get(node_id)

    def stop_nodes(self, node_ids: Iterable[str], timeout: float = 10.0) -> dict[str, int]:
        """Stop the nodes at once (SIGTERM, then SIGKILL after ``timeout``); the pid of each
        that was running. Stale pid files are removed."""
        signalled: dict[str, NodeProcess] = {}
        for node_id in node_ids:
            record = self.process(node_id)
            if record is not None and record.send(signal.SIGCONT):
                record.send(signal.SIGTERM)
                signalled[node_id] = record
            else:
                self.pid_file(node_id).unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        for node_id, record in signalled.items():
            if not self._reap(node_id, record, deadline - time.monotonic()):
                record.send(signal.SIGKILL)
                self._reap(node_id, record, 10)
        return {node_id: record.pid for node_id, record in signalled.items()}

    def _reap(self, node_id: str, record: NodeProcess, timeout: float) -> bool:
        """Wait up to ``timeout`` for the process to end (reaping it if it is our child); then
        its pid file goes. False if it still runs."""
        proc = self.procs.get(node_id)
        deadline = time.monotonic() + timeout
        while proc.poll() is None if proc is not None else record.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        self.procs.pop(node_id, None)
        self.pid_file(node_id).unlink(missing_ok=True)
        return True

    def stop_all(self) -> dict[str, int]:
        """Stop every node at once; the pid of each that was running."""
        return self.stop_nodes(self.node_ids)

    def kill_all(self) -> None:
        records = {node_id: self.process(node_id) for node_id in self.node_ids}
        for record in records.values():
            if record is not None:
                record.send(signal.SIGKILL)
        for node_id, record in records.items():
            if record is not None:
                self._reap(node_id, record, 10)

    # ---- queries over the client protocol --------------------------------------------
    async def probes(self, timeout: float = 2.0) -> dict[str, Probe]:
        """Every node asked for its status with the admin token, at once."""
        found = await probe_all(self.addresses, self.admin_token(), tls=self.tls, timeout=timeout)
        return dict(zip(self.node_ids, found, strict=True))

    async def node_status(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        address = self.config.node(node_id).client_address
        return (await probe(address, self.admin_token(), tls=self.tls, timeout=timeout)).status

    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        return {node_id: found.status for node_id, found in (await self.probes()).items()}

    async def wait_for_leader(self, timeout: float = 30.0, among: list[str] | None = None) -> str:
        """The id of a node that reports itself leader and that a majority agrees on."""
        with trio.fail_after(timeout):
            while True:
                leader = agreed_leader(await self.statuses(), len(self.node_ids), among)
                if leader is not None:
                    return leader
                await trio.sleep(0.1)

    async def wait_until_up(self, timeout: float = 30.0) -> str:
        """The leader, once every node this object started answers, a majority agrees on the
        leader and the leader's recorded process is running (not another process on its
        ports). Raises NodesExited once each node it started has either exited or answers
        and at least one has exited."""
        with trio.fail_after(timeout):
            while True:
                exited = self.exited()
                statuses = await self.statuses()
                answering = {node_id for node_id, status in statuses.items() if status}
                if set(self.procs) <= answering | set(exited):
                    if exited:
                        raise NodesExited(exited)
                    leader = agreed_leader(statuses, len(self.node_ids))
                    if leader is not None and self.pid(leader) is not None:
                        return leader
                await trio.sleep(0.1)

    async def wait_until_serving(self, node_id: str, timeout: float = 30.0) -> None:
        with trio.fail_after(timeout):
            while await self.node_status(node_id, timeout=1.0) is None:
                await trio.sleep(0.05)
