"""The Raft port: cheaper peer messages, and bounds on what anyone reaching it can cost.

PySyncObj pickles every peer message, compresses it with zlib level 3 and encrypts it with
Fernet (AES-CBC + HMAC + base64). On a 2-core machine that dominated the cost of replicating
a group-committed batch: measured here, a 100 KB message took ~2.2 ms to send and ~2.6 ms to
receive that way versus ~0.1 ms with AES-GCM and no compression (entries are mostly
incompressible or small). Authentication and replay protection are kept: the GCM tag covers
the timestamp PySyncObj checks for monotonicity. Every node of a cluster must run this code.

Bounds (issue 13): PySyncObj buffers a whole declared message (up to 2 GiB) before it checks
the password, and closes its listener for good on any accept error, such as running out of
descriptors. Here a message's length prefix is checked as soon as it arrives — at most
``PREAUTH_MESSAGE`` bytes until the peer has proven the password, ``MAX_MESSAGE`` after — and
no more is read from a connection while a whole message waits to be parsed; accept errors
that mean "out of descriptors or memory" leave the listener open.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import types
import zlib
from typing import Any

import pysyncobj.syncobj as pysyncobj_syncobj
import pysyncobj.tcp_connection as pysyncobj_tcp
import pysyncobj.tcp_server as pysyncobj_server
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pysyncobj.poller import POLL_EVENT_TYPE

from logact.server import pysyncobj_pin  # noqa: F401  (checks the version)
from logact.server.ratelog import RateLimitedLog

SALT = b"logact-raft-peer-key-v1"
STAMP = struct.Struct(">Q")
NONCE_BYTES = 12


class GcmEncryptor:
    """The subset of Fernet's interface PySyncObj uses."""

    def __init__(self, password: str | bytes) -> None:
        secret = password.encode() if isinstance(password, str) else password
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=200_000)
        self._aead = AESGCM(kdf.derive(secret))

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        stamp = STAMP.pack(current_time)
        nonce = os.urandom(NONCE_BYTES)
        return stamp + nonce + self._aead.encrypt(nonce, bytes(data), stamp)

    def extract_timestamp(self, token: bytes) -> int:
        return STAMP.unpack_from(token)[0]

    def decrypt(self, token: bytes) -> bytes:
        stamp = bytes(token[: STAMP.size])
        nonce = bytes(token[STAMP.size : STAMP.size + NONCE_BYTES])
        return self._aead.decrypt(nonce, bytes(token[STAMP.size + NONCE_BYTES :]), stamp)


def _identity(data: bytes, *_: object) -> bytes:
    return data


_NO_COMPRESSION = types.SimpleNamespace(compress=_identity, decompress=_identity, error=zlib.error)


log = logging.getLogger(__name__)
#: Largest peer message, and largest before the peer has proven it holds the password (the
#: first messages of a connection are a random key and the peer's address).
MAX_MESSAGE = 32 * 1024 * 1024
PREAUTH_MESSAGE = 64 * 1024
LENGTH = struct.Struct("i")  # PySyncObj's own prefix: native-endian, signed
#: accept() errors that mean "out of descriptors or memory for now".
TRANSIENT_ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_original_read = pysyncobj_tcp.TcpConnection._TcpConnection__processRead  # type: ignore[attr-defined]
_events = RateLimitedLog(log)


def _bounded_read(conn: Any) -> bool:
    """One recv, unless the first buffered message is oversized (disconnect) or complete."""
    buffer = conn._TcpConnection__readBuffer
    if len(buffer) >= LENGTH.size:
        (length,) = LENGTH.unpack_from(buffer)
        limit = MAX_MESSAGE if conn.recvLastTimestamp else PREAUTH_MESSAGE
        if not 0 <= length <= limit:
            conn.disconnect()
            return False
        if len(buffer) >= LENGTH.size + length:
            return False  # parse it before reading more: the socket holds the rest
    return bool(_original_read(conn))


def _accept(server: Any, descr: Any, event: Any) -> None:
    """PySyncObj's accept, except that running out of descriptors keeps the listener open.

    Any other accept error still unbinds, as in PySyncObj; ``PeerTransport`` then binds again.
    """
    if event & POLL_EVENT_TYPE.READ:
        try:
            sock, _ = server._TcpServer__socket.accept()
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in TRANSIENT_ACCEPT_ERRNOS:
                server.unbind()
                return
            _events.event("raft_accept_errors", f"accept failed ({exc.strerror}); kept open")
        else:
            _serve_accepted(server, sock)
    if event & POLL_EVENT_TYPE.ERROR:
        server.unbind()


def _serve_accepted(server: Any, sock: socket.socket) -> None:
    """Hand an accepted socket to PySyncObj as its own accept does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, server._TcpServer__sendBufferSize)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, server._TcpServer__recvBufferSize)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    conn = pysyncobj_tcp.TcpConnection(
        poller=server._TcpServer__poller,
        socket=sock,
        timeout=server._TcpServer__connectionTimeout,
        sendBufferSize=server._TcpServer__sendBufferSize,
        recvBufferSize=server._TcpServer__recvBufferSize,
        keepalive=server._TcpServer__keepalive,
    )
    server._TcpServer__onNewConnectionCallback(conn)


def install() -> None:
    """Patch PySyncObj (pinned 0.3.17) in this process; idempotent."""
    pysyncobj_syncobj.getEncryptor = GcmEncryptor
    pysyncobj_tcp.zlib = _NO_COMPRESSION
    pysyncobj_tcp.TcpConnection._TcpConnection__processRead = _bounded_read  # type: ignore[attr-defined]
    pysyncobj_server.TcpServer._TcpServer__onNewConnection = _accept  # type: ignore[attr-defined]
