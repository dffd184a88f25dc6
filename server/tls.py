"""TLS on the client port: the node's certificate, and optionally client certificates.

Tokens authenticate principals; TLS keeps them (and every reply) from being read or rewritten
on the way. Contexts are built once at start, so a missing or unreadable file stops the node
with a clear error instead of failing every handshake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The ``[tls]`` table. Paths are relative to the configuration file."""

    cert: Path | None = None  # this node's certificate chain (PEM)
    key: Path | None = None  # its private key (PEM)
    client_ca: Path | None = None  # require client certificates signed by this CA
    ca: Path | None = None  # what clients (the CLI) trust for the nodes' certificates
    client_cert: Path | None = None  # what clients reading this file present, if required
    client_key: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert is not None


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """TLS 1.2+ with the node's certificate; client certificates required if configured."""
    assert settings.cert is not None and settings.key is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.cert, settings.key)
    if settings.client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(settings.client_ca)
    return context


def client_context(
    ca: Path | str | None, cert: Path | str | None = None, key: Path | str | None = None
) -> ssl.SSLContext:
    """Verify nodes against ``ca`` (else the system's roots), host names included; present
    ``cert``/``key`` when the nodes require client certificates."""
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def client_context_for(
    settings: TlsSettings,
    cacert: Path | str | None = None,
    cert: Path | str | None = None,
    key: Path | str | None = None,
) -> ssl.SSLContext | None:
    """What a client of a cluster configured with ``settings`` needs: TLS when the nodes serve
    it (or a CA is given), trusting ``cacert`` or the configuration's ``ca``; else None."""
    ca = cacert if cacert is not None else settings.ca
    if not settings.enabled and ca is None:
        return None
    if cert is None:
        cert, key = settings.client_cert, settings.client_key
    return client_context(ca, cert, key)
