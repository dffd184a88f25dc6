"""Network partitions between Raft nodes: per-link TCP proxies, or network namespaces (root).

Both implementations cut *links* (unordered node pairs) and share the partition shapes of the
base class: ``partition(groups)`` (no link between groups), ``bridge(hub)`` (only links that
touch ``hub`` survive), ``isolate(node)`` and ``heal()``. Client ports are never cut, so the
test harness can still ask each side what it believes.

**Proxy mode** (anywhere). PySyncObj keeps one connection per node pair, dialled by the node
whose Raft address (its id) compares greater. That node dials its peer through a proxy owned by
this process (``raft_dial`` in the config); a cut closes the link's proxied connections and
refuses new ones until healed. The proxies run as trio tasks of the caller's nursery, so a
busy or blocked event loop delays Raft traffic.

**Netns mode** (root only). One network namespace per node, each with a veth pair into a
bridge in the root namespace; nodes listen on 10.x.y.z addresses inside their namespace and
clients in the root namespace reach them through the bridge. A cut adds ``blackhole`` routes
for the peer's /32 in both namespaces (iptables/nft are not needed); healing deletes them.
Packets are dropped silently, as in a real partition: TCP connections stay up until
PySyncObj's connection timeout notices the silence.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import trio

from logact.client.client import parse_address

Link = frozenset[str]


def link(a: str, b: str) -> Link:
    return frozenset((a, b))


def links_between(groups: Sequence[Iterable[str]], node_ids: Sequence[str]) -> frozenset[Link]:
    """Every link whose ends are in different groups; a node in no group is alone."""
    group_of: dict[str, int] = {}
    for index, group in enumerate(groups):
        for node in group:
            if node not in node_ids:
                raise ValueError(f"unknown node {node!r} in partition groups")
            if node in group_of:
                raise ValueError(f"node {node!r} is in two partition groups")
            group_of[node] = index
    alone = len(groups)
    for node in node_ids:
        if node not in group_of:
            group_of[node] = alone
            alone += 1
    return frozenset(
        link(a, b)
        for i, a in enumerate(node_ids)
        for b in node_ids[i + 1 :]
        if group_of[a] != group_of[b]
    )


class Partitioner(ABC):
    """Cuts and restores links between nodes; the shapes are defined once, here."""

    def __init__(self, node_ids: Sequence[str]) -> None:
        self.node_ids = list(node_ids)
        #: The links currently cut.
        self.cut: frozenset[Link] = frozenset()

    async def partition(self, groups: Sequence[Iterable[str]]) -> None:
        """Cut every link between different groups (replacing any earlier partition)."""
        await self.set_cut(links_between(groups, self.node_ids))

    async def isolate(self, node: str) -> None:
        await self.partition([{node}, set(self.node_ids) - {node}])

    async def bridge(self, hub: str) -> None:
        """Only links touching ``hub`` survive: the others reach each other through it only.

        With three nodes: the two non-hub nodes cannot talk; each still talks to the hub.
        """
        if hub not in self.node_ids:
            raise ValueError(f"unknown node {hub!r}")
        others = [n for n in self.node_ids if n != hub]
        await self.set_cut(
            frozenset(link(a, b) for i, a in enumerate(others) for b in others[i + 1 :])
        )

    async def heal(self) -> None:
        await self.set_cut(frozenset())

    async def set_cut(self, links: frozenset[Link]) -> None:
        """Make exactly ``links`` cut; returns once the network is in that state."""
        for cut in links:
            if len(cut) != 2 or not cut <= set(self.node_ids):
                raise ValueError(f"not a link between known nodes: {sorted(cut)}")
        await self._apply(links)
        self.cut = links

    @abstractmethod
    async def _apply(self, links: frozenset[Link]) -> None:
        """Change the network so that exactly ``links`` are cut."""

    @abstractmethod
    async def close(self) -> None:
        """Release everything (idempotent; safe after errors)."""


# ---- proxy mode ---------------------------------------------------------------------------


@dataclass
class _ProxyLink:
    pair: Link
    listener: trio.SocketListener
    address: str  # where the dialling node connects
    target: str | None = None  # the other node's Raft address
    #: Live proxied connections: the scope that cuts each, and an event set once it is closed.
    connections: dict[trio.CancelScope, trio.Event] = field(default_factory=dict)
    accepted: int = 0
    refused: int = 0


class ProxyPartitioner(Partitioner):
    """One in-process TCP proxy per link; see the module docstring.

    ``await start(nursery)`` binds the listeners (before the config is written, so their
    ports can never collide with the nodes'); ``configure(raft_addresses)`` then returns the
    ``raft_dial`` table of every node and points each proxy at its target.
    """

    def __init__(self, node_ids: Sequence[str], host: str = "127.0.0.1") -> None:
        super().__init__(node_ids)
        self.host = host
        self.links: dict[Link, _ProxyLink] = {}
        self._scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        for i, a in enumerate(self.node_ids):
            for b in self.node_ids[i + 1 :]:
                listeners = await trio.open_tcp_listeners(0, host=self.host)
                port = listeners[0].socket.getsockname()[1]
                pair = link(a, b)
                self.links[pair] = _ProxyLink(pair, listeners[0], f"{self.host}:{port}")
        await nursery.start(self._serve)

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                async with trio.open_nursery() as nursery:
                    for proxy in self.links.values():
                        nursery.start_soon(self._accept_loop, proxy, nursery)
                    task_status.started()
            finally:
                for proxy in self.links.values():
                    with contextlib.suppress(OSError):
                        proxy.listener.socket.close()

    def configure(self, raft_addresses: dict[str, str]) -> dict[str, dict[str, str]]:
        """``raft_dial`` per node: the dialling end of each link goes through its proxy.

        The dialler is the node whose Raft address compares greater (server/raft.py
        ``PeerTransport._shouldConnect``); the other end never dials, so needs no entry.
        """
        dial: dict[str, dict[str, str]] = {node: {} for node in self.node_ids}
        for pair, proxy in self.links.items():
            lesser, greater = sorted(pair, key=lambda n: raft_addresses[n])
            proxy.target = raft_addresses[lesser]
            dial[greater][lesser] = proxy.address
        return dial

    async def _accept_loop(self, proxy: _ProxyLink, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await proxy.listener.accept()
            except (OSError, trio.ClosedResourceError):
                return
            nursery.start_soon(self._relay, proxy, stream)

    def _is_cut(self, proxy: _ProxyLink) -> bool:
        return proxy.pair in self.cut

    async def _relay(self, proxy: _ProxyLink, stream: trio.SocketStream) -> None:
        upstream: trio.SocketStream | None = None
        try:
            if self._is_cut(proxy) or proxy.target is None:
                proxy.refused += 1
                return
            host, port = parse_address(proxy.target)
            with trio.move_on_after(5):
                try:
                    upstream = await trio.open_tcp_stream(host, port)
                except OSError:
                    return
            if upstream is None or self._is_cut(proxy):  # cut while we were connecting
                proxy.refused += int(upstream is not None)
                return
            proxy.accepted += 1
            closed = trio.Event()
            with trio.CancelScope() as scope:
                proxy.connections[scope] = closed
                try:
                    async with trio.open_nursery() as pumps:
                        pumps.start_soon(_pump, stream, upstream, pumps.cancel_scope)
                        pumps.start_soon(_pump, upstream, stream, pumps.cancel_scope)
                finally:
                    _close(stream, upstream)
                    proxy.connections.pop(scope, None)
                    closed.set()
        finally:
            _close(stream, upstream)

    async def _apply(self, links: frozenset[Link]) -> None:
        newly_cut = links - self.cut
        self.cut = links  # before any relay runs again: new connections are refused
        closing = []
        for cut in newly_cut:
            for scope, closed in list(self.links[cut].connections.items()):
                scope.cancel()
                closing.append(closed)
        # Return only once both sockets of every cut connection are closed.
        for closed in closing:
            await closed.wait()

    async def close(self) -> None:
        self.cut = frozenset(self.links)
        for proxy in self.links.values():
            for scope in list(proxy.connections):
                scope.cancel()
        if self._scope is not None:
            self._scope.cancel()
        for proxy in self.links.values():
            with contextlib.suppress(OSError):
                proxy.listener.socket.close()


def _close(*streams: trio.SocketStream | None) -> None:
    """Close sockets now, without a checkpoint (so it also works in a cancelled scope)."""
    for stream in streams:
        if stream is not None:
            stream.socket.close()


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    """Copy bytes one way; when either side ends, the whole proxied connection ends."""
    try:
        while data := await source.receive_some(1 << 16):
            await sink.send_all(data)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        done.cancel()


# ---- netns mode ---------------------------------------------------------------------------

#: Client and Raft ports inside every namespace (each namespace has its own port space).
NETNS_CLIENT_PORT = 7100
NETNS_RAFT_PORT = 7101


def netns_unavailable() -> str | None:
    """Why netns mode cannot run here, or None if it can.

    Probes what setup needs (a namespace, a bridge, a veth pair into the namespace) and removes
    the probe, so a container without the capability or the kernel modules skips cleanly.
    """
    if os.geteuid() != 0:
        return "netns mode needs root"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    tag = secrets.token_hex(3)
    ns, bridge, veth = f"lact-probe-{tag}", f"lpb{tag}", f"lpv{tag}"
    steps = [
        ["netns", "add", ns],
        ["link", "add", bridge, "type", "bridge"],
        ["link", "add", veth, "type", "veth", "peer", "name", f"lpn{tag}", "netns", ns],
        ["-n", ns, "route", "add", "blackhole", "10.255.255.1"],
    ]
    try:
        for step in steps:
            done = subprocess.run(["ip", *step], capture_output=True, text=True)
            if done.returncode != 0:
                return f"'ip {' '.join(step)}' failed: {done.stderr.strip()}"
        return None
    finally:
        for cleanup in (["link", "del", veth], ["link", "del", bridge], ["netns", "del", ns]):
            subprocess.run(["ip", *cleanup], capture_output=True)


def _used_ipv4_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    nets = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    return nets


class NetnsPartitioner(Partitioner):
    """Namespaces, veth pairs and a bridge; see the module docstring. Root only.

    ``setup()`` builds the network (cleaning up whatever it built if a step fails);
    ``prefix(node)`` is the command prefix that runs a node inside its namespace;
    ``close()`` deletes the namespaces and the bridge (also run at interpreter exit).
    """

    def __init__(self, node_ids: Sequence[str]) -> None:
        super().__init__(node_ids)
        tag = secrets.token_hex(3)
        self.tag = tag
        self.bridge_name = f"lab{tag}"
        self.namespaces = {n: f"lact-{tag}-{n}" for n in self.node_ids}
        self.veths = {n: (f"lav{tag}{i}", f"lan{tag}{i}") for i, n in enumerate(self.node_ids)}
        self.network = self._pick_network()
        hosts = list(self.network.hosts())
        self.gateway = str(hosts[0])
        self.ips = {n: str(hosts[i + 1]) for i, n in enumerate(self.node_ids)}
        self._created: list[tuple[str, str]] = []  # ("netns"|"link", name), for cleanup
        self._closed = False

    @staticmethod
    def _pick_network() -> ipaddress.IPv4Network:
        used = _used_ipv4_networks()
        for _ in range(100):
            candidate = ipaddress.IPv4Network(
                f"10.{secrets.choice(range(100, 250))}.{secrets.randbelow(256)}.0/24"
            )
            if not any(candidate.overlaps(net) for net in used):
                return candidate
        raise RuntimeError("no free 10.x.y.0/24 network for the chaos namespaces")

    def client_address(self, node: str) -> str:
        return f"{self.ips[node]}:{NETNS_CLIENT_PORT}"

    def raft_address(self, node: str) -> str:
        return f"{self.ips[node]}:{NETNS_RAFT_PORT}"

    def prefix(self, node: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[node]]

    def setup(self) -> None:
        atexit.register(self.close_sync)
        try:
            prefix_len = self.network.prefixlen
            for ns in self.namespaces.values():
                _ip("netns", "add", ns)
                self._created.append(("netns", ns))
            _ip("link", "add", self.bridge_name, "type", "bridge")
            self._created.append(("link", self.bridge_name))
            _ip("addr", "add", f"{self.gateway}/{prefix_len}", "dev", self.bridge_name)
            _ip("link", "set", self.bridge_name, "up")
            for node, ns in self.namespaces.items():
                outer, inner = self.veths[node]
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
                self._created.append(("link", outer))
                _ip("link", "set", outer, "master", self.bridge_name, "up")
                _ip("-n", ns, "addr", "add", f"{self.ips[node]}/{prefix_len}", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close_sync()
            raise

    async def _apply(self, links: frozenset[Link]) -> None:
        for cut in links - self.cut:
            for a, b in (tuple(cut), tuple(cut)[::-1]):
                await _aip("-n", self.namespaces[a], "route", "add", "blackhole", self.ips[b])
        for cut in self.cut - links:
            for a, b in (tuple(cut), tuple(cut)[::-1]):
                await _aip("-n", self.namespaces[a], "route", "del", "blackhole", self.ips[b])

    def routes(self, node: str) -> str:
        """The routing table of ``node``'s namespace (for diagnostics and tests)."""
        return _ip("-n", self.namespaces[node], "route", "show")

    def close_sync(self) -> None:
        """Delete namespaces first (their veth ends go with them), then the bridge."""
        if self._closed:
            return
        self._closed = True
        for kind, name in sorted(self._created, key=lambda c: c[0] != "netns"):
            if kind == "netns":
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
            else:
                subprocess.run(["ip", "link", "del", name], capture_output=True)
        self._created.clear()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close_sync)

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.close_sync)


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


async def _aip(*args: str) -> str:
    done = await trio.run_process(
        ["ip", *args], capture_stdout=True, capture_stderr=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout.decode()
