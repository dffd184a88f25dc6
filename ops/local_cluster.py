"""Supervise local node processes: start, stop, kill, restart, wait for a leader.

Used by ``logact cluster``, the integration tests and the chaos runner. Each node runs as
``python -m logact.cli.main node ...`` in its own session, logging to ``RUN_DIR/logs/ID.log``
with its pid in ``RUN_DIR/pids/ID.pid``.
"""

from __future__ import annotations

import functools
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from logact.client.client import Client
from logact.protocol.errors import LogError
from logact.server.config import ClusterConfig, load_config
from logact.server.secret_files import ensure_secret_files
from logact.server.tls import client_context_for


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

    def pid(self, node_id: str) -> int | None:
        try:
            pid = int(self.pid_file(node_id).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

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
        self.pid_file(node_id).write_text(str(proc.pid))
        return proc.pid

    def start_all(self) -> None:
        for node_id in self.node_ids:
            if self.pid(node_id) is None:
                self.start(node_id)

    def signal(self, node_id: str, signum: int) -> None:
        pid = self.pid(node_id)
        if pid is not None:
            os.kill(pid, signum)

    def kill(self, node_id: str) -> None:
        """kill -9 and reap."""
        pid = self.pid(node_id)
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        self._reap(node_id, pid, 10)

    def stop(self, node_id: str, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        pid = self.pid(node_id)
        if pid is None:
            return
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
        if not self._reap(node_id, pid, timeout):
            os.kill(pid, signal.SIGKILL)
            self._reap(node_id, pid, 10)

    def _reap(self, node_id: str, pid: int, timeout: float) -> bool:
        proc = self.procs.pop(node_id, None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif not _alive(pid):
                break
            time.sleep(0.02)
        else:
            if proc is not None:
                self.procs[node_id] = proc
            return False
        self.pid_file(node_id).unlink(missing_ok=True)
        return True

    def stop_all(self) -> None:
        for node_id in self.node_ids:
            self.stop(node_id)

    def kill_all(self) -> None:
        for node_id in self.node_ids:
            pid = self.pid(node_id)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        for node_id in self.node_ids:
            pid_text = self.pid_file(node_id)
            if pid_text.exists():
                self._reap(node_id, int(pid_text.read_text()), 10)

    # ---- queries over the client protocol --------------------------------------------
    async def node_status(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        address = self.config.node(node_id).client_address
        try:
            async with Client(
                [address], self.admin_token(), timeout=timeout, prefer_leader=False, tls=self.tls
            ) as c:
                return await c.status()
        except (LogError, OSError):
            return None

    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        results: dict[str, dict[str, Any] | None] = {}

        async def one(node_id: str) -> None:
            results[node_id] = await self.node_status(node_id)

        async with trio.open_nursery() as nursery:
            for node_id in self.node_ids:
                nursery.start_soon(one, node_id)
        return {node_id: results[node_id] for node_id in self.node_ids}

    async def wait_for_leader(self, timeout: float = 30.0, among: list[str] | None = None) -> str:
        """The id of a node that reports itself leader and that a majority agrees on."""
        with trio.fail_after(timeout):
            while True:
                statuses = await self.statuses()
                leaders = [
                    s["node"]["leader"]
                    for node_id, s in statuses.items()
                    if s is not None and (among is None or node_id in among)
                ]
                for node_id, status in statuses.items():
                    if status is None or status["node"]["role"] != "leader":
                        continue
                    if leaders.count(node_id) * 2 > len(self.node_ids):
                        return node_id
                await trio.sleep(0.1)

    async def wait_until_serving(self, node_id: str, timeout: float = 30.0) -> None:
        with trio.fail_after(timeout):
            while await self.node_status(node_id, timeout=1.0) is None:
                await trio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by us) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
