"""A supervised 3-node cluster wired for fault injection (``--net proxy|netns``).

``ChaosCluster`` wraps ``LocalCluster`` with a ``Partitioner`` (partition.py) and the node
environment the nemeses rely on (``LOGACT_SYNC_TRACE=1``: each record file notes its last
fsync'd size, which lose-unsynced cuts back to). Use it as an async context manager: it sets up
the network (proxies run as tasks of its own nursery, so they live exactly as long as the
cluster), writes the config, starts the nodes and waits for a leader; on exit it kills every
node, heals and removes proxies or namespaces, even after errors or cancellation.

Node control methods are async because ``LocalCluster`` blocks while reaping a process: they
run it in a worker thread so the proxies (on this event loop) keep forwarding meanwhile.
"""

from __future__ import annotations

import atexit
import json
import re
import signal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trio

from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import write_local_config
from logact.server.config import load_config
from logact.server.node import data_dir_for
from logact.server.storage import SYNC_TRACE_ENV

from .partition import (
    NetnsPartitioner,
    Partitioner,
    ProxyPartitioner,
    netns_unavailable,
)

NET_MODES = ("proxy", "netns")


class NetModeUnavailable(RuntimeError):
    """The requested network mode cannot run here (netns without root)."""


def rewrite_nodes(
    text: str,
    addresses: dict[str, dict[str, str]] | None = None,
    dial: dict[str, dict[str, str]] | None = None,
) -> str:
    """A config from ``write_local_config`` with node addresses and ``raft_dial`` replaced.

    ``addresses``: node id -> {"client": ..., "raft": ...}; ``dial``: node id -> {peer: addr}.
    Works line by line on the format write_local_config produces; ``ChaosCluster`` checks the
    result by loading it.
    """
    addresses = addresses or {}
    dial = dial or {}
    out: list[str] = []
    in_nodes = False
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_nodes = stripped == "[[nodes]]"
            current = None
        match = re.fullmatch(r'(\w+) = "(.*)"', stripped) if in_nodes else None
        if match:
            key, value = match.groups()
            if key == "id":
                current = value
            elif current is not None and key in addresses.get(current, {}):
                line = f"{key} = {json.dumps(addresses[current][key])}"
            out.append(line)
            if key == "data_dir" and current is not None and dial.get(current):
                table = ", ".join(
                    f"{json.dumps(peer)} = {json.dumps(address)}"
                    for peer, address in sorted(dial[current].items())
                )
                out.append(f"raft_dial = {{ {table} }}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def allow_weak_secrets(text: str) -> str:
    """The config, with nodes allowed to listen beyond loopback with the fixed test tokens (the
    private addresses of network namespaces)."""
    if "\n[unsafe]\n" in text:
        return text.replace("\n[unsafe]\n", "\n[unsafe]\nweak_secrets = true\n", 1)
    return text + "\n[unsafe]\nweak_secrets = true\n"


class ChaosCluster:
    """Nodes, network mode and teardown of one chaos run; see the module docstring."""

    def __init__(
        self,
        directory: str | Path,
        *,
        net: str = "proxy",
        nodes: int = 3,
        durability: str = "fsync",
        extra: str = "",
        env: dict[str, str] | None = None,
        start: bool = True,
        start_timeout: float = 30.0,
    ) -> None:
        if net not in NET_MODES:
            raise ValueError(f"net must be one of {NET_MODES}, got {net!r}")
        self.directory = Path(directory)
        self.net = net
        self.durability = durability
        self._node_count = nodes
        self._extra = extra
        self._env = {SYNC_TRACE_ENV: "1", **(env or {})}
        self._start = start
        self._start_timeout = start_timeout
        self._node_ids = [f"n{i + 1}" for i in range(nodes)]
        self.partitioner: Partitioner
        self._cluster: LocalCluster | None = None
        self.paused: set[str] = set()
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None
        self._closed = False

    # ---- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        try:
            await self._setup()
            if self._start:
                await self.start_all()
                await self.leader(self._start_timeout)
        except BaseException:
            await self._exit()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit()

    async def _exit(self) -> None:
        try:
            await self.close()
        finally:
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
            # Exit the proxies' nursery on its own so an error of the caller's block
            # propagates as itself, not wrapped in an ExceptionGroup.
            await self._nursery_cm.__aexit__(None, None, None)

    async def _setup(self) -> None:
        assert self._nursery is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.net == "proxy":
            proxy = ProxyPartitioner(self._node_ids)
            self.partitioner = proxy
            # Listeners first: the config's free ports are then chosen around them.
            await proxy.start(self._nursery)
            path = write_local_config(
                self.directory,
                nodes=self._node_count,
                durability=self.durability,
                extra=self._extra,
            )
            config = load_config(path)
            dial = proxy.configure({n.id: n.raft_address for n in config.nodes})
            path.write_text(rewrite_nodes(path.read_text(), dial=dial))
            prefix = None
        else:
            reason = netns_unavailable()
            if reason is not None:
                raise NetModeUnavailable(reason)
            netns = NetnsPartitioner(self._node_ids)
            self.partitioner = netns
            await trio.to_thread.run_sync(netns.setup)
            path = write_local_config(
                self.directory,
                nodes=self._node_count,
                durability=self.durability,
                extra=self._extra,
            )
            addresses = {
                n: {"client": netns.client_address(n), "raft": netns.raft_address(n)}
                for n in self._node_ids
            }
            text = rewrite_nodes(path.read_text(), addresses=addresses)
            path.write_text(allow_weak_secrets(text))
            dial = {}
            prefix = netns.prefix
        self._check_config(path, dial)
        self._cluster = LocalCluster(path, self.directory / "run", env=self._env, prefix=prefix)
        atexit.register(self._cluster.kill_all)

    def _check_config(self, path: Path, dial: dict[str, dict[str, str]]) -> None:
        config = load_config(path)
        for node in config.nodes:
            if node.raft_dial != dial.get(node.id, {}):
                raise RuntimeError(f"{path}: raft_dial of {node.id} is {node.raft_dial}")
            if isinstance(self.partitioner, NetnsPartitioner) and (
                node.client_address != self.partitioner.client_address(node.id)
                or node.raft_address != self.partitioner.raft_address(node.id)
            ):
                raise RuntimeError(f"{path}: addresses of {node.id} were not rewritten")

    async def close(self) -> None:
        """Kill every node, heal, remove proxies/namespaces; idempotent, shielded."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            try:
                if self._cluster is not None:
                    await trio.to_thread.run_sync(self._cluster.kill_all)
                    atexit.unregister(self._cluster.kill_all)
                self.paused.clear()
            finally:
                if hasattr(self, "partitioner"):
                    try:
                        await self.partitioner.heal()
                    finally:
                        await self.partitioner.close()

    # ---- facts ----------------------------------------------------------------------------
    @property
    def cluster(self) -> LocalCluster:
        if self._cluster is None:
            raise RuntimeError("the chaos cluster is not set up (use 'async with')")
        return self._cluster

    @property
    def node_ids(self) -> list[str]:
        return list(self._node_ids)

    @property
    def addresses(self) -> list[str]:
        return self.cluster.addresses

    def client_address(self, node_id: str) -> str:
        return self.cluster.config.node(node_id).client_address

    def admin_token(self) -> str:
        return self.cluster.admin_token()

    def raft_address(self, node_id: str) -> str:
        """Where the node's Raft port listens (not the proxy its peers dial)."""
        return self.cluster.config.node(node_id).raft_address

    def data_dir(self, node_id: str) -> Path:
        return data_dir_for(self.cluster.config, node_id, self.cluster.run_dir)

    def log_file(self, node_id: str) -> Path:
        return self.cluster.log_file(node_id)

    def running(self, node_id: str) -> bool:
        return self.cluster.pid(node_id) is not None

    def process_state(self, node_id: str) -> str | None:
        """The node process's state letter from /proc (``T``: stopped), None if not running."""
        pid = self.cluster.pid(node_id)
        try:
            with open(f"/proc/{pid}/stat") as handle:
                return handle.read().split(")")[-1].split()[0]
        except (FileNotFoundError, TypeError):
            return None

    # ---- node control ---------------------------------------------------------------------
    async def start(self, node_id: str) -> None:
        await trio.to_thread.run_sync(self.cluster.start, node_id)

    async def start_all(self) -> None:
        await trio.to_thread.run_sync(self.cluster.start_all)

    async def kill(self, node_id: str) -> None:
        """kill -9 and reap (a paused node dies too)."""
        await trio.to_thread.run_sync(self.cluster.kill, node_id)
        self.paused.discard(node_id)

    async def kill_all(self) -> None:
        """SIGKILL every node at once, then reap them."""
        await trio.to_thread.run_sync(self.cluster.kill_all)
        self.paused.clear()

    def pause(self, node_id: str) -> None:
        self.cluster.signal(node_id, signal.SIGSTOP)
        self.paused.add(node_id)

    def resume(self, node_id: str) -> None:
        self.cluster.signal(node_id, signal.SIGCONT)
        self.paused.discard(node_id)

    # ---- waiting on the cluster -----------------------------------------------------------
    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        return await self.cluster.statuses()

    async def leader(self, timeout: float = 30.0, among: list[str] | None = None) -> str:
        """A node (of ``among``, default all) that says it leads and a majority names leader.

        Only the statuses of ``among`` count, so right after a partition the majority side's
        stale belief in an isolated old leader is not mistaken for a new election.
        """
        among = among or self._node_ids
        with trio.fail_after(timeout):
            while True:
                statuses = await self.statuses()
                named = [s["node"]["leader"] for n, s in statuses.items() if s and n in among]
                for node in among:
                    status = statuses.get(node)
                    if status is None or status["node"]["role"] != "leader":
                        continue
                    if named.count(node) * 2 > len(self._node_ids):
                        return node
                await trio.sleep(0.05)

    async def followers(self, leader: str | None = None, timeout: float = 30.0) -> list[str]:
        """The running, unpaused nodes other than the (current) leader."""
        leader = leader or await self.leader(timeout)
        return [
            n for n in self._node_ids if n != leader and n not in self.paused and self.running(n)
        ]

    async def wait_serving(self, node_id: str, timeout: float = 30.0) -> None:
        await self.cluster.wait_until_serving(node_id, timeout)

    async def wait_healthy(self, timeout: float = 30.0) -> str:
        """Every node answers and names the same leader, which says it is leader."""
        with trio.fail_after(timeout):
            while True:
                statuses = await self.statuses()
                named = {s["node"]["leader"] if s else None for s in statuses.values()}
                if len(named) == 1:
                    (leader,) = named
                    status = statuses.get(leader) if leader else None
                    if status is not None and status["node"]["role"] == "leader":
                        return leader
                await trio.sleep(0.05)
