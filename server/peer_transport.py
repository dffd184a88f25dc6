"""Cheaper Raft peer messages for PySyncObj: AES-GCM instead of Fernet, no zlib.

PySyncObj pickles every peer message, compresses it with zlib level 3 and encrypts it with
Fernet (AES-CBC + HMAC + base64). On a 2-core machine that dominated the cost of replicating
a group-committed batch: measured here, a 100 KB message took ~2.2 ms to send and ~2.6 ms to
receive that way versus ~0.1 ms with AES-GCM and no compression (entries are mostly
incompressible or small). Authentication and replay protection are kept: the GCM tag covers
the timestamp PySyncObj checks for monotonicity. Every node of a cluster must run this code.
"""

from __future__ import annotations

import os
import struct
import types
import zlib

import pysyncobj.syncobj as pysyncobj_syncobj
import pysyncobj.tcp_connection as pysyncobj_tcp
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


_NO_COMPRESSION = types.SimpleNamespace(compress=_identity, decompress=_identity, error=zlib.error)


def install() -> None:
    """Patch PySyncObj (pinned 0.3.17) in this process; idempotent."""
    pysyncobj_syncobj.getEncryptor = GcmEncryptor
    pysyncobj_tcp.zlib = _NO_COMPRESSION
