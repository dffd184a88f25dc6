"""Refusing weak secrets where the network can reach them.

A node bound to a non-loopback address with a default or guessable secret is an open door:
the Raft password lets its holder make every node unpickle arbitrary data, and any token is a
principal. Such a node refuses to start; on loopback the same findings are only warnings.
"""

from __future__ import annotations

import ipaddress

from logact.server.config import ClusterConfig, NodeConfig

#: Shortest password or token accepted off loopback (etcd asks for strong passwords too).
MIN_SECRET = 16
#: Markers of the example secrets shipped in config/ (never for a real deployment).
DEFAULT_MARKERS = ("change-me", "changeme", "password", "-0000")


def weak(secret: str) -> str | None:
    """Why ``secret`` is too weak to expose, or None."""
    if len(secret) < MIN_SECRET:
        return f"shorter than {MIN_SECRET} characters"
    if len(set(secret.strip())) < 4:
        return "made of fewer than 4 distinct characters"
    lowered = secret.lower()
    if any(marker in lowered for marker in DEFAULT_MARKERS):
        return "a default from the examples"
    return None


def loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def findings(config: ClusterConfig) -> list[str]:
    """Every weak secret of the configuration, each named (never printed)."""
    found: list[str] = []
    if config.password is not None and (why := weak(config.password)):
        found.append(f"the cluster password is {why}")
    for token, principal in config.tokens.items():
        if why := weak(token):
            found.append(f"the token of principal {principal.name!r} is {why}")
    return found


def exposed(node: NodeConfig) -> bool:
    """Whether the node listens beyond loopback (its client or its Raft port)."""
    return not (loopback(node.client_host) and loopback(node.raft_host))
