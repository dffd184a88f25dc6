"""Loopback ports for local processes (node, model server) started by this machine."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free right now (bound then released) on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
