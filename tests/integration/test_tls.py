"""TLS on the client port, against a real 3-node cluster with certificates made at test time
(trustme): the node's certificate is verified, client certificates are required, and nothing
in clear text gets through."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN
from logact.protocol.errors import Unavailable
from logact.server.tls import client_context

from .support import STEP_TIMEOUT, RawConnection

pytestmark = pytest.mark.cluster

DEADLINE = 60.0


@dataclass
class Pki:
    ca: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # a CA the nodes do not know

    def context(self, *, with_cert: bool = True, trust: Path | None = None) -> object:
        cert = (self.client_cert, self.client_key) if with_cert else (None, None)
        return client_context(trust or self.ca, *cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    node = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("client.example")
    node.private_key_and_cert_chain_pem.write_to_path(str(directory / "node.pem"))
    client.cert_chain_pems[0].write_to_path(str(directory / "client.crt"))
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    stranger.cert_pem.write_to_path(str(directory / "stranger.pem"))
    return Pki(
        directory / "ca.pem",
        directory / "client.crt",
        directory / "client.key",
        directory / "stranger.pem",
    )


@pytest.fixture(scope="module")
def tls_cluster(cluster_factory: Callable[..., LocalCluster], pki: Pki) -> Iterator[LocalCluster]:
    node = pki.ca.parent / "node.pem"
    # The supervisor's status checks read the same file: its client certificate is there.
    extra = f"""
[tls]
cert = "{node}"
key = "{node}"
ca = "{pki.ca}"
client_ca = "{pki.ca}"
client_cert = "{pki.client_cert}"
client_key = "{pki.client_key}"
"""
    yield cluster_factory(extra=extra)


async def test_a_verified_client_with_its_certificate_is_served(
    tls_cluster: LocalCluster, pki: Pki
) -> None:
    with trio.fail_after(DEADLINE):
        async with Client(
            tls_cluster.addresses, ADMIN_TOKEN, timeout=STEP_TIMEOUT, tls=pki.context()
        ) as log:
            assert await log.append("tls/bus", "note", "secret") == 0
            assert [e.body for e in await log.read_all("tls/bus")] == ["secret"]


@pytest.mark.parametrize("case", ["no client certificate", "unknown CA", "plain TCP"])
async def test_anything_else_gets_nothing(tls_cluster: LocalCluster, pki: Pki, case: str) -> None:
    tls = {
        "no client certificate": pki.context(with_cert=False),
        "unknown CA": pki.context(trust=pki.stranger_ca),
        "plain TCP": None,
    }[case]
    with trio.fail_after(DEADLINE):
        async with Client(
            tls_cluster.addresses, ADMIN_TOKEN, timeout=3.0, attempt_timeout=2.0, tls=tls
        ) as log:
            with pytest.raises(Unavailable):
                await log.append("tls/bus", "note", "should not land")
        # A clear-text hello on the TLS port: never answered.
        raw = await RawConnection.open(tls_cluster.addresses[0])
        try:
            await raw.send({"id": 0, "op": "hello", "token": ADMIN_TOKEN})
            assert await raw.assert_closed() == []
        finally:
            await raw.aclose()
        async with Client(tls_cluster.addresses, ADMIN_TOKEN, tls=pki.context()) as log:
            assert all(e.body != "should not land" for e in await log.read_all("tls/bus"))


def test_the_cli_uses_the_configured_tls_files_or_those_it_is_given(
    tls_cluster: LocalCluster, pki: Pki
) -> None:
    status = [sys.executable, "-m", "logact.cli.main", "status", "--json"]
    configured = subprocess.run(
        [*status, "--config", str(tls_cluster.config_path)], capture_output=True, timeout=60
    )
    assert configured.returncode == 0, configured.stderr[-2000:]
    assert b'"leader"' in configured.stdout
    nodes = ["--nodes", ",".join(tls_cluster.addresses), "--token", ADMIN_TOKEN]
    nodes += ["--config", "/nonexistent.toml", "--cacert", str(pki.ca)]
    given = subprocess.run(
        [*status, *nodes, "--cert", str(pki.client_cert), "--key", str(pki.client_key)],
        capture_output=True,
        timeout=60,
    )
    assert given.returncode == 0, given.stderr[-2000:]
    without_certificate = subprocess.run([*status, *nodes], capture_output=True, timeout=60)
    assert without_certificate.returncode != 0
