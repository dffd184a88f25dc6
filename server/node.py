"""One log node process: backend (Raft or embedded) + service + TCP front end."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from logact.server.config import ClusterConfig, ConfigError
from logact.server.embedded import EmbeddedBackend
from logact.server.heap import keep_large_blocks_in_heap
from logact.server.net import serve
from logact.server.raft import RaftBackend
from logact.server.service import LogService

log = logging.getLogger(__name__)


#: Descriptors kept free of client connections: Raft peers, journal, snapshots, logs.
RESERVED_DESCRIPTORS = 256


def fit_descriptors(config: ClusterConfig) -> ClusterConfig:
    """Raise RLIMIT_NOFILE to its hard limit; keep the client connection cap well below it.

    Run out of descriptors and PySyncObj's Raft listener closes for good (issue 13), so client
    connections may use only what is left after ``RESERVED_DESCRIPTORS``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    room = max(16, soft - RESERVED_DESCRIPTORS)
    settings = config.server
    if settings.max_connections <= room:
        return config
    log.warning(
        "max_connections %d lowered to %d: RLIMIT_NOFILE is %d",
        settings.max_connections,
        room,
        soft,
    )
    fitted = dataclasses.replace(settings, max_connections=room)
    return dataclasses.replace(config, server=fitted)


def load_validator(spec: str | None) -> Callable[[str, Any], str | None] | None:
    """The ``[auth] validator`` function (``module:function``), imported at start."""
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"[auth] validator {spec!r}: {exc}") from None
    if not callable(function):
        raise ConfigError(f"[auth] validator {spec!r} is not a function")
    return function  # type: ignore[no-any-return]


def data_dir_for(config: ClusterConfig, node_id: str, run_dir: Path) -> Path:
    path = Path(config.node(node_id).data_dir)
    return path if path.is_absolute() else run_dir / path


async def run_node(config: ClusterConfig, node_id: str, run_dir: Path) -> None:
    """Serve until cancelled (``logact node`` cancels it on SIGTERM/SIGINT); the backend is
    constructed on this (the trio) thread."""
    # PySyncObj's tick thread and the trio thread share the GIL: the default 5 ms switch
    # interval would add up to 5 ms to every hand-off between them.
    sys.setswitchinterval(0.0002)
    keep_large_blocks_in_heap()
    config = fit_descriptors(config)
    node = config.node(node_id)
    data_dir = data_dir_for(config, node_id, run_dir)
    backend: RaftBackend | EmbeddedBackend
    if config.mode == "raft":
        backend = RaftBackend(config, node, data_dir)
    else:
        backend = EmbeddedBackend(data_dir, durability=config.durability, node_id=node.id)
    service = LogService(
        backend,
        config.limits,
        request_timeout=config.server.request_timeout,
        unsafe=config.unsafe,
        fences=config.fences,
        validate=load_validator(config.validator),
    )
    if config.unsafe.any:
        log.warning("node %s runs UNSAFE modes for chaos validation: %s", node.id, config.unsafe)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            await nursery.start(
                serve, service, config, node.client_host, node.client_port, backend.describe
            )
            log.info("node %s serving clients on %s", node.id, node.client_address)
    finally:
        backend.close()
