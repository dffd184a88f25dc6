"""What Raft peers exchange: a cheaper cipher, no compression, and bounds on message sizes.

This module holds the replacements and the limits; ``pysyncobj_adapter.install`` patches them
into PySyncObj (the peer encryptor, its zlib, its reads and its accept).

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
import os
import struct
import types
import zlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

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


#: Stands in for the zlib module PySyncObj compresses peer messages with.
NO_COMPRESSION = types.SimpleNamespace(compress=_identity, decompress=_identity, error=zlib.error)


#: Largest peer message, and largest before the peer has proven it holds the password (the
#: first messages of a connection are a random key and the peer's address).
MAX_MESSAGE = 32 * 1024 * 1024
PREAUTH_MESSAGE = 64 * 1024
LENGTH = struct.Struct("i")  # PySyncObj's own prefix: native-endian, signed
#: accept() errors that mean "out of descriptors or memory for now".
TRANSIENT_ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
