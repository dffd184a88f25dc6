"""Loopback ports for local processes (node, model server) started by this machine."""

from __future__ import annotations

import socket

import trio


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


def bindable(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (as the nodes bind: SO_REUSEADDR, so a
    port in TIME_WAIT after a node stopped counts as free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def accepting(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            return False
        await trio.aclose_forcefully(stream)
        return True
    return False
