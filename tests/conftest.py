"""Shared fixtures: real local clusters and the three log implementations.

Clusters are real node processes (``python -m logact.cli.main node``) on free loopback ports.
They are started synchronously (outside the test's trio run) and always killed with ``kill -9``
at teardown, and once more at interpreter exit in case teardown never ran.
"""

from __future__ import annotations

import atexit
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from logact.client.client import Client
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN, write_local_config
from logact.protocol.api import LogAPI
from logact.server.config import ClusterConfig, load_config
from logact.server.local import LOCAL_PRINCIPAL, open_embedded, open_memory
from logact.server.secret_files import ensure_secret_files

#: Bound on starting a cluster and electing its first leader.
CLUSTER_START_TIMEOUT = 30.0

_LIVE_CLUSTERS: list[LocalCluster] = []

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``config/NAME`` copied to a temporary directory with its secret files created there,
    so tests never write the repository's own ``config/secrets/``."""

    def copy(name: str) -> Path:
        path = tmp_path_factory.mktemp("shipped") / name
        shutil.copy(REPO / "config" / name, path)
        ensure_secret_files(path)
        return path

    return copy


@pytest.fixture(scope="session")
def shipped_config(shipped: Callable[[str], Path]) -> ClusterConfig:
    return load_config(shipped("cluster.toml"))


def _kill_everything() -> None:
    for cluster in _LIVE_CLUSTERS:
        cluster.kill_all()


atexit.register(_kill_everything)


def start_cluster(directory: Path, *, extra: str = "") -> LocalCluster:
    """Write a 3-node config in ``directory``, start every node and wait for a leader."""
    config = write_local_config(directory, extra=extra)
    cluster = LocalCluster(config, directory / "run")
    _LIVE_CLUSTERS.append(cluster)
    cluster.start_all()
    try:
        trio.run(cluster.wait_for_leader, CLUSTER_START_TIMEOUT)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: LocalCluster) -> None:
    cluster.kill_all()
    if cluster in _LIVE_CLUSTERS:
        _LIVE_CLUSTERS.remove(cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One shared 3-node cluster for non-destructive tests (never kill its nodes)."""
    cluster = start_cluster(tmp_path_factory.mktemp("shared-cluster"))
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


ClusterFactory = Callable[..., LocalCluster]


@pytest.fixture(scope="module")
def cluster_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFactory]:
    """Private clusters for destructive tests; all are killed when the module ends."""
    started: list[LocalCluster] = []

    def make(*, extra: str = "") -> LocalCluster:
        cluster = start_cluster(tmp_path_factory.mktemp("private-cluster"), extra=extra)
        started.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in started:
            stop_cluster(cluster)


def unique_bus(prefix: str = "t") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:16]}"


@pytest.fixture
def bus() -> str:
    """A bus name no other test uses (tests share clusters)."""
    return unique_bus()


@dataclass(frozen=True)
class LogFactory:
    """Opens handles on one log implementation; every handle of one factory sees one log."""

    kind: str
    #: The author recorded on entries appended through ``open()``.
    principal: str
    #: Whether the log keeps its contents when every handle is closed and a new one opened.
    durable: bool
    _open: Callable[[], AbstractAsyncContextManager[LogAPI]]

    def open(self) -> AbstractAsyncContextManager[LogAPI]:
        return self._open()

    def __call__(self) -> AbstractAsyncContextManager[LogAPI]:
        return self._open()


@pytest.fixture(
    params=["memory", "embedded", pytest.param("cluster", marks=pytest.mark.cluster)],
)
def log_impl(request: pytest.FixtureRequest, tmp_path: Path) -> LogFactory:
    """``async with log_impl() as log:`` for the in-memory, embedded and cluster logs."""
    kind: str = request.param
    if kind == "memory":
        return LogFactory(kind, LOCAL_PRINCIPAL.name, False, open_memory)
    if kind == "embedded":
        data_dir = tmp_path / "embedded"

        def open_embedded_log() -> AbstractAsyncContextManager[LogAPI]:
            return open_embedded(data_dir)

        return LogFactory(kind, LOCAL_PRINCIPAL.name, True, open_embedded_log)
    cluster: LocalCluster = request.getfixturevalue("cluster")

    @asynccontextmanager
    async def open_client() -> AsyncIterator[LogAPI]:
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=20.0) as client:
            yield client

    return LogFactory(kind, "admin", True, open_client)
